"""What the Results page shows of a verified list: the choice of list, its merged rows, figures, charts,
the filtered preview and the download file names. Plain functions; lib/ui.py caches them.

A verified list is a ready list of the current mode with a `done` verification job; its rows are
`store.list_path(id)` with the latest done job's verdicts appended (docs/architecture.md,
"Data contracts between the steps").
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import plotly.graph_objects as go

from lib import charts, downloads, funnel, resultset, resultstats
from lib import columns as co
from lib.errors import UserError
from lib.figures import Metric, plural
from lib.filters import Selection
from lib.listkeys import ensure_keys
from lib.resultset import Rows
from lib.resultstats import Summary
from lib.store import ListRecord, Store, Task, VerificationJob

MERGE_TASK = "merge_results"

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
    """Changes whenever the merged file does.

    Part of the cache key beside the ids, because SQLite reuses the ids of deleted rows: a new list
    can get the id of a deleted one, and must not be shown the old one's cached figures.
    """
    try:
        stamp = str(resultset.merged_path(store, item.job.id).stat().st_mtime_ns)
    except FileNotFoundError:
        stamp = "missing"
    return f"{item.record.created_at}|{item.job.created_at}|{stamp}"


def cache_key(store: Store, item: VerifiedList) -> tuple[str, int, int, str]:
    """(data dir, list id, job id, version): what the page's caches are keyed on."""
    return str(store.data_dir), item.record.id, item.job.id, version(store, item)


def merged_file(store: Store, item: VerifiedList) -> Path | None:
    """The merged file of a verified list, or None while the worker has not written it (a job
    finished before merged files existed, or the file was removed)."""
    path = resultset.merged_path(store, item.job.id)
    return path if path.exists() else None


def request_merge(store: Store, mode: str, item: VerifiedList, *, requested_by: str = "") -> Task:
    """Ask the worker to write the merged file; two sessions asking get the same task."""
    return store.request_task(kind=MERGE_TASK, mode=mode, args={"list_id": item.record.id, "job_id": item.job.id},
                              requested_by=requested_by, dedupe_key=f"{MERGE_TASK}:{item.job.id}")


def merge_now(store: Store, list_id: int, job_id: int) -> Path:
    """In the worker: write the merged file of a done job.

    Raises:
        ResultsError: the list or job is gone, or a file behind it is missing.
    """
    record, job = store.get_list(list_id), store.get_job(job_id)
    if record is None or job is None or job.list_id != list_id or job.state != "done":
        raise ResultsError("This list or its verification is gone: pick another list.")
    if not record.email_column:
        raise ResultsError(f"{record.name} has no email column to match verdicts on.")
    for path, what in ((store.list_path(list_id), "rows"), (store.job_verdicts_path(job_id), "verification result")):
        if not path.exists():
            raise ResultsError(f"The {what} file of {record.name} is missing ({path.name}): verify the list again.")
    return resultset.materialise(store, record, job)


def summarise(store: Store, item: VerifiedList) -> Summary:
    """Key figures, chart aggregations and filter options of a verified list's merged file."""
    path = merged_file(store, item)
    if path is None:
        raise ResultsError(f"The results of {item.record.name} are not ready yet.")
    return resultstats.summarise(store, path, ensure_keys(store, item.record), item.job)


def matching_rows(store: Store, item: VerifiedList, selection: Selection, limit: int = PREVIEW_ROWS) -> Rows:
    """How many rows match the filters, and the first `limit` of them: all the browser gets to see."""
    path = merged_file(store, item)
    if path is None:
        raise ResultsError(f"The results of {item.record.name} are not ready yet.")
    return resultset.rows(store, path, selection, limit)


def key_metrics(summary: Summary) -> list[Metric]:
    """The headline figures in page order: four about the list and its cost, then the five
    deliverability outcomes, which add up to the rows."""
    f = summary.figures

    def share(count: int) -> str:
        return f"{f.share(count):.1f}% of rows"

    spent = "n/a" if summary.credits_spent is None else f"{summary.credits_spent:,}"
    return [
        Metric("Rows", f"{f.rows:,}", "rows in the list", "Every row of the list, in its original order."),
        Metric("Distinct addresses", f"{f.unique_emails:,}", f"incl. {summary.syntax_invalid:,} syntax errors",
               funnel.TERMS["Distinct addresses"]),
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


def row_funnel(summary: Summary) -> list[funnel.Stage]:
    """Where every row of the verified list went (lib.funnel)."""
    syntax_rows = dict(zip(summary.sources["label"], summary.sources["rows"])).get(co.SOURCE_SYNTAX, 0)
    return funnel.row_stages(summary.figures, int(syntax_rows))


def address_line(summary: Summary, job: VerificationJob) -> str:
    """The distinct addresses as the funnel splits them, and what the bought ones cost."""
    bought = job.to_verify
    spent = "" if summary.credits_spent is None else \
        f" · {summary.credits_spent:,} credits spent (Unknown results are free)"
    return (f"{plural(summary.figures.unique_emails, 'distinct address', 'distinct addresses')} = "
            f"{plural(summary.syntax_invalid, 'syntax error')} + {summary.cached:,} from the cache + "
            f"{bought:,} bought{spent}.")


def figures(summary: Summary) -> tuple[go.Figure, ...]:
    """The eight charts in page order: the funnel of rows (full width), then pairs of equal height
    (status, safe to send; verdict sources, flags; domains, SMTP providers), then the reasons, whose
    long labels want the full width."""
    return (funnel.figure(row_funnel(summary), "Where every row went"),
            charts.status_chart(summary.status), charts.safe_to_send_chart(summary.safe_to_send),
            charts.source_chart(summary.sources), charts.flag_chart(summary.flags),
            charts.domain_chart(summary.domains), charts.provider_chart(summary.providers),
            charts.reason_chart(summary.reasons))


def match_text(matching: int, total: int, limit: int = PREVIEW_ROWS) -> str:
    """How many rows the filters match and how many the preview shows, e.g.
    "12,345 of 1,000,000 rows match; showing the first 1,000." """
    head = f"All {total:,} rows match" if matching == total else f"{matching:,} of {total:,} rows match"
    if matching == 0:
        return f"{head}: loosen a filter to see rows."
    if matching > limit:
        return f"{head}; showing the first {limit:,}."
    return f"{head}; showing {'it' if matching == 1 else f'all {matching:,}'}."


def file_name(list_name: str, extension: str, *, filtered: bool = False, exact: bool = False) -> str:
    """`<list name>_clearout_results[_filtered][_exact].<extension>`, safe on every operating system."""
    # Characters Windows or a shell would choke on, and spaces, become one underscore per run.
    stem = re.sub(r'[\s\\/:*?"<>|\x00-\x1f]+', "_", list_name).strip("._")[:100] or "list"
    return f"{stem}_clearout_results{'_filtered' if filtered else ''}{'_exact' if exact else ''}.{extension}"


# (format, CSV flavour) in the order the page offers them.
DOWNLOAD_CHOICES = (("csv", downloads.SPREADSHEET), ("csv", downloads.EXACT), ("xlsx", downloads.SPREADSHEET))


def download_label(file_format: str, flavour: str, rows: int) -> tuple[str, str]:
    """A download's button label and its help text, in plain words."""
    if file_format == "xlsx":
        return (f"Excel file ({rows:,} rows)", "One sheet with a filter row; dates are real dates. Text stays text: "
                                               "nothing in it runs as a formula.")
    if flavour == downloads.EXACT:
        return (f"CSV, exact ({rows:,} rows)", "Every value exactly as it is, for loading back into CleverTap or "
                                               "another tool. Opened in a spreadsheet, cells such as \"=1+1\" or "
                                               "\"-5\" may run as formulas.")
    return (f"CSV for a spreadsheet ({rows:,} rows)", "For Excel, Numbers or Google Sheets: accented letters "
                                                      "show right, and a cell that would run as a formula (it starts "
                                                      "with =, +, -, @) gets a leading apostrophe.")


def download_refusal(file_format: str, rows: int) -> str | None:
    """Why a download cannot be offered (Excel's sheet limit), else None."""
    if file_format == "xlsx" and rows > downloads.EXCEL_MAX_DATA_ROWS:
        return (f"Excel holds at most {downloads.EXCEL_MAX_DATA_ROWS:,} rows on a sheet; these are {rows:,}. "
                "Download a CSV, or filter to fewer rows.")
    return None


def xlsx_wait_text(rows: int) -> str | None:
    """A note for Excel files that take a while to write, else None."""
    if rows <= XLSX_SLOW_ROWS or rows > downloads.EXCEL_MAX_DATA_ROWS:
        return None
    seconds = rows / XLSX_ROWS_PER_SECOND
    wait = f"about {seconds / 60:.0f} minute{'s' if seconds >= 90 else ''}" if seconds >= 60 else \
        f"about {seconds:.0f} seconds"
    return (f"An Excel file of {rows:,} rows takes {wait} to write before your browser receives it. "
            "A CSV holds the same data and starts at once.")
