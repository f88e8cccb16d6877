"""What the Export and History pages show of runs: progress, tables of runs, batches, changes, audit."""
from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa

from lib.clevertap import MAX_UPLOAD_BATCH
from lib.downloads import SPREADSHEET, csv_chunks
from lib.export.plan import (METHOD_SUBSCRIBE, PRIOR_LOOKUP_MAX, UNKNOWN_PRIOR_CHOICES, UNKNOWN_PRIOR_LEAVE,
                             UNKNOWN_PRIOR_RESUBSCRIBE, ExportPlan, confirmation_phrase)
from lib.export.undo import SKIP_NOT_FOUND, SKIP_OTHER, UndoPreview
from lib.figures import Metric, plural
from lib.runtime import Clients, MissingSecretError
from lib.progress import activity_line, run_subject
from lib.store import Activity, Connection, ExportRun, Store


def dashboard_help(region: str, *, undo: bool = False) -> str:
    """Where a person checks the result in CleverTap's own dashboard."""
    host = f"{region.lower()}.dashboard.clevertap.com"
    shows = "no longer shows Email as *Unsubscribed*" if undo else "shows Email as *Unsubscribed*"
    return (f"To see it in the CleverTap dashboard ({host}): open a profile and look at **Communication "
            f"preferences**, which {shows}; or **Segments → Find People → Reachability → Unsubscribed "
            "email** for everyone at once.")


@dataclass(frozen=True)
class RunStatus:
    run: ExportRun
    batches_done: int
    batches_total: int
    processed: int
    unprocessed: int
    skipped: int
    doing: Activity | None = None  # what the worker is doing for the run now (lib.progress)

    @property
    def fraction(self) -> float:
        """Batches done, and for a run that checks profiles first (undo), how far within the batch."""
        if not self.batches_total:
            return 0.0
        within = 0.0
        if (self.run.policy.get("check_before_write") and self.doing is not None and self.doing.total
                and self.doing.done is not None and self.batches_done < self.batches_total):
            within = min(1.0, self.doing.done / self.doing.total)
        return min(1.0, (self.batches_done + within) / self.batches_total)

    @property
    def activity(self) -> str | None:
        """The current step, a wait, retries, in words; None when nothing was reported."""
        return activity_line(self.doing) if self.run.state in ExportRun.ACTIVE_STATES else None

    @property
    def waiting(self) -> str | None:
        """Why a running run does not progress (a passcode the server lost after a restart)."""
        return self.run.error if self.run.state == "running" and self.run.error else None

    @property
    def reading_back(self) -> bool:
        """Every batch is sent and the run is reading a sample back from CleverTap."""
        return self.run.state == "running" and self.batches_total > 0 and self.batches_done == self.batches_total

    @property
    def line(self) -> str:
        return (f"{self.batches_done:,} of {self.batches_total:,} batches · {self.processed:,} processed · "
                f"{self.unprocessed:,} unprocessed" + (f" · {self.skipped:,} left alone" if self.skipped else ""))


def run_status(store: Store, run_id: int) -> RunStatus:
    progress = store.export_progress(run_id)
    outcomes = store.export_outcome_counts(run_id)
    return RunStatus(run=store.export_run(run_id), batches_done=progress["batches_done"],
                     batches_total=progress["batches_total"], processed=progress["processed"],
                     unprocessed=progress["unprocessed"], skipped=outcomes.get("skipped", 0),
                     doing=store.activity(run_subject(run_id)))


@dataclass(frozen=True)
class UndoStatus:
    """What became of an export run's unsubscribes once an undo of it was asked for."""
    undo: ExportRun
    left_unsubscribed: int  # profiles the run unsubscribed that the undo did not re-subscribe (done undos)

    @property
    def word(self) -> str:
        """`undone`, `partly undone`, `undo running`, `undo failed` or `undo stopped`."""
        if self.undo.state in ExportRun.ACTIVE_STATES:
            return "undo running"
        if self.undo.state == "failed":
            return "undo failed"
        if self.undo.state == "cancelled":
            return "undo stopped"
        return "partly undone" if self.left_unsubscribed else "undone"

    @property
    def line(self) -> str:
        """The word with the undo run and, when partly undone, what is left."""
        left = (f": {plural(self.left_unsubscribed, 'profile')} left unsubscribed"
                if self.word == "partly undone" else "")
        return f"{self.word} by run {self.undo.id}{left}"


# Why an undo left a profile as it is: those still unsubscribed by the run count as "left".
_STILL_UNSUBSCRIBED = (SKIP_OTHER, SKIP_NOT_FOUND)


def undo_statuses(store: Store, runs: Sequence[ExportRun]) -> dict[int, UndoStatus]:
    """Per export run that has an undo (the latest one that did not fail, else the latest), its status."""
    undos: dict[int, ExportRun] = {}
    for undo in sorted((r for r in runs if r.kind == "undo" and r.parent_run_id is not None), key=lambda r: r.id):
        parent = undo.parent_run_id or 0
        if parent not in undos or undo.state != "failed" or undos[parent].state == "failed":
            undos[parent] = undo
    return {parent: UndoStatus(undo, _left_unsubscribed(store, undo)) for parent, undo in undos.items()}


def undo_status(store: Store, run: ExportRun) -> UndoStatus | None:
    return undo_statuses(store, store.list_export_runs(parent_run_id=run.id, kinds=["undo"])).get(run.id)


def _left_unsubscribed(store: Store, undo: ExportRun) -> int:
    """Profiles the parent run unsubscribed that stay unsubscribed after this (finished) undo: those it
    could not know to be ours (state before unknown), CleverTap left unprocessed, or left alone because
    another run or CleverTap holds them now."""
    if undo.state != "done":
        return 0
    asked = undo.counts.get("undo", {})
    skipped = store.export_skip_reasons(undo.id)
    still = sum(n for why, n in skipped.items() if why in _STILL_UNSUBSCRIBED)
    left_alone = int(asked.get("prior_unknown", 0)) - int(asked.get("assumed", 0))  # unknown, not re-subscribed
    return left_alone + undo.unprocessed + still


KIND_WORDS = {"export": "Export", "retry": "Retry", "undo": "Undo"}


def run_state_words(run: ExportRun, undone: UndoStatus | None) -> str:
    """A run's state as History lists it: an export that was undone says so."""
    return run.state if undone is None else f"{run.state}, {undone.word}"


def runs_table(runs: Sequence[ExportRun], undone: dict[int, UndoStatus] | None = None) -> pd.DataFrame:
    """One row per run for the History page (`undone`: `undo_statuses` of these runs)."""
    undone = undone or {}
    return pd.DataFrame({
        "Run": [r.id for r in runs],
        "Kind": [KIND_WORDS[r.kind] + (f" of {r.parent_run_id}" if r.parent_run_id else "") for r in runs],
        "When (UTC)": [r.created_at.replace("T", " ")[:19] for r in runs],
        "Who": [r.actor for r in runs],
        "List": [r.list_name for r in runs],
        "Project": [f"{r.connection_name} ({r.account_id}, {r.region})" for r in runs],
        "Actions": [", ".join(r.actions) for r in runs],
        "Policy": [", ".join(r.policy.get("rules") or []) or "-" for r in runs],
        "State": [run_state_words(r, undone.get(r.id)) for r in runs],
        "Records": [r.planned_records for r in runs],
        "Processed": [r.processed for r in runs],
        "Unprocessed": [r.unprocessed for r in runs],
        "Tag": [r.tag for r in runs],
    })


def batches_table(store: Store, run_id: int) -> pd.DataFrame:
    batches = store.export_batches(run_id)
    return pd.DataFrame({"Batch": [b.batch_no + 1 for b in batches], "State": [b.state for b in batches],
                         "Records": [b.records for b in batches], "Processed": [b.processed for b in batches],
                         "Unprocessed": [b.unprocessed for b in batches], "Attempts": [b.attempts for b in batches],
                         "Error": [b.error or "" for b in batches],
                         "Finished (UTC)": [(b.finished_at or "").replace("T", " ")[:19] for b in batches]})


def run_changes(store: Store, run_id: int, *, outcomes: Sequence[str] | None = None,
                limit: int | None = None) -> pd.DataFrame:
    """A run's changes in words with their outcome (the table and download of History)."""
    changes = store.export_changes(run_id, outcomes=outcomes, limit=limit)
    table = changes_table(changes).drop(columns=["Rule", "Clearout status", "Clearout reason"])
    if store.export_run(run_id).kind == "undo":
        table["Action"] = "Re-subscribe"
    table["Outcome"] = changes["outcome"]
    table["Why"] = changes["error"].fillna("")
    return table


def audit_table(store: Store, *, run_id: int | None = None, limit: int = 500) -> pd.DataFrame:
    entries = store.audit_log(run_id=run_id, limit=limit)
    return pd.DataFrame({"When (UTC)": [e.at.replace("T", " ")[:19] for e in entries],
                         "Who": [e.actor for e in entries],
                         "Project": [f"{e.account_id} ({e.region})" for e in entries],
                         "Endpoint": [e.endpoint for e in entries], "Run": [e.run_id for e in entries],
                         "Batch": [None if e.batch_no is None else e.batch_no + 1 for e in entries],
                         "Records": [e.records for e in entries], "Processed": [e.processed for e in entries],
                         "Unprocessed": [e.unprocessed for e in entries], "Outcome": [e.outcome for e in entries],
                         "Detail": [e.detail or "" for e in entries]})


def read_back_table(run: ExportRun) -> pd.DataFrame | None:
    rows = run.counts.get("read_back", {}).get("rows")
    if not rows:
        return None
    words = {True: "yes", False: "no", None: "cannot be read"}
    return pd.DataFrame({"Key": [r["key_type"] for r in rows], "Value": [r["key_value"] for r in rows],
                         "Expected": [r["expected"] for r in rows], "Found": [r["found"] for r in rows],
                         "As planned": [words[r["confirmed"]] for r in rows]})


@dataclass(frozen=True)
class ReadBackSummary:
    confirmed: int   # read back exactly as planned
    different: int   # read back otherwise (or not found)
    unreadable: int  # addresses with no profile: an address-level preference no API reads

    @property
    def line(self) -> str:
        """What the check found, in words; an address with no profile is not "not found"."""
        readable = self.confirmed + self.different
        said = (f"**Read-back check:** {self.confirmed} of {readable} sampled profiles read back from CleverTap "
                "exactly as planned." if readable else "**Read-back check:**")
        if self.unreadable:
            said += (f" {plural(self.unreadable, 'sampled address', 'sampled addresses')} "
                     f"{'has' if self.unreadable == 1 else 'have'} no profile in CleverTap: the address-level "
                     "preference was accepted, but CleverTap shows it only on a profile with that address (one "
                     "created later follows it), so it cannot be read back.")
        return said


def read_back_summary(run: ExportRun) -> ReadBackSummary | None:
    rows = run.counts.get("read_back", {}).get("rows")
    if not rows:
        return None
    return ReadBackSummary(confirmed=sum(1 for r in rows if r["confirmed"] is True),
                           different=sum(1 for r in rows if r["confirmed"] is False),
                           unreadable=sum(1 for r in rows if r["confirmed"] is None))


def reason_counts(plan: ExportPlan) -> pd.DataFrame:
    """Unsubscribes by policy rule and Clearout reason, largest first."""
    return plan.reasons


def changes_table(changes: pd.DataFrame) -> pd.DataFrame:
    """A plan's (or run's) changes in words: what a person reads or downloads."""
    prior = changes["prior_msg_email"].astype("boolean")
    action = np.where(changes["unsubscribe"].astype(bool), "Unsubscribe", "")
    has_props = changes["properties_json"].notna().to_numpy()
    action = np.where(has_props & (action != ""), "Unsubscribe + append", np.where(has_props, "Append", action))
    return pd.DataFrame({
        "Key": changes["key_type"].astype(str),
        "Value": changes["key_value"].astype(str),
        "Email": changes["email"],
        "Action": action,
        "Rule": changes.get("rule", pd.Series(pd.NA, index=changes.index)),
        "Clearout status": changes.get("status", pd.Series(pd.NA, index=changes.index)),
        "Clearout reason": changes.get("reason", pd.Series(pd.NA, index=changes.index)),
        "MSG-email before": prior.map({True: "subscribed", False: "unsubscribed"}).fillna("unknown"),
        "Properties": changes["properties_json"],
    })


CHANGES_SCHEMA = pa.schema([(name, pa.string()) for name in (
    "Key", "Value", "Email", "Action", "Rule", "Clearout status", "Clearout reason", "MSG-email before", "Properties")])


def changes_csv_chunks(batches: Iterable[pd.DataFrame], flavour: str = SPREADSHEET) -> Iterator[bytes]:
    """`changes_table` of each batch of changes as one CSV file (lib.downloads' flavours), streamed."""
    def tables() -> Iterator[pa.RecordBatch]:
        for changes in batches:
            table = changes_table(changes)
            yield pa.RecordBatch.from_arrays(
                [pa.array(table[name].astype("string[pyarrow]").array, pa.string()) for name in CHANGES_SCHEMA.names],
                schema=CHANGES_SCHEMA)
    return csv_chunks(CHANGES_SCHEMA, tables(), flavour=flavour)


def changes_csv(changes: pd.DataFrame, flavour: str = SPREADSHEET) -> bytes:
    """`changes_table` as one CSV file."""
    return b"".join(changes_csv_chunks([changes], flavour))


# ---- the Export page's decisions ----------------------------------------------------------------
def progress_text(status: RunStatus) -> str:
    """The progress bar's words for a run that is not finished."""
    if status.run.state == "planned":
        planned = status.run.counts.get("plan", {}).get("changes")
        return (f"Recording the plan ({planned:,} records) before sending: nothing is sent yet…" if planned
                else "Recording the plan before sending: nothing is sent yet…")
    if status.activity:  # what the worker does now: reading state first, a rate-limit wait, retries
        return status.activity
    return ("All sent: reading a sample back from CleverTap… " if status.reading_back else "Sending… ") + status.line


def waiting_for_passcode(clients: Clients, connection: Connection) -> str | None:
    """Why a run to this project would wait (the app no longer holds its passcode), or None."""
    try:
        clients.clevertap(connection)
    except MissingSecretError as exc:
        return f"{exc.message} An export applied now waits until then."
    return None


def plan_metrics(plan: ExportPlan) -> list[Metric]:
    """The dry run's headline: what the list reaches, and what will be sent in how many calls."""
    s = plan.summary
    calls = -(-s.changes // MAX_UPLOAD_BATCH)
    return [
        Metric("Addresses in the list" if plan.method == METHOD_SUBSCRIBE else "Profiles in the list",
               f"{s.profiles:,}", help="Distinct profiles (or addresses) the list can reach"),
        Metric("To unsubscribe", f"{s.to_unsubscribe:,}", f"{s.unsubscribe_pct:.1f}% of the list"),
        Metric("To append to", f"{s.to_append:,}"),
        Metric("Records to send", f"{s.changes:,}",
               f"{plural(calls, 'call')} of ≤{MAX_UPLOAD_BATCH:,}"),
    ]


@dataclass(frozen=True)
class ApplyReadiness:
    label: str
    disabled: bool
    note: str | None  # said before the button (another run still sending)


def apply_readiness(plan: ExportPlan, confirmation: str, connection_name: str,
                    active: ExportRun | None, unknown_prior: str | None = None) -> ApplyReadiness:
    """Whether the dry run may be applied now: no errors, something to send, over the guardrail only
    with the typed confirmation, and a choice made for states before that cannot be known."""
    s = plan.summary
    confirmed = not s.over_guardrail or confirmation.strip() == confirmation_phrase(plan)
    chosen = not plan.needs_prior_choice or unknown_prior in UNKNOWN_PRIOR_CHOICES
    note = f"Run {active.id} is still sending: this one starts when it ends." if active is not None else None
    return ApplyReadiness(f"Apply: send {plural(s.changes, 'record')} to {connection_name}",
                          disabled=not (plan.can_apply and confirmed and chosen), note=note)


def prior_choice_question(plan: ExportPlan) -> str:
    """The question the dry run asks when some states before cannot be known (`plan.needs_prior_choice`)."""
    if plan.method == METHOD_SUBSCRIBE and plan.unknown_before <= PRIOR_LOOKUP_MAX:
        return ("If this run is undone, what happens to the addresses CleverTap has no profile for (their "
                "state before the run cannot be read)?")
    return (f"If this run is undone, what happens to the {plan.unknown_before:,} whose state before the run "
            "stays unknown?")


def policy_line(run: ExportRun) -> str:
    """A run's tag, rules, appended properties and endpoint in one line (History), plain text."""
    policy = run.policy
    appended = ", ".join(name for _, name in policy.get("properties") or []) or "-"
    how = "per profile (/1/upload)" if run.method == "upload" else "per address (/1/subscribe)"
    return (f"Tag {run.tag} · policy: {', '.join(policy.get('rules') or []) or '-'} · "
            f"appended: {appended} · {how}")


# ---- the undo dry run (History) -----------------------------------------------------------------
def undo_choice_question(preview: UndoPreview) -> str:
    """Asked when a run recorded no choice for unknown states before (runs applied before it was asked)."""
    c = preview.counts
    no_profile = c.get("no_profile", 0)
    why = (f" ({plural(no_profile, 'address', 'addresses')} CleverTap had no profile for, so no state to read)"
           if no_profile else "")
    return (f"For {plural(c['prior_unknown'], 'unsubscribe')} of this run the state before is unknown{why}. "
            "Should undo re-subscribe them?")


def undo_metrics(preview: UndoPreview, choice: str | None) -> list[Metric]:
    """What an undo will do with `choice` for unknown states before (the recorded one, or made now)."""
    c = preview.counts
    choice = preview.choice or choice
    unknown_fate = ("re-subscribed, as chosen" if choice == UNKNOWN_PRIOR_RESUBSCRIBE else
                    "left alone, as chosen" if choice == UNKNOWN_PRIOR_LEAVE else "choose below")
    if preview.choice and preview.chosen_by:
        unknown_fate += f" by {preview.chosen_by} before applying"
    return [
        Metric("Unsubscribed by the run", f"{c['unsubscribed_by_run']:,}"),
        Metric("Will be re-subscribed", f"{preview.resubscribes(choice):,}",
               help="" if preview.checked_all else "At most: each is checked just before writing"),
        Metric("Unsubscribed before: left alone", f"{c['were_unsubscribed_before']:,}"),
        Metric("State before unknown", f"{c.get('prior_unknown', 0):,}", unknown_fate if c.get("prior_unknown") else "",
               help="Addresses CleverTap had no profile for (no API reads an address-level preference), or more "
                    "than the app reads before sending"),
    ]
