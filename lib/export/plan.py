"""Export plans: exactly which CleverTap profiles an export changes, and how, before anything is sent.

A plan is built from a verified list (its rows joined to its latest verdicts) and the user's choices:

* **Unsubscribe**: profiles whose verdict matches the policy get `MSG-email: false`. The policy is
  a set of rules; "invalid" is always on, "disposable", "catch_all" and "unknown" are opt-in.
* **Append**: chosen Clearout columns are written as profile properties under editable names.

Lists with identities or objectIds are written per profile through `/1/upload`. Lists with only
addresses (a CSV without identities) go through the address-level Subscribe API, which affects every
profile sharing the address and cannot set properties, so Append is refused for them.

Every profile we unsubscribe through `/1/upload` is also stamped with `STAMP_PROPERTY` = the run's
tag. Undo needs it: it re-subscribes a profile only while the stamp still names the run, so a profile
unsubscribed by a later run of ours is left alone (see lib/export/undo.py for what undo can and cannot
tell apart).

The "run id" property that Append can write holds the run's tag (also shown in History), not the
store's integer id: two installations writing to one project would both have a run 1.

What a plan's records look like on the wire is lib/export/payloads.py.
"""
from __future__ import annotations

import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, UTC
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lib import columns as co
from lib.emails import normalise_emails, valid_syntax_mask
from lib.errors import UserError
from lib.figures import plural
from lib.export.properties import (DEFAULT_APPEND, MAX_VALUE_BYTES, STAMP_PROPERTY, AppendColumn,
                                   custom_key_warning, properties_json, property_name_errors)
from lib.merge import NOT_IN_RESULT_REASON

UNDONE_PREFIX = "undone "

METHOD_UPLOAD, METHOD_SUBSCRIBE = "upload", "subscribe"

# Before the first batch the worker reads, for at most this many unsubscribes whose state the list does
# not hold, the state CleverTap shows (/1/profile.json: three reads at a time, ~1,000 in half a minute).
PRIOR_LOOKUP_MAX = 1_000

# What undo does with an unsubscribe whose state before cannot be known: an address with no profile
# (CleverTap keeps address-level preferences but no API reads them), or one past PRIOR_LOOKUP_MAX. The
# person chooses before applying (lib.export.runs.start_run records it with the run) or, for a run
# without a choice, before undoing.
UNKNOWN_PRIOR_LEAVE, UNKNOWN_PRIOR_RESUBSCRIBE = "leave", "resubscribe"
UNKNOWN_PRIOR_CHOICES = {
    UNKNOWN_PRIOR_LEAVE: "Leave them unsubscribed (never re-subscribes someone who may have opted out)",
    UNKNOWN_PRIOR_RESUBSCRIBE: "Re-subscribe them too (as far as CleverTap shows, nothing had unsubscribed them)",
}

KEY_IDENTITY, KEY_OBJECT_ID, KEY_EMAIL = "identity", "objectId", "email"


@dataclass(frozen=True)
class Rule:
    code: str
    label: str
    warning: str | None  # None: always on


# Clearout types each Invalid sub-status as a hard or a soft bounce [EVO]. A soft bounce is temporary
# (the mailbox is full, over its receiving limit, or the server short of resources): the person may
# read mail again next week, so unsubscribing them is a separate rule, off by default. A "probable
# spam trap" is typed soft too, but mailing a trap harms the sender's reputation whatever its type,
# so it stays with the hard Invalid verdicts. (The casing of `bounce_type` is UNCONFIRMED: compared
# case-insensitively; lib/columns capitalises it for display.)
SOFT_BOUNCE = "soft"
SPAM_TRAP_REASON = "Probably Spamtrap/Honeypot"

RULES: tuple[Rule, ...] = (
    Rule("invalid", "Invalid", None),
    Rule("soft_bounce", "Soft bounce",
         "A soft bounce is temporary: the mailbox is full or over its receiving limit for now, and often "
         "takes mail again later. Unsubscribing stops a real person's email for good."),
    Rule("disposable", "Disposable",
         "Disposable addresses are temporary mailboxes: some still deliver for a while, so a real "
         "person may still read them."),
    Rule("catch_all", "Catch-all",
         "Catch-all is risky, not dead: the domain accepts every address, so Clearout cannot tell "
         "whether this mailbox exists. Many of these are real people."),
    Rule("unknown", "Unknown",
         "Unknown is not invalid: Clearout could not get an answer from the mail server (a timeout, "
         "greylisting). Verifying again later often gives a verdict."),
)

RULE_CODES = tuple(r.code for r in RULES)

DEFAULT_RULES = ("invalid",)


@dataclass(frozen=True)
class ExportOptions:
    unsubscribe: bool = True
    append: bool = False
    rules: tuple[str, ...] = DEFAULT_RULES
    columns: tuple[AppendColumn, ...] = DEFAULT_APPEND

    def to_json(self) -> dict[str, Any]:
        return {"unsubscribe": self.unsubscribe, "append": self.append, "rules": list(self.rules),
                "columns": [[c.source, c.name] for c in self.columns]}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ExportOptions:
        return cls(unsubscribe=bool(raw["unsubscribe"]), append=bool(raw["append"]), rules=tuple(raw["rules"]),
                   columns=tuple(AppendColumn(str(source), str(name)) for source, name in raw["columns"]))


@dataclass(frozen=True)
class PlanSummary:
    list_rows: int
    profiles: int            # distinct profiles (or addresses) the list can reach
    to_unsubscribe: int
    to_append: int
    changes: int             # records that will be sent
    already_unsubscribed: int  # matched the policy but MSG-email was already false in the list
    no_key: int              # rows without identity/objectId (or without a usable address)
    duplicates: int          # rows naming a profile an earlier row already named
    by_rule: dict[str, int]  # rule label -> unsubscribes
    unsubscribe_pct: float   # to_unsubscribe / profiles * 100
    guardrail_pct: float
    prior_known: int         # unsubscribes whose previous MSG-email value the list holds
    # The funnel from Results' figure to the profiles unsubscribed (lib.funnel), in rows:
    undeliverable_rows: int = 0     # verdict Invalid or Safe to send = No, as on Results
    undeliverable_matched: int = 0  # ...of them, taken by the chosen rules
    matched_rows: int = 0           # rows the chosen rules take (undeliverable or not)
    matched_with_key: int = 0       # ...of them, naming a profile

    @property
    def over_guardrail(self) -> bool:
        return self.to_unsubscribe > 0 and self.unsubscribe_pct > self.guardrail_pct


@dataclass(frozen=True)
class ExportPlan:
    """What an export will send; built by `build_plan`, applied by `lib.export.start_run`."""
    list_id: int
    job_id: int
    list_name: str
    method: str
    options: ExportOptions
    tag: str
    # The changes, in the order they are sent: key_type, key_value, email, unsubscribe, prior_msg_email,
    # properties_json, rule, status, reason. In memory (`changes`) or, for a plan of any size, in a
    # Parquet files read one after the other (`changes_files`: the unsubscribes, then the rest;
    # lib.export.planfile); read them with `change_batches`.
    changes: pd.DataFrame | None = field(repr=False)
    summary: PlanSummary
    errors: tuple[str, ...]    # any error blocks applying
    warnings: tuple[str, ...]
    notes: tuple[str, ...]
    reasons: pd.DataFrame = field(repr=False)  # unsubscribes by rule and Clearout reason (reason_table)
    changes_files: tuple[Path, ...] = ()
    # The newest export run when the dry run began (None: not known). A run of the same list to the same
    # project since then makes the plan stale (what it would send was sent), and the store refuses it.
    runs_seen: int | None = None

    def change_batches(self, rows: int = 100_000) -> Iterator[pd.DataFrame]:
        """The changes in send order, at most `rows` at a time."""
        if self.changes is not None:
            for start in range(0, len(self.changes), rows):
                yield self.changes.iloc[start:start + rows].reset_index(drop=True)
            return
        for path in self.changes_files:
            for batch in pq.ParquetFile(path).iter_batches(batch_size=rows):
                yield batch.to_pandas(types_mapper=_PANDAS_TYPES.get)

    def head(self, count: int) -> pd.DataFrame:
        """The first `count` changes (payload samples, previews)."""
        return next(self.change_batches(max(count, 1)), _EMPTY_CHANGES).head(count)

    def to_json(self) -> dict[str, Any]:
        """A plan whose changes are in files, as a task answer (the worker builds it, a page shows it)."""
        if self.changes is not None:
            raise ValueError("a plan in memory has no files to point to")
        return {"list_id": self.list_id, "job_id": self.job_id, "list_name": self.list_name, "method": self.method,
                "options": self.options.to_json(), "tag": self.tag, "summary": asdict(self.summary),
                "errors": list(self.errors), "warnings": list(self.warnings), "notes": list(self.notes),
                "reasons": self.reasons.to_dict(orient="records"),
                "changes_files": [str(path) for path in self.changes_files], "runs_seen": self.runs_seen}

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> ExportPlan:
        reasons = pd.DataFrame(raw["reasons"], columns=["Rule", "Clearout reason", "Profiles"])
        return cls(list_id=int(raw["list_id"]), job_id=int(raw["job_id"]), list_name=str(raw["list_name"]),
                   method=str(raw["method"]), options=ExportOptions.from_json(raw["options"]), tag=str(raw["tag"]),
                   changes=None, summary=PlanSummary(**raw["summary"]), errors=tuple(raw["errors"]),
                   warnings=tuple(raw["warnings"]), notes=tuple(raw["notes"]),
                   reasons=reasons.astype({"Profiles": "int64"}),
                   changes_files=tuple(Path(path) for path in raw["changes_files"]),
                   runs_seen=None if raw.get("runs_seen") is None else int(raw["runs_seen"]))

    def read_changes(self) -> pd.DataFrame:
        """Every change in one frame: for small plans and tests (a big plan does not fit in memory)."""
        parts = list(self.change_batches())
        return pd.concat(parts, ignore_index=True) if parts else _EMPTY_CHANGES.copy()

    @property
    def can_apply(self) -> bool:
        return not self.errors and self.summary.changes > 0

    @property
    def unknown_before(self) -> int:
        """Unsubscribes whose state before the list does not hold (the worker reads what it can)."""
        return self.summary.to_unsubscribe - self.summary.prior_known if self.options.unsubscribe else 0

    @property
    def needs_prior_choice(self) -> bool:
        """Some unsubscribes may end with no known state before: an address-only list (an address with
        no profile shows none), or more unknown states than the worker reads. Undo's treatment of them
        is then the person's explicit choice, made before applying."""
        return self.unknown_before > 0 and (self.method == METHOD_SUBSCRIBE or self.unknown_before > PRIOR_LOOKUP_MAX)

    @property
    def policy(self) -> dict[str, Any]:
        """What the store keeps of the choices (export_runs.policy_json)."""
        return {"rules": list(self.options.rules) if self.options.unsubscribe else [],
                "properties": [[c.source, c.name] for c in self.options.columns] if self.options.append else [],
                "stamp_property": STAMP_PROPERTY if self.method == METHOD_UPLOAD else None}

    @property
    def actions(self) -> list[str]:
        return [a for a, on in (("unsubscribe", self.options.unsubscribe), ("append", self.options.append)) if on]


_PANDAS_TYPES = {pa.string(): pd.StringDtype("pyarrow"), pa.large_string(): pd.StringDtype("pyarrow"),
                 pa.bool_(): pd.BooleanDtype()}
_EMPTY_CHANGES = pd.DataFrame({name: pd.Series(dtype="string[pyarrow]") for name in (
    "key_type", "key_value", "email", "unsubscribe", "prior_msg_email", "properties_json", "rule", "status", "reason")})


class PlanError(UserError):
    """The list cannot be planned as asked (not verified, no email column)."""


def new_tag(now: datetime | None = None) -> str:
    """A run tag unique across installations writing to one project: date plus 6 random hex digits."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d}-{secrets.token_hex(3)}"


def confirmation_phrase(plan: ExportPlan) -> str:
    """What the user types to apply a plan over the guardrail."""
    return f"UNSUBSCRIBE {plan.summary.to_unsubscribe}"


# ---- building -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PlanContext:
    """What every chunk of one plan shares: the list's key columns and the choices, checked once."""
    email_column: str
    identity_column: str | None
    object_id_column: str | None
    msg_email_column: str | None
    method: str
    options: ExportOptions
    tag: str
    append_ok: bool  # Append chosen, possible for this list, and its property names are valid


@dataclass
class PlanCounts:
    """A plan's counts, added up chunk by chunk."""
    list_rows: int = 0
    profiles: int = 0
    to_unsubscribe: int = 0
    to_append: int = 0
    changes: int = 0
    already_unsubscribed: int = 0
    no_key: int = 0
    duplicates: int = 0
    prior_known: int = 0
    undeliverable_rows: int = 0
    undeliverable_matched: int = 0
    matched_rows: int = 0
    matched_with_key: int = 0
    by_rule: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)  # property -> values too long to send

    def add(self, other: PlanCounts) -> None:
        for name in ("list_rows", "profiles", "to_unsubscribe", "to_append", "changes", "already_unsubscribed",
                     "no_key", "duplicates", "prior_known", "undeliverable_rows", "undeliverable_matched",
                     "matched_rows", "matched_with_key"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for mine, theirs in ((self.by_rule, other.by_rule), (self.dropped, other.dropped)):
            for key, value in theirs.items():
                mine[key] = mine.get(key, 0) + value


def plan_context(*, email_column: str, identity_column: str | None, object_id_column: str | None,
                 msg_email_column: str | None, options: ExportOptions, tag: str) -> tuple[PlanContext, list[str],
                                                                                           list[str]]:
    """The shared context of a plan, with the errors and notes its choices alone give."""
    errors: list[str] = []
    notes: list[str] = []
    rules = tuple(r for r in RULE_CODES if r in set(options.rules) | {"invalid"})
    options = ExportOptions(options.unsubscribe, options.append, rules, tuple(options.columns))
    if not options.unsubscribe and not options.append:
        errors.append("Choose Unsubscribe, Append, or both.")
    method = METHOD_UPLOAD if (identity_column or object_id_column) else METHOD_SUBSCRIBE
    if method == METHOD_SUBSCRIBE:
        notes.append("This list has addresses only, no identities: unsubscribing goes through "
                     "CleverTap's Subscribe API, which works per address, not per profile. Every "
                     "profile that shares an address is unsubscribed, including profiles not in this list.")
        if options.append:
            errors.append("Append needs identities or objectIds: this list has addresses only, and the "
                          "Subscribe API cannot set profile properties. Pull the audience from CleverTap "
                          "on Lists to append.")
    append_ok = False
    if options.append and method == METHOD_UPLOAD:
        name_errors = property_name_errors(options.columns)
        errors += name_errors
        if not options.columns:
            errors.append("Choose at least one column to append.")
        append_ok = bool(options.columns) and not name_errors
    context = PlanContext(email_column=email_column, identity_column=identity_column,
                          object_id_column=object_id_column, msg_email_column=msg_email_column, method=method,
                          options=options, tag=tag, append_ok=append_ok)
    return context, errors, notes


def profile_key(merged: pd.DataFrame, context: PlanContext) -> pd.Series:
    """Per row, the value naming its profile (null: nothing to send for it): `chunk_keys`' key value."""
    if context.method == METHOD_UPLOAD:
        return _profile_keys(merged, context.identity_column, context.object_id_column)[1]
    return chunk_keys(merged, context)[1]


def chunk_keys(merged: pd.DataFrame, context: PlanContext) -> tuple[pd.Series, pd.Series, pd.Series]:
    """Per row: key type, key value (null: nothing to send for it) and the normalised address."""
    email = normalise_emails(merged[context.email_column])
    if context.method == METHOD_UPLOAD:
        key_type, key_value = _profile_keys(merged, context.identity_column, context.object_id_column)
    else:
        usable = valid_syntax_mask(email).to_numpy()
        key_value = email.where(usable)
        key_type = pd.Series(np.where(usable, KEY_EMAIL, None), index=merged.index, dtype=object)  # type: ignore[call-overload]
    return key_type, key_value, email


def plan_chunk(merged: pd.DataFrame, first: np.ndarray, context: PlanContext) -> tuple[pd.DataFrame, PlanCounts]:
    """The changes of some rows of a list (in row order) and their counts.

    Args:
        first: per row, whether it is the first row of the list naming its profile (a later row
            naming the same profile sends nothing).
    """
    options = context.options
    key_type, key_value, email = chunk_keys(merged, context)
    has_key = key_value.notna().to_numpy()
    first = first & has_key
    prior = (merged[context.msg_email_column].astype("boolean") if context.msg_email_column
             else pd.Series(pd.NA, index=merged.index, dtype="boolean"))
    rule = _rule_labels(merged, options.rules) if options.unsubscribe else \
        pd.Series(None, index=merged.index, dtype=object)
    matches = rule.notna().to_numpy() & first
    already = matches & (prior == False).fillna(False).to_numpy()  # noqa: E712 - nullable boolean
    unsubscribe = matches & ~already

    properties = pd.Series(pd.NA, index=merged.index, dtype="string[pyarrow]")
    dropped: dict[str, int] = {}
    if context.append_ok:
        verified = merged[co.VERDICT_SOURCE].notna() & (merged[co.VERDICT_SOURCE] != co.SOURCE_NO_EMAIL)
        verified &= merged[co.REASON].fillna("") != NOT_IN_RESULT_REASON
        properties, dropped = properties_json(merged, options.columns, context.tag)
        properties = properties.where(verified.to_numpy() & first)
    appends = properties.notna().to_numpy()
    send = unsubscribe | appends

    changes = pd.DataFrame({
        "key_type": key_type[send].astype("string[pyarrow]"),
        "key_value": pd.Series(key_value)[send].astype("string[pyarrow]"),
        "email": email[send].astype("string[pyarrow]"),
        "unsubscribe": unsubscribe[send],
        "prior_msg_email": prior[send],
        "properties_json": properties[send],
        "rule": rule[send].astype("string[pyarrow]"),
        "status": merged[co.STATUS][send].astype("string[pyarrow]"),
        "reason": merged[co.REASON][send].astype("string[pyarrow]"),
    }).reset_index(drop=True)
    ruled = rule.notna().to_numpy()
    undeliverable = ((merged[co.STATUS] == co.INVALID) | (merged[co.SAFE_TO_SEND] == co.NO)).fillna(False) \
        .to_numpy(dtype=bool)
    counts = PlanCounts(
        undeliverable_rows=int(undeliverable.sum()), undeliverable_matched=int((undeliverable & ruled).sum()),
        matched_rows=int(ruled.sum()), matched_with_key=int((ruled & has_key).sum()),
        list_rows=len(merged), profiles=int(first.sum()), to_unsubscribe=int(unsubscribe.sum()),
        to_append=int(appends.sum()), changes=int(send.sum()), already_unsubscribed=int(already.sum()),
        no_key=int((~has_key).sum()), duplicates=int((has_key & ~first).sum()),
        prior_known=int(prior[unsubscribe].notna().sum()),
        by_rule={r.label: int((rule[unsubscribe] == r.label).sum()) for r in RULES if r.code in options.rules},
        dropped=dropped)
    return changes, counts


def finish_plan(counts: PlanCounts, context: PlanContext, errors: list[str], notes: list[str], *,
                guardrail_pct: float) -> tuple[PlanSummary, tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """The summary, errors, warnings and notes of a plan from its counts."""
    warnings: list[str] = []
    options = context.options
    if context.append_ok:
        for name, count in counts.dropped.items():
            warnings.append(f"{count:,} value(s) of {name} are longer than {MAX_VALUE_BYTES} bytes: "
                            "they are left out of the upload.")
        warnings.append(custom_key_warning(options.columns, options.unsubscribe))
    profiles, to_unsubscribe = counts.profiles, counts.to_unsubscribe
    summary = PlanSummary(
        list_rows=counts.list_rows, profiles=profiles, to_unsubscribe=to_unsubscribe, to_append=counts.to_append,
        changes=counts.changes, already_unsubscribed=counts.already_unsubscribed, no_key=counts.no_key,
        duplicates=counts.duplicates, by_rule=dict(counts.by_rule),
        unsubscribe_pct=100.0 * to_unsubscribe / profiles if profiles else 0.0, guardrail_pct=guardrail_pct,
        prior_known=counts.prior_known, undeliverable_rows=counts.undeliverable_rows,
        undeliverable_matched=counts.undeliverable_matched, matched_rows=counts.matched_rows,
        matched_with_key=counts.matched_with_key)
    if summary.no_key:
        what = ("no identity or objectId" if context.method == METHOD_UPLOAD
                else "no address CleverTap could hold (empty, or failing the syntax check)")
        notes.append(f"{plural(summary.no_key, 'row has', 'rows have')} {what}: nothing is sent for them.")
    if summary.already_unsubscribed:
        were = plural(summary.already_unsubscribed, "matching profile was", "matching profiles were")
        notes.append(f"{were} already unsubscribed when the list was pulled: they are not sent again, and undo "
                     "will never re-subscribe them.")
    unknown = summary.to_unsubscribe - summary.prior_known if options.unsubscribe else 0
    if unknown and unknown > PRIOR_LOOKUP_MAX:
        unknowns = plural(unknown, "address", "addresses") if context.method == METHOD_SUBSCRIBE else \
            plural(unknown, "profile")
        notes.append(f"For {unknowns} to "
                     "unsubscribe the list does not say whether they are subscribed now, and that is more than "
                     f"the {PRIOR_LOOKUP_MAX:,} the app reads from CleverTap before sending: their state before "
                     "stays unknown. Choose below what undo does with them.")
    elif unknown and context.method == METHOD_SUBSCRIBE:
        these = "this address" if unknown == 1 else f"these {unknown:,} addresses"
        notes.append(f"Before sending, the app reads the current state of {these} from "
                     "CleverTap, so that undo can restore it. CleverTap shows a state only for an address that "
                     "has a profile. An address with no profile may still be unsubscribed at address level (an "
                     "earlier Subscribe call, a bounce), and no CleverTap API reads that: for those, the state "
                     "before cannot be known. Choose below what undo does with them.")
    elif unknown:
        notes.append(f"For {plural(unknown, 'profile')} the list does not say whether they are subscribed now: the "
                     "app reads it from CleverTap just before sending, so that undo can restore it.")
    if summary.over_guardrail:
        warnings.append(f"This would unsubscribe {summary.unsubscribe_pct:.1f}% of the list's profiles, more "
                        f"than the {guardrail_pct:g}% guardrail. Check the policy; to go ahead anyway, type "
                        f"the confirmation below.")
    if summary.changes == 0 and not errors:
        notes.append("Nothing to send: no profile matches these choices.")
    return summary, tuple(errors), tuple(warnings), tuple(notes)


def reason_table(unsubscribes: pd.DataFrame) -> pd.DataFrame:
    """Unsubscribes by policy rule and Clearout reason, largest first, from (rule, reason, Profiles) counts."""
    if unsubscribes.empty:
        return pd.DataFrame({"Rule": pd.Series(dtype=str), "Clearout reason": pd.Series(dtype=str),
                             "Profiles": pd.Series(dtype=int)})
    counts = (unsubscribes.assign(reason=unsubscribes["reason"].fillna("(no reason given)"))
              .groupby(["rule", "reason"], observed=True)["Profiles"].sum().reset_index()
              .sort_values(["Profiles", "rule", "reason"], ascending=[False, True, True], kind="stable"))
    return counts.rename(columns={"rule": "Rule", "reason": "Clearout reason"}).reset_index(drop=True)


def build_plan(merged: pd.DataFrame, *, list_id: int, job_id: int, list_name: str, email_column: str,
               identity_column: str | None, object_id_column: str | None, msg_email_column: str | None,
               options: ExportOptions, guardrail_pct: float, tag: str | None = None) -> ExportPlan:
    """The exact plan of an export of one verified list held in memory (no I/O); lib.export.planfile
    builds the same plan of a list of any size, a chunk at a time.

    Args:
        merged: the list's rows with the Clearout columns (`load_verified_rows`).
        guardrail_pct: the share of the list's profiles above which unsubscribing needs a typed
            confirmation (settings.export_guardrail_pct).
    """
    context, errors, notes = plan_context(
        email_column=email_column, identity_column=identity_column, object_id_column=object_id_column,
        msg_email_column=msg_email_column, options=options, tag=tag or new_tag())
    _, key_value, _ = chunk_keys(merged, context)
    first = ~pd.Series(key_value).duplicated(keep="first").to_numpy()
    changes, counts = plan_chunk(merged, first, context)
    # Unsubscribes first: they are what matters most, so a stopped run has done them, and the
    # payload sample shows one.
    changes = changes.sort_values("unsubscribe", ascending=False, kind="stable").reset_index(drop=True)
    summary, errors_out, warnings, notes_out = finish_plan(counts, context, errors, notes,
                                                           guardrail_pct=guardrail_pct)
    unsub = changes[changes["unsubscribe"]]
    reasons = reason_table(unsub[["rule", "reason"]].assign(Profiles=1))
    return ExportPlan(list_id=list_id, job_id=job_id, list_name=list_name, method=context.method,
                      options=context.options, tag=context.tag, changes=changes, summary=summary,
                      errors=errors_out, warnings=warnings, notes=notes_out, reasons=reasons)


def _blank_to_na(values: pd.Series) -> pd.Series:
    text = values.astype("string[pyarrow]").str.strip()
    return text.mask(text == "")


def _profile_keys(merged: pd.DataFrame, identity_column: str | None,
                  object_id_column: str | None) -> tuple[pd.Series, pd.Series]:
    """Per row: which key to send (identity wins: it is what the team manages) and its value."""
    none = pd.Series(pd.NA, index=merged.index, dtype="string[pyarrow]")
    identity = _blank_to_na(merged[identity_column]) if identity_column else none
    object_id = _blank_to_na(merged[object_id_column]) if object_id_column else none
    # numpy's stubs do not allow None as a choice; object arrays hold it fine.
    key_type = np.where(identity.notna(), KEY_IDENTITY,
                        np.where(object_id.notna(), KEY_OBJECT_ID, None))  # type: ignore[call-overload]
    return pd.Series(key_type, index=merged.index, dtype=object), identity.fillna(object_id)


def _rule_labels(merged: pd.DataFrame, rules: tuple[str, ...]) -> pd.Series:
    """Per row, the label of the first policy rule its verdict matches (None: not unsubscribed)."""
    status = merged[co.STATUS]
    soft = (status == co.INVALID) & (merged[co.BOUNCE_TYPE].astype("string[pyarrow]").str.lower() == SOFT_BOUNCE) \
        & (merged[co.REASON].fillna("") != SPAM_TRAP_REASON)
    soft = soft.fillna(False).to_numpy(dtype=bool)
    masks = {
        "invalid": (status == co.INVALID).to_numpy() & ~soft,
        "soft_bounce": soft,
        "disposable": (merged[co.DISPOSABLE] == co.YES).to_numpy(),
        "catch_all": (status == co.CATCH_ALL).to_numpy(),
        # An address missing from the result is "Unknown" too, but Clearout never judged it.
        "unknown": ((status == co.UNKNOWN) & (merged[co.REASON].fillna("") != NOT_IN_RESULT_REASON)).to_numpy(),
    }
    chosen = [r for r in RULES if r.code in rules]
    labels = np.select([masks[r.code] for r in chosen], [r.label for r in chosen],
                       default=None)  # type: ignore[call-overload]
    return pd.Series(labels, index=merged.index, dtype=object)
