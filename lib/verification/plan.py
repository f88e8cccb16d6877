"""Planning a verification run: what to buy, what the cache and the syntax check give for free, and
where each job's upload file lives.

A run costs one credit per distinct normalised address that passes the local syntax check and has
no fresh verdict in the cache. "Fresh" means verified within `verify_cache_days` and not Unknown:
Unknown is Clearout's "could not tell, try later", so it is never reused.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, UTC
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from lib.errors import UserError
from lib.store import ListRecord, Store, VerificationJob
from lib.verification import addresses
from lib.verification.addresses import UPLOAD_HEADER

UPLOAD_FILE = "upload.csv"


class VerificationError(UserError):
    """A run cannot start as asked; the message says why and what to do."""


class InsufficientCreditsError(VerificationError):
    def __init__(self, needed: int, available: int, reserved: int) -> None:
        self.needed, self.available, self.reserved = needed, available, reserved
        self.shortfall = needed - (available - reserved)
        held = f", of which {reserved:,} are held for jobs already started" if reserved else ""
        super().__init__(f"Not enough credits: this run needs {needed:,} and the balance is {available:,}{held}. "
                         f"Buy at least {self.shortfall:,} more at clearout.io, then start again: nothing has been "
                         "started or charged.")


def credit_shortage(needed: int, available: int, reserved: int) -> InsufficientCreditsError | None:
    """The error to show when `needed` credits exceed the balance less those held by started jobs."""
    return InsufficientCreditsError(needed, available, reserved) if needed > available - reserved else None


@dataclass(frozen=True)
class VerificationPlan:
    """What a run of one list costs. `unique_emails = cached + syntax_invalid + to_verify`."""

    list_id: int
    unique_emails: int   # distinct normalised addresses of the list
    cached: int          # with a fresh verdict in the cache: free
    syntax_invalid: int  # failing the local syntax check: marked Invalid for free
    to_verify: int       # to buy: one credit each at most (Clearout does not charge Unknown)

    @property
    def credits_saved(self) -> int:
        return self.cached + self.syntax_invalid

    def parts(self, part_rows: int) -> int:
        """How many files the addresses to buy go to Clearout as (Clearout advises at most
        `part_rows` rows per file)."""
        return -(-self.to_verify // part_rows) if self.to_verify else 0


def fresh_since(cache_days: int, now: datetime | None = None) -> str:
    """The oldest `verified_on` (ISO UTC, as the store writes it) still fresh enough to reuse."""
    now = now or datetime.now(UTC)
    return (now - timedelta(days=cache_days)).isoformat(timespec="seconds")


def ready_list(store: Store, list_id: int) -> ListRecord:
    """The list, if it can be verified.

    Raises:
        VerificationError: it is gone, still loading, or has no email column.
    """
    record = store.get_list(list_id)
    if record is None:
        raise VerificationError("That list no longer exists: pick another one.")
    if record.state != "ready" or not record.email_column:
        raise VerificationError(f"The list {record.name!r} is not ready to verify: it has no email column "
                                "or is still loading. Check it on the Lists page.")
    return record


def plan_verification(store: Store, list_id: int, *, cache_days: int,
                      now: datetime | None = None) -> VerificationPlan:
    """Count what verifying a list costs now (out of core: lib.verification.addresses)."""
    counts = addresses.count(store, ready_list(store, list_id), fresh_since=fresh_since(cache_days, now))
    return VerificationPlan(list_id=list_id, unique_emails=counts.unique_emails, cached=counts.cached,
                            syntax_invalid=counts.syntax_invalid, to_verify=counts.to_verify)


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


def upload_path(store: Store, job: VerificationJob) -> Path:
    """The file a job sends to Clearout: its own, or for a part, its number's file in the whole
    list's job folder (every attempt at a part sends the same file)."""
    if job.parent_job_id is not None:
        return store.job_dir(job.parent_job_id) / f"part-{job.part_no}.csv"
    return store.job_dir(job.id) / UPLOAD_FILE


def read_upload_file(path: Path) -> pd.Series:
    if not path.exists():
        return pd.Series([], dtype="string[pyarrow]")
    table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(column_types={UPLOAD_HEADER: pa.string()}))
    return table.column(UPLOAD_HEADER).to_pandas(types_mapper=pd.ArrowDtype).astype("string[pyarrow]")


UNFINISHED_STATES = VerificationJob.UNFINISHED_STATES
