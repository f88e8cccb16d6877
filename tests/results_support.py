"""A verified list on disk, as Lists and Verify leave it (docs/architecture.md, data contracts).

The list Parquet, its ready record, a done job with credits, and the job's verdicts Parquet, built
from bench.merge.build_frames so the Results tests see realistic rows (duplicates in other case,
blank and broken addresses, many domains, a formula in a text column).
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from bench.merge import build_frames, write_verified_list
from lib import charts, merge
from lib import columns as co
from lib.filters import filter_options
from lib.resultstats import Summary
from lib.store import ListRecord, Store, VerificationJob


@dataclass(frozen=True)
class VerifiedFixture:
    record: ListRecord
    job: VerificationJob
    rows: pd.DataFrame  # the list's rows as written
    verdicts: pd.DataFrame  # the job's verdicts as written


def make_verified_list(store: Store, *, rows: int = 600, name: str = "Gold customers", mode: str = "sandbox",
                       seed: int = 7, credits_spent: int | None = None, merged: bool = True) -> VerifiedFixture:
    """Write a verified list of `rows` rows into `store` and return what was written."""
    listing, verdicts = build_frames(rows=rows, seed=seed)
    record, job = write_verified_list(store, listing, verdicts, name=name, mode=mode, credits_spent=credits_spent,
                                      merged=merged)
    return VerifiedFixture(record, job, listing, verdicts)


def pandas_summary(merged: pd.DataFrame, email_column: str, job: VerificationJob) -> Summary:
    """The Results summary as pandas computes it from the whole merged frame: the reference the
    engine (lib.resultstats) must equal."""
    return Summary(
        figures=merge.key_figures(merged, email_column), credits_spent=job.credits_spent,
        cached=job.cached, syntax_invalid=job.syntax_invalid,
        status=charts.status_counts(merged), safe_to_send=charts.safe_to_send_counts(merged),
        reasons=charts.reason_counts(merged), flags=charts.flag_shares(merged),
        domains=charts.domain_stats(merged, by=co.DOMAIN), providers=charts.domain_stats(merged, by=co.SMTP_PROVIDER),
        sources=charts.source_counts(merged), options=filter_options(merged))
