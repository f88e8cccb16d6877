"""What the Results page shows of a verified list: the choice of list, its merged rows, figures, charts,
the filtered preview and the download file names. Plain functions; lib/ui.py caches them.

A verified list is a ready list of the current mode with a `done` verification job; its rows are
`store.list_path(id)` with the latest done job's verdicts appended (docs/architecture.md,
"Data contracts between the steps").
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go

from lib import charts, downloads, merge
from lib import columns as co
from lib.errors import UserError
from lib.figures import Metric
from lib.filters import FilterOptions, filter_options
from lib.store import ListRecord, Store, VerificationJob

PREVIEW_ROWS = 1_000  # the browser never receives more rows than this
XLSX_ROWS_PER_SECOND = 9_000  # lib.downloads: XlsxWriter's pace on this machine
XLSX_SLOW_ROWS = 50_000  # above this an Excel file takes long enough to warn first (~6 s)


class ResultsError(UserError):
    """A verified list cannot be shown; `message` says why and what to do."""


@dataclass(frozen=True)
class VerifiedList:
    record: ListRecord
    job: VerificationJob

    @property
    def label(self) -> str:
        """How the list is named in the picker."""
        when = (self.job.finished_at or self.job.updated_at).replace("T", " ")[:16]
        return f"{self.record.name} · {self.record.rows:,} rows · verified {when} UTC"


def verified_lists(store: Store, mode: str) -> list[VerifiedList]:
    """Ready lists of `mode` with a done job, most recently verified first (each with its latest done job)."""
    latest: dict[int, VerificationJob] = {}
    for job in store.list_jobs(states=["done"], mode=mode):  # newest job first
        latest.setdefault(job.list_id, job)
    records = {r.id: r for r in store.list_lists(mode, states=["ready"])}
    found = [VerifiedList(records[list_id], job) for list_id, job in latest.items() if list_id in records]
    return sorted(found, key=lambda v: (v.job.finished_at or v.job.updated_at, v.job.id), reverse=True)


def default_index(verified: list[VerifiedList], wanted_list_id: int | None) -> int:
    """Position of the list another page asked for, else 0 (the most recently verified)."""
    ids = [v.record.id for v in verified]
    return ids.index(wanted_list_id) if wanted_list_id in ids else 0


def version(store: Store, item: VerifiedList) -> str:
    """Changes whenever the files behind the merged frame do.

    Part of the cache key beside the ids, because SQLite reuses the ids of deleted rows: a new list
    can get the id of a deleted one, and must not be shown the old one's cached rows.
    """
    stamps = []
    for path in (store.list_path(item.record.id), store.job_verdicts_path(item.job.id)):
        try:
            stamps.append(str(path.stat().st_mtime_ns))
        except FileNotFoundError:
            stamps.append("missing")
    return f"{item.record.created_at}|{item.job.created_at}|{'|'.join(stamps)}"


def cache_key(store: Store, item: VerifiedList) -> tuple[str, int, int, str]:
    """(data dir, list id, job id, version): what the page's caches are keyed on."""
    return str(store.data_dir), item.record.id, item.job.id, version(store, item)


def load_merged(store: Store, list_id: int, job_id: int) -> pd.DataFrame:
    """The list's rows, in their original order, with the job's Clearout columns appended.

    Raises:
        ResultsError: the list or job is gone, a file is missing, or the verdicts do not fit the list.
    """
    record, job = store.get_list(list_id), store.get_job(job_id)
    if record is None or job is None or job.list_id != list_id:
        raise ResultsError("This list or its verification is gone: pick another list.")
    if not record.email_column:
        raise ResultsError(f"{record.name} has no email column to match verdicts on.")
    rows_path, verdicts_path = store.list_path(list_id), store.job_verdicts_path(job_id)
    for path, what in ((rows_path, "rows"), (verdicts_path, "verification result")):
        if not path.exists():
            raise ResultsError(f"The {what} file of {record.name} is missing ({path.name}): verify the list again.")
    rows = pd.read_parquet(rows_path)
    verdicts = pd.read_parquet(verdicts_path)
    try:
        return merge.append_verdicts(rows, record.email_column, verdicts)
    except (merge.MergeError, co.ClearoutColumnsError) as exc:
        raise ResultsError(f"The verification result of {record.name} cannot be joined to its rows: {exc}") from None


@dataclass(frozen=True)
class Summary:
    """Everything drawn from a merged list except the preview: small, cheap to cache and copy."""
    figures: merge.KeyFigures
    credits_spent: int | None
    cached: int
    syntax_invalid: int
    status: pd.DataFrame
    safe_to_send: pd.DataFrame
    reasons: pd.DataFrame
    flags: pd.DataFrame
    domains: pd.DataFrame
    providers: pd.DataFrame
    sources: pd.DataFrame
    options: FilterOptions

    @property
    def credits_saved(self) -> int:
        """Addresses that needed no credit: answered from the cache or failed the syntax check."""
        return self.cached + self.syntax_invalid


def summarise(merged: pd.DataFrame, email_column: str, job: VerificationJob) -> Summary:
    """Key figures, chart aggregations and filter options of a merged list; credits from the job record."""
    return Summary(
        figures=merge.key_figures(merged, email_column), credits_spent=job.credits_spent,
        cached=job.cached, syntax_invalid=job.syntax_invalid,
        status=charts.status_counts(merged), safe_to_send=charts.safe_to_send_counts(merged),
        reasons=charts.reason_counts(merged), flags=charts.flag_shares(merged),
        domains=charts.domain_stats(merged, by=co.DOMAIN), providers=charts.domain_stats(merged, by=co.SMTP_PROVIDER),
        sources=charts.source_counts(merged), options=filter_options(merged))


def key_metrics(summary: Summary) -> list[Metric]:
    """The headline figures in page order: four about the list and its cost, then the five
    deliverability outcomes, which add up to the rows."""
    f = summary.figures

    def share(count: int) -> str:
        return f"{f.share(count):.1f}% of rows"

    spent = "n/a" if summary.credits_spent is None else f"{summary.credits_spent:,}"
    return [
        Metric("Rows", f"{f.rows:,}", "rows in the list", "Every row of the list, in its original order."),
        Metric("Distinct addresses", f"{f.unique_emails:,}", f"incl. {summary.syntax_invalid:,} bad syntax",
               "Distinct addresses after trimming and lower-casing, including those that fail the syntax "
               "check: one verdict each. (My lists counts only the valid ones.)"),
        Metric("Credits spent", spent, "1 per newly verified",
               "Credits this verification cost: one per address Clearout verified now (Unknown results are free)."),
        Metric("Credits saved", f"{summary.credits_saved:,}", "cached + bad syntax",
               f"Addresses that needed no credit: {summary.cached:,} answered from recent verifications (the "
               f"cache) + {summary.syntax_invalid:,} rejected by the syntax check before upload."),
        Metric("Safe to send", f"{f.safe_to_send:,}", share(f.safe_to_send),
               "Clearout says Safe to Send = Yes: deliverable, bounce risk under 3%."),
        Metric("Risky", f"{f.risky:,}", share(f.risky),
               "Catch-all mail servers, or Safe to Send = Risky: may bounce (up to about 5%)."),
        Metric("Undeliverable", f"{f.undeliverable:,}", share(f.undeliverable),
               "Status Invalid or Safe to Send = No, including bad syntax: will bounce, do not send."),
        Metric("Unknown", f"{f.unknown:,}", share(f.unknown),
               "Clearout could not tell (the mail server did not answer in time, for instance)."),
        Metric("No email", f"{f.no_email:,}", share(f.no_email), "Rows without an address: nothing to verify."),
    ]


def figures(summary: Summary) -> tuple[go.Figure, ...]:
    """The seven charts in page order: pairs of equal height (status, safe to send; newly verified vs
    cached, flags; domains, SMTP providers), then the reasons, whose long labels want the full width."""
    return (charts.status_chart(summary.status), charts.safe_to_send_chart(summary.safe_to_send),
            charts.source_chart(summary.sources), charts.flag_chart(summary.flags),
            charts.domain_chart(summary.domains), charts.provider_chart(summary.providers),
            charts.reason_chart(summary.reasons))


def preview(matching: pd.DataFrame, limit: int = PREVIEW_ROWS) -> pd.DataFrame:
    """The first `limit` matching rows: all the browser gets to see."""
    return matching.head(limit)


def match_text(matching: int, total: int, limit: int = PREVIEW_ROWS) -> str:
    """How many rows the filters match and how many the preview shows, e.g.
    "12,345 of 1,000,000 rows match; showing the first 1,000." """
    head = f"All {total:,} rows match" if matching == total else f"{matching:,} of {total:,} rows match"
    if matching == 0:
        return f"{head}: loosen a filter to see rows."
    if matching > limit:
        return f"{head}; showing the first {limit:,}."
    return f"{head}; showing {'it' if matching == 1 else f'all {matching:,}'}."


def file_name(list_name: str, extension: str, *, filtered: bool = False) -> str:
    """`<list name>_clearout_results[_filtered].<extension>`, safe on every operating system."""
    # Characters Windows or a shell would choke on, and spaces, become one underscore per run.
    stem = re.sub(r'[\s\\/:*?"<>|\x00-\x1f]+', "_", list_name).strip("._")[:100] or "list"
    return f"{stem}_clearout_results{'_filtered' if filtered else ''}.{extension}"


def xlsx_refusal(frame: pd.DataFrame) -> str | None:
    """lib.downloads' message when `frame` does not fit one Excel sheet, else None (nothing is written)."""
    if len(frame) <= downloads.EXCEL_MAX_DATA_ROWS and frame.shape[1] <= downloads.EXCEL_MAX_COLUMNS:
        return None
    try:
        downloads.to_xlsx_bytes(frame)  # refuses on the shape before writing anything
    except downloads.TooManyRowsForExcel as exc:
        return str(exc)
    return None  # pragma: no cover - the shape check above mirrors the lib's


def xlsx_wait_text(rows: int) -> str | None:
    """A warning for Excel files that take a while to write, else None."""
    if rows <= XLSX_SLOW_ROWS:
        return None
    seconds = rows / XLSX_ROWS_PER_SECOND
    wait = f"about {seconds / 60:.0f} minute{'s' if seconds >= 90 else ''}" if seconds >= 60 else \
        f"about {seconds:.0f} seconds"
    return (f"An Excel file of {rows:,} rows takes {wait} to write, and this page waits meanwhile. "
            "CSV holds the same data and is ready in seconds.")
