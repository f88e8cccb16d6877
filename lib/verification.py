"""Planning a verification run and assembling its verdicts: what to buy, what the cache and the
syntax check give for free, and the verdicts file every later step reads.

A run costs one credit per distinct normalised address that passes the local syntax check and has
no fresh verdict in the cache. "Fresh" means verified within `verify_cache_days` and not Unknown:
Unknown is Clearout's "could not tell, try later", so it is never reused.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from lib import columns as C
from lib.emails import normalise_emails, valid_syntax_mask
from lib.store import ListRecord, Store, VerificationJob, utc_now

UPLOAD_FILE = "upload.csv"
UPLOAD_HEADER = "Email"  # Clearout requires an Email column (1004 otherwise)
SYNTAX_REASON = "Syntax error"
MISSING_REASON = "Not in the Clearout result"


class VerificationError(RuntimeError):
    """A run cannot start as asked; the message says why and what to do."""


class InsufficientCreditsError(VerificationError):
    def __init__(self, needed: int, available: int, reserved: int) -> None:
        self.needed, self.available, self.reserved = needed, available, reserved
        self.shortfall = needed - (available - reserved)
        held = f", of which {reserved:,} are held for jobs already started" if reserved else ""
        super().__init__(f"This run needs {needed:,} credits and the balance is {available:,}{held}: "
                         f"{self.shortfall:,} more are needed. Buy credits at clearout.io, then start again.")


@dataclass(frozen=True)
class VerificationPlan:
    """What a run of one list costs. `unique_emails = cached + syntax_invalid + to_verify`."""

    list_id: int
    unique_emails: int   # distinct normalised addresses of the list
    cached: int          # with a fresh verdict in the cache: free
    syntax_invalid: int  # failing the local syntax check: marked Invalid for free
    to_verify: int       # to buy: one credit each at most (Clearout does not charge Unknown)
    upload: pd.Series = field(repr=False, compare=False)  # the addresses to buy

    @property
    def credits_saved(self) -> int:
        return self.cached + self.syntax_invalid


def fresh_since(cache_days: int, now: datetime | None = None) -> str:
    """The oldest `verified_on` (ISO UTC, as the store writes it) still fresh enough to reuse."""
    now = now or datetime.now(timezone.utc)
    return (now - timedelta(days=cache_days)).isoformat(timespec="seconds")


def list_addresses(store: Store, record: ListRecord) -> pd.Series:
    """Distinct normalised addresses of a list (Arrow strings), in first-seen order."""
    if record.state != "ready" or not record.email_column:
        raise VerificationError(f"The list {record.name!r} is not ready to verify: it has no email column "
                                "or is still loading. Check it on the Lists page.")
    column = record.email_column
    table = pd.read_parquet(store.list_path(record.id), columns=[column])
    emails = normalise_emails(table[column])
    return emails.dropna().drop_duplicates().reset_index(drop=True)


def plan_verification(store: Store, list_id: int, *, cache_days: int,
                      now: datetime | None = None) -> VerificationPlan:
    """Count what verifying a list costs now, and which addresses would be bought."""
    record = store.get_list(list_id)
    if record is None:
        raise VerificationError("That list no longer exists: pick another one.")
    addresses = list_addresses(store, record)
    valid = valid_syntax_mask(addresses).to_numpy()
    candidates = addresses[valid]
    fresh = store.fresh_cached_emails(candidates, fresh_since=fresh_since(cache_days, now))
    cached_mask = member_mask(candidates, fresh)
    upload = candidates[~cached_mask].reset_index(drop=True)
    return VerificationPlan(list_id=list_id, unique_emails=len(addresses), cached=int(cached_mask.sum()),
                            syntax_invalid=int((~valid).sum()), to_verify=len(upload), upload=upload)


def member_mask(values: pd.Series, members: list[str] | pd.Series) -> pd.Series:
    """Vectorised membership on Arrow strings (pandas' isin on objects is several times slower)."""
    if len(members) == 0 or len(values) == 0:
        return pd.Series(False, index=values.index)
    mask = pc.is_in(pa.array(values.astype("string[pyarrow]")), value_set=pa.array(members, pa.string()))
    return pd.Series(mask.to_numpy(zero_copy_only=False), index=values.index).fillna(False).astype(bool)


def upload_name(record: ListRecord, job_id: int) -> str:
    """The file name Clearout shows and keys its duplicate guard on: unique per job, stable on retry."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", record.name).strip("-.")[:60] or "list"
    return f"{slug}-job{job_id}.csv"


def write_upload_file(addresses: pd.Series, path: Path) -> int:
    """Write the addresses to buy as a CSV with the header `Email`; atomic (a reader never sees half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    table = pa.table({UPLOAD_HEADER: pa.array(addresses.astype("string[pyarrow]"), pa.string())})
    with partial.open("wb") as file:
        # pyarrow quotes the header regardless; addresses that pass the syntax check hold no comma,
        # quote or newline, so the rows need no quoting either.
        file.write(f"{UPLOAD_HEADER}\n".encode())
        pacsv.write_csv(table, file, pacsv.WriteOptions(include_header=False, quoting_style="none"))
    os.replace(partial, path)
    return len(addresses)


def read_upload_file(path: Path) -> pd.Series:
    if not path.exists():
        return pd.Series([], dtype="string[pyarrow]")
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={UPLOAD_HEADER: pa.string()}))
    return table.column(UPLOAD_HEADER).to_pandas(types_mapper=pd.ArrowDtype).astype("string[pyarrow]")


UNFINISHED_STATES = ("preparing", "queued", *VerificationJob.ACTIVE_STATES)


def unfinished_job(store: Store, list_id: int) -> VerificationJob | None:
    """The list's job still in flight, if any: one run per list at a time, or credits are spent twice."""
    jobs = store.list_jobs(list_id=list_id, states=UNFINISHED_STATES, limit=1)
    return jobs[0] if jobs else None


def start_verification(store: Store, list_id: int, *, cache_days: int,
                       available_credits: int | Callable[[], int] | None, mode: str,
                       now: datetime | None = None) -> VerificationJob:
    """Plan a run, check the balance, write `upload.csv` and queue the job.

    A run with nothing to buy is done at once, without any Clearout call.

    Args:
        available_credits: the Clearout balance, or a function reading it (called only when
            something is to be bought); None when it cannot be known.

    Raises:
        InsufficientCreditsError: the balance, minus credits held by jobs already started, is short.
        VerificationError: the list cannot be verified (missing, not ready, already in flight).
    """
    if running := unfinished_job(store, list_id):
        raise VerificationError(f"This list is already being verified (job {running.id}, "
                                f"{running.state}): follow it below, or cancel it to start again.")
    plan = plan_verification(store, list_id, cache_days=cache_days, now=now)
    if plan.to_verify:
        if callable(available_credits):
            available_credits = available_credits()
        if available_credits is None:
            raise VerificationError("The Clearout balance is unknown: enter your Clearout token on Connect.")
        reserved = store.reserved_credits(mode)
        if plan.to_verify > available_credits - reserved:
            raise InsufficientCreditsError(plan.to_verify, available_credits, reserved)
    # 'preparing' keeps the worker away until the upload file is complete.
    job = store.create_job(list_id=list_id, unique_emails=plan.unique_emails, cached=plan.cached,
                           syntax_invalid=plan.syntax_invalid, to_verify=plan.to_verify, state="preparing")
    try:
        if not plan.to_verify:
            write_job_verdicts(store, job, new_verdicts=None)
            store.transition_job(job.id, ("preparing",), state="done", credits_spent=0, percent=100.0,
                                 started_at=utc_now(), finished_at=utc_now())
        else:
            write_upload_file(plan.upload, store.job_dir(job.id) / UPLOAD_FILE)
            store.transition_job(job.id, ("preparing",), state="queued",
                                 upload_name=upload_name(store.get_list(list_id), job.id))
    except BaseException:
        store.transition_job(job.id, ("preparing",), state="failed", finished_at=utc_now(),
                             error="Preparing the upload failed: start the verification again.")
        raise
    return store.get_job(job.id)


# ---- verdicts ---------------------------------------------------------------------------------
def _fixed_verdicts(emails: pd.Series, *, status: str, safe_to_send: str, reason: str) -> pd.DataFrame:
    """The same verdict for every address, with nothing else known about them."""
    n = len(emails)
    frame = pd.DataFrame({"email": emails.astype("string[pyarrow]").reset_index(drop=True)})
    for name in C.CLEAROUT_COLUMN_NAMES:
        frame[name] = pd.Series([None] * n, dtype="object")
    frame[C.STATUS], frame[C.SAFE_TO_SEND], frame[C.REASON] = status, safe_to_send, reason
    return C.conform_clearout_columns(frame, keep=("email",))


def syntax_verdicts(emails: pd.Series) -> pd.DataFrame:
    """Verdicts for addresses that fail the syntax check: Invalid, not safe, "Syntax error"."""
    return _fixed_verdicts(emails, status=C.INVALID, safe_to_send=C.NO, reason=SYNTAX_REASON)


def _unknown_verdicts(emails: pd.Series, reason: str) -> pd.DataFrame:
    return _fixed_verdicts(emails, status=C.UNKNOWN, safe_to_send=C.UNKNOWN, reason=reason)


# Clearout's documented test addresses (`<x>@example.com`) answer fixed verdicts for free.
FREE_TEST_ADDRESSES = frozenset(f"{x}@example.com" for x in (
    "valid", "invalid", "catch_all", "unknown", "safe_to_send_yes", "safe_to_send_no", "safe_to_send_risky",
    "disposable", "role", "free", "gibberish", "hard_bounce", "soft_bounce", "suggested_email_address",
    "syntax_error", "greylisted", "spamtrap", "blocklist_email_address", "allowlist_email_address",
    "blocklist_domain", "allowlist_domain", "domain_not_found", "not_a_mailserver", "mailbox_not_found",
    "mailbox_quota_exceeded", "dns_query_timeout", "unroutable_mailserver", "overquota_and_inactive",
    "receiving_limit_reached"))


def credits_spent(new_verdicts: pd.DataFrame) -> int:
    """Credits a result cost: one per address, except Unknown results and Clearout's test addresses."""
    charged = (new_verdicts[C.STATUS] != C.UNKNOWN).fillna(True).to_numpy()
    free = member_mask(new_verdicts["email"], sorted(FREE_TEST_ADDRESSES)).to_numpy()
    return int((charged & ~free).sum())


def write_job_verdicts(store: Store, job: VerificationJob, new_verdicts: pd.DataFrame | None) -> int:
    """Write the verdicts file of a finished job: one row per distinct address of its list.

    New verdicts (the addresses uploaded), cached ones for the rest of the valid addresses, and
    syntax failures; an uploaded address missing from the result is Unknown. Returns the row count.
    """
    record = store.get_list(job.list_id)
    addresses = list_addresses(store, record)
    valid = valid_syntax_mask(addresses).to_numpy()
    candidates = addresses[valid].reset_index(drop=True)
    uploaded = read_upload_file(store.job_dir(job.id) / UPLOAD_FILE)
    uploaded_mask = member_mask(candidates, uploaded).to_numpy()
    parts = []
    if new_verdicts is not None and len(uploaded):
        new = C.conform_clearout_columns(new_verdicts, keep=("email",))
        new = new[member_mask(new["email"], uploaded).to_numpy()]
        missing = uploaded[~member_mask(uploaded, new["email"]).to_numpy()]
        parts += [_sourced(new, C.SOURCE_NEW), _sourced(_unknown_verdicts(missing, MISSING_REASON), C.SOURCE_NEW)]
    cached_emails = candidates[~uploaded_mask]
    if len(cached_emails):
        cached = store.cached_verdicts(cached_emails).drop(columns="verified_on")
        gone = cached_emails[~member_mask(cached_emails, cached["email"]).to_numpy()]
        parts += [_sourced(cached, C.SOURCE_CACHED),
                  _sourced(_unknown_verdicts(gone, MISSING_REASON), C.SOURCE_CACHED)]
    parts.append(_sourced(syntax_verdicts(addresses[~valid]), C.SOURCE_SYNTAX))
    verdicts = pd.concat(parts, ignore_index=True)
    path = store.job_verdicts_path(job.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    verdicts.to_parquet(partial, index=False)
    os.replace(partial, path)
    return len(verdicts)


def _sourced(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    out = C.conform_clearout_columns(frame, keep=("email",))
    out["email"] = out["email"].astype("string[pyarrow]")
    out[C.VERDICT_SOURCE] = pd.Categorical([source] * len(out), dtype=C.SOURCE_DTYPE)
    return out
