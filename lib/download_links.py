"""Download links: a page offers a file of a verified list, and the browser fetches it from the
server's own route (lib.ui.download_route), which streams it from the engine.

Streamlit's download button holds the whole file in the server's memory (2.5 GB for a ten-million-row
CSV), so big files go through a plain HTTP route instead. A link is an unguessable token handed only
to a signed-in session; it names the file (list, job, filters, format) and lives LINK_TTL_S, like a
pre-signed URL. Tokens live in this process's memory: a restart forgets them, and the page offers a
new one on its next render.
"""
from __future__ import annotations

import secrets
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow.parquet as pq

from lib import downloads, resultset
from lib.export.views import changes_csv_chunks
from lib.filters import Selection

LINK_TTL_S = 30 * 60
ROUTE = "downloads"  # served at /downloads/<token>
CSV, XLSX = "csv", "xlsx"
MEDIA_TYPES = {CSV: "text/csv; charset=utf-8",
               XLSX: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"}
_FILE_CHUNK = 1 << 20


RESULTS, PLAN = "results", "plan"


@dataclass(frozen=True)
class Download:
    """One file a page offered: the rows of a merged file (RESULTS, filtered by `selection`), or the
    changes of an export plan (PLAN); in what form, under what name."""
    data_dir: Path
    merged: Path  # the merged file (RESULTS)
    selection: Selection
    file_format: str  # CSV or XLSX
    flavour: str  # lib.downloads.SPREADSHEET or EXACT (CSV only)
    file_name: str
    rows: int
    kind: str = RESULTS
    parts: tuple[Path, ...] = ()  # PLAN: the plan's change files, read in this order
    on_start: Callable[[], None] | None = field(default=None, compare=False)  # records who fetched it


_lock = threading.Lock()
_offers: dict[str, tuple[float, Download]] = {}


def offer(download: Download, *, now: float | None = None) -> str:
    """A new token for `download` (the link's last path segment)."""
    now = time.time() if now is None else now
    token = secrets.token_urlsafe(24)
    with _lock:
        for old in [t for t, (expires, _) in _offers.items() if expires <= now]:
            del _offers[old]
        _offers[token] = (now + LINK_TTL_S, download)
    return token


def take(token: str, *, now: float | None = None) -> Download | None:
    """The download a live token names, else None. A token may be used again until it expires (a
    browser retries an interrupted download)."""
    now = time.time() if now is None else now
    with _lock:
        found = _offers.get(token)
    if found is None or found[0] <= now:
        return None
    return found[1]


def body(download: Download) -> Iterator[bytes]:
    """The file's bytes, as they are produced.

    Raises:
        lib.downloads.TooManyRowsForExcel: an XLSX of more rows than a sheet holds (pages refuse it first).
    """
    if download.kind == PLAN:
        changes = (batch.to_pandas() for path in download.parts
                   for batch in pq.ParquetFile(path).iter_batches(batch_size=100_000))
        yield from changes_csv_chunks(changes, download.flavour)
        return
    schema = resultset.schema(download.merged)
    rows = resultset.batches(download.data_dir, download.merged, download.selection)
    if download.file_format == CSV:
        yield from downloads.csv_chunks(schema, rows, flavour=download.flavour)
        return
    downloads.check_fits_excel(download.rows, len(schema))
    # XlsxWriter assembles the zip only when the workbook closes: write it to a private file first.
    spool = download.data_dir / "tmp" / "downloads"
    spool.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=spool, suffix=".xlsx") as file:
        downloads.write_xlsx(schema, rows, file.name, rows=download.rows)
        with open(file.name, "rb") as written:
            while chunk := written.read(_FILE_CHUNK):
                yield chunk
