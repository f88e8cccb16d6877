"""A verified list on disk, as Lists and Verify leave it (docs/architecture.md, data contracts).

The list Parquet, its ready record, a done job with credits, and the job's verdicts Parquet, built
from bench.merge.build_frames so the Results tests see realistic rows (duplicates in other case,
blank and broken addresses, many domains, a formula in a text column).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.merge import build_frames, write_verified_list
from lib.store import ListRecord, Store, VerificationJob


@dataclass(frozen=True)
class VerifiedFixture:
    record: ListRecord
    job: VerificationJob
    rows: pd.DataFrame  # the list's rows as written
    verdicts: pd.DataFrame  # the job's verdicts as written


def make_verified_list(store: Store, *, rows: int = 600, name: str = "Gold customers", mode: str = "sandbox",
                       seed: int = 7, credits_spent: int | None = None) -> VerifiedFixture:
    """Write a verified list of `rows` rows into `store` and return what was written."""
    listing, verdicts = build_frames(rows=rows, seed=seed)
    record, job = write_verified_list(store, listing, verdicts, name=name, mode=mode, credits_spent=credits_spent)
    return VerifiedFixture(record, job, listing, verdicts)
