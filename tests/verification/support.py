"""Test helpers for verification: ready lists written straight to the store, and cache verdicts.

Lists are made here directly (Parquet at `store.list_path`, a 'ready' record with its stats) so
these tests do not depend on the CSV import.
"""
from __future__ import annotations

from datetime import datetime
from collections.abc import Sequence

import pandas as pd

from lib import columns as C
from lib.emails import normalise_emails, valid_syntax_mask
from lib.store import ListRecord, Store, VerificationJob
from lib.verification.plan import plan_verification
from lib.verification.start import prepare_job, start_verification
from tests.access_support import OPERATOR


def make_list(store: Store, emails: Sequence[str | None], *, name: str = "Newsletter",
              mode: str = "sandbox", email_column: str = "Email") -> ListRecord:
    """A ready CSV-like list whose rows hold `emails` (plus a Name column), stats filled in."""
    frame = pd.DataFrame({"Name": [f"person {i}" for i in range(len(emails))],
                          email_column: pd.Series(list(emails), dtype="string[pyarrow]")})
    frame["Name"] = frame["Name"].astype("string[pyarrow]")
    record = store.create_list(name=name, mode=mode, source_kind="csv", source=f"{name}.csv", state="ready")
    path = store.list_path(record.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    normalised = normalise_emails(frame[email_column])
    valid = valid_syntax_mask(normalised)
    valid_count = int(valid.sum())
    unique = int(normalised[valid].nunique())
    return store.update_list(record.id, email_column=email_column, rows=len(frame), valid_emails=valid_count,
                             unique_emails=unique, duplicates=valid_count - unique,
                             missing_emails=int(normalised.isna().sum()))


def verdicts(emails: Sequence[str], status: str = C.VALID) -> pd.DataFrame:
    """Cache-ready verdicts (`email` + the 15 columns) with one status for every address."""
    safe = {C.VALID: C.YES, C.INVALID: C.NO, C.CATCH_ALL: C.RISKY, C.UNKNOWN: C.UNKNOWN}[status]
    n = len(emails)
    frame = pd.DataFrame({"email": list(emails)})
    for name in C.CLEAROUT_COLUMN_NAMES:
        frame[name] = [None] * n
    frame[C.STATUS], frame[C.SAFE_TO_SEND], frame[C.REASON] = status, safe, "from the cache"
    frame[C.DOMAIN] = [e.split("@")[-1] for e in emails]
    return frame


def start(store: Store, list_id: int, credits: int | None = 1_000_000, *, cache_days: int = 30,
          now: datetime | None = None, mode: str = "sandbox", part_rows: int = 500_000) -> VerificationJob:
    """Price, request and prepare a run as the Verify page and then the worker do: the job as prepared
    ('queued' with its upload file, or 'done' when nothing was to be bought)."""
    price = plan_verification(store, list_id, cache_days=cache_days, now=now)
    job = start_verification(store, price, available_credits=credits, mode=mode, user=OPERATOR)
    return prepare_job(store, job, cache_days=cache_days, now=now, part_rows=part_rows)
