"""Clearout bulk lists: the uploaded file, its progress over wall-clock time, credits, the result file.

A list runs for `bulk_seconds` from its creation. Meanwhile a background thread writes the result
file (original columns + the 15 Clearout columns) and counts the credits it will cost; the list
completes, and is charged, at the first request after both are done. Cancelling freezes the
progress: rows the list had not reached become Unknown "Request cancelled" and cost nothing.
"""
from __future__ import annotations

import csv
import math
import os
import secrets
import shutil
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from lib.columns import CLEAROUT_COLUMN_NAMES
from lib.emails import normalise_emails
from lib.sandbox import verdicts
from lib.sandbox.credits import CreditLedger
from lib.sandbox.limits import Counters
from lib.sandbox.state import StateStore

EMAIL_HEADERS = frozenset({"email", "emails", "emailaddress"})  # folded: case and spaces ignored
RUNNING, COMPLETED, CANCELLED = "running", "completed", "cancelled"
# UNCONFIRMED: Clearout documents only "completed"; "running" and "cancelled" are the sandbox's.
MAX_RUNNING = 3
# UNCONFIRMED: how recent a same-name, same-size upload must be to count as a duplicate.
DUPLICATE_WINDOW_S = 24 * 3600
_EMPTY_ROW = ("",) * len(CLEAROUT_COLUMN_NAMES)


class ScanError(ValueError):
    """The uploaded file cannot be read as a list of emails."""


def iso(epoch: float) -> str:
    """Clearout's timestamp format: ISO 8601, UTC, milliseconds, Z."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def fold_header(name: str) -> str:
    return "".join(name.split()).lower()


def read_header(path: Path, encoding: str) -> list[str]:
    with open(path, encoding="utf-8-sig" if encoding == "utf8" else encoding, newline="") as handle:
        return next(csv.reader(handle), [])


def _read_options(encoding: str, **kwargs: Any) -> pacsv.ReadOptions:
    return pacsv.ReadOptions(encoding=encoding, block_size=8 << 20, **kwargs)


def _parse_options() -> pacsv.ParseOptions:
    # Rows with a wrong number of cells are skipped, not fatal: real exports are ragged.
    return pacsv.ParseOptions(newlines_in_values=True, invalid_row_handler=lambda row: "skip")


def _email_column(path: Path, encoding: str, header: list[str], index: int) -> pa.ChunkedArray:
    names = [f"c{i}" for i in range(len(header))]  # positional names survive duplicate headers
    table = pacsv.read_csv(
        path, read_options=_read_options(encoding, column_names=names, skip_rows=1),
        parse_options=_parse_options(),
        convert_options=pacsv.ConvertOptions(include_columns=[names[index]],
                                             column_types={names[index]: pa.string()},
                                             strings_can_be_null=False))
    return table.column(0)


@dataclass
class Scan:
    encoding: str
    header: list[str]
    email_index: int
    rows: int
    unique_emails: int
    billable_estimate: int  # unique addresses that are not free test addresses


def scan_csv(path: Path) -> Scan:
    """Find the email column and count rows and unique addresses (vectorised: 1M rows < 1 s)."""
    for encoding in ("utf8", "latin-1"):
        try:
            header = read_header(path, encoding)
            index = next((i for i, name in enumerate(header) if fold_header(name) in EMAIL_HEADERS), None)
            if index is None:
                return Scan(encoding, header, -1, 0, 0, 0)
            column = _email_column(path, encoding, header, index)
            break
        except (UnicodeDecodeError, pa.ArrowInvalid) as exc:
            if encoding == "latin-1":
                raise ScanError(f"Unable to read the file: {exc}") from None
    normalised = normalise_emails(pd.Series(column.to_pandas(types_mapper=pd.ArrowDtype)))
    unique = normalised.dropna().unique()
    tests = sum(1 for a in unique[pd.Series(unique).str.endswith("@" + verdicts.TEST_DOMAIN).to_numpy()]
                if verdicts.is_test_address(a))
    return Scan(encoding, header, index or 0, len(normalised), len(unique), len(unique) - tests)


@dataclass
class BulkList:
    list_id: str
    name: str
    filename: str
    size: int
    created_on: float
    encoding: str
    email_index: int
    rows: int
    unique_emails: int
    billable_estimate: int
    optimize: str
    status: str = RUNNING
    finished_on: float | None = None
    cancelled_percentile: int | None = None
    billable: int | None = None        # credits the full list costs (known once results are written)
    charged: int | None = None         # credits actually charged (at completion or cancellation)
    results_file: str | None = None    # name of the ready result file inside the list directory

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BulkList:
        return cls(**raw)


class BulkRegistry:
    """Every bulk list of the one sandbox account, and the one-time result URLs."""

    def __init__(self, directory: Path, state: StateStore | None, credits: CreditLedger,
                 clock: Callable[[], float], bulk_seconds: float, retention_s: float,
                 counters: Counters) -> None:
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self._state = state
        self._credits = credits
        self._clock = clock
        self.bulk_seconds = bulk_seconds
        self.retention_s = retention_s
        self._counters = counters
        self._lock = threading.RLock()
        self._lists: dict[str, BulkList] = {}
        self._tokens: dict[str, list[Any]] = {}  # token -> [list_id, file name, expires, used]
        self.max_running = 0
        self._stopping = threading.Event()
        if state is not None:
            for raw in state.load_lists():
                item = BulkList.from_dict(raw)
                self._lists[item.list_id] = item
            for item in list(self._lists.values()):
                self._start_job(item)

    def stop(self) -> None:
        self._stopping.set()

    # ---- bookkeeping -------------------------------------------------------------------------
    def _save(self, item: BulkList) -> None:
        if self._state is not None:
            self._state.save_list(item.list_id, asdict(item))

    def list_dir(self, list_id: str) -> Path:
        return self.directory / list_id

    def get(self, list_id: str) -> BulkList | None:
        self.settle()
        with self._lock:
            return self._lists.get(list_id)

    def running(self) -> int:
        with self._lock:
            return sum(1 for item in self._lists.values() if item.status == RUNNING)

    def reserved(self) -> int:
        """Credits promised to running lists (checked against new uploads, charged at completion)."""
        with self._lock:
            return sum(item.billable_estimate for item in self._lists.values() if item.status == RUNNING)

    def is_duplicate(self, filename: str, size: int) -> bool:
        now = self._clock()
        with self._lock:
            return any(item.filename == filename and item.size == size
                       and now - item.created_on < DUPLICATE_WINDOW_S for item in self._lists.values())

    def new_id(self) -> str:
        while True:
            list_id = secrets.token_hex(12)
            if list_id not in self._lists:
                return list_id

    def add(self, item: BulkList) -> None:
        with self._lock:
            self._lists[item.list_id] = item
            self.max_running = max(self.max_running, self.running())
            self._save(item)
        self._counters.add("bulk_uploads_accepted")
        self._start_job(item)

    def fraction(self, item: BulkList, now: float | None = None) -> float:
        if self.bulk_seconds <= 0:
            return 1.0
        elapsed = (self._clock() if now is None else now) - item.created_on
        return min(1.0, max(0.0, elapsed / self.bulk_seconds))

    def percentile(self, item: BulkList) -> int:
        if item.status == COMPLETED:
            return 100
        if item.status == CANCELLED:
            return item.cancelled_percentile or 0
        # 100 only once the list has really completed (its results written).
        return min(99, int(self.fraction(item) * 100))

    def settle(self) -> None:
        """Complete (and charge) running lists whose time is up and whose results are written."""
        now = self._clock()
        with self._lock:
            for item in self._lists.values():
                if item.status == RUNNING and item.billable is not None and self.fraction(item, now) >= 1.0:
                    item.status = COMPLETED
                    item.finished_on = item.created_on + self.bulk_seconds
                    item.charged = item.billable
                    self._credits.charge(item.billable, "bulk list", item.list_id)
                    self._save(item)

    # ---- cancel / remove ---------------------------------------------------------------------
    def cancel(self, item: BulkList) -> bool:
        """False when the list is not running (Clearout's 1116)."""
        with self._lock:
            if item.status != RUNNING:
                return False
            now = self._clock()
            item.status = CANCELLED
            item.finished_on = now
            item.cancelled_percentile = int(self.fraction(item, now) * 100)
            item.results_file = None
            self._save(item)
        self._start_job(item)
        return True

    def remove(self, item: BulkList) -> bool:
        """False while the list is being verified."""
        with self._lock:
            if item.status == RUNNING:
                return False
            self._lists.pop(item.list_id, None)
            if self._state is not None:
                self._state.delete_list(item.list_id)
        shutil.rmtree(self.list_dir(item.list_id), ignore_errors=True)
        return True

    # ---- results -----------------------------------------------------------------------------
    def expired(self, item: BulkList) -> bool:
        return item.finished_on is not None and self._clock() - item.finished_on > self.retention_s

    def issue_url(self, item: BulkList, ttl_s: float) -> tuple[str, str]:
        """A one-time token and the file name for a ready result."""
        token = secrets.token_hex(16)
        name = f"{item.name}_clearout_results.csv"
        with self._lock:
            self._tokens[token] = [item.list_id, name, self._clock() + ttl_s, False]
            for stale in [t for t, v in self._tokens.items() if v[2] < self._clock() - 3600]:
                del self._tokens[stale]
        return token, name

    def redeem(self, token: str, name: str) -> tuple[Path | None, str]:
        """The result file for a one-time URL, or None and an S3-style error code."""
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None or entry[3]:
                return None, "AccessDenied"
            if entry[1] != name:
                return None, "SignatureDoesNotMatch"
            if self._clock() > entry[2]:
                return None, "ExpiredToken"
            entry[3] = True
            item = self._lists.get(entry[0])
            if item is None or item.results_file is None:
                return None, "NoSuchKey"
            return self.list_dir(item.list_id) / item.results_file, ""

    # ---- background work ---------------------------------------------------------------------
    def _start_job(self, item: BulkList) -> None:
        if item.status == RUNNING and item.billable is None:
            target = self._complete_job
        elif item.status == CANCELLED and item.charged is None:
            target = self._cancel_job
        else:
            return
        threading.Thread(target=target, args=(item,), name=f"bulk-{item.list_id}", daemon=True).start()

    def _complete_job(self, item: BulkList) -> None:
        try:
            billable = self._write_results(item, "results.csv", None, item.created_on + self.bulk_seconds)
            with self._lock:
                if item.status == RUNNING and item.list_id in self._lists and not self._stopping.is_set():
                    item.billable = billable
                    item.results_file = "results.csv"
                    self._save(item)
        except Exception:  # a removed list or a stopping sandbox: nothing left to finish
            if not self._stopping.is_set() and item.list_id in self._lists:
                raise

    def _cancel_job(self, item: BulkList) -> None:
        verified = math.floor(item.unique_emails * (item.cancelled_percentile or 0) / 100)
        try:
            charge = self._write_results(item, "results-cancelled.csv", verified, item.finished_on or 0.0)
            with self._lock:
                if item.list_id in self._lists and not self._stopping.is_set():
                    item.charged = charge
                    item.results_file = "results-cancelled.csv"
                    self._credits.charge(charge, "bulk list (cancelled)", item.list_id)
                    self._save(item)
        except Exception:
            if not self._stopping.is_set() and item.list_id in self._lists:
                raise

    def _write_results(self, item: BulkList, file_name: str, verified_limit: int | None,
                       verified_epoch: float) -> int:
        """Write original columns + the 15 Clearout columns; return the credits the verified part costs.

        `verified_limit` is how many unique addresses (in order of first appearance) were verified
        before a cancellation; None means all of them.
        """
        folder = self.list_dir(item.list_id)
        source = folder / "input.csv"
        header = read_header(source, item.encoding)
        names = [f"c{i}" for i in range(len(header))]
        reader = pacsv.open_csv(
            source, read_options=_read_options(item.encoding, column_names=names, skip_rows=1),
            parse_options=_parse_options(),
            convert_options=pacsv.ConvertOptions(column_types={n: pa.string() for n in names},
                                                 strings_can_be_null=False))
        out_names = list(header) + list(CLEAROUT_COLUMN_NAMES)
        schema = pa.schema([pa.field(f"o{i}", pa.string()) for i in range(len(out_names))])
        verified_at = iso(verified_epoch)
        ordinals: dict[str, int] = {}
        billable = 0
        partial = folder / (file_name + ".part")
        with open(partial, "wb") as sink:
            sink.write((",".join(_csv_cell(n) for n in out_names) + "\r\n").encode())
            options = pacsv.WriteOptions(include_header=False, quoting_style="needed")
            with pacsv.CSVWriter(sink, schema, write_options=options) as writer:
                for batch in reader:
                    if self._stopping.is_set():
                        raise RuntimeError("sandbox stopping")
                    emails = pd.Series(batch.column(item.email_index).to_pandas(types_mapper=pd.ArrowDtype))
                    rows = []
                    for address in normalise_emails(emails).tolist():
                        if address is None or address is pd.NA:
                            rows.append(_EMPTY_ROW)
                            continue
                        verdict = verdicts.verdict(address)
                        ordinal = ordinals.get(address)
                        if ordinal is None:
                            ordinal = ordinals[address] = len(ordinals)
                            if verdict.billable and (verified_limit is None or ordinal < verified_limit):
                                billable += 1
                        if verified_limit is not None and ordinal >= verified_limit:
                            rows.append(verdicts.cancelled_row(verdict, verified_at))
                        else:
                            rows.append(verdicts.display_row(verdict, verified_at))
                    added = [pa.array(cells, pa.string()) for cells in zip(*rows)] if rows else [
                        pa.array([], pa.string())] * len(CLEAROUT_COLUMN_NAMES)
                    writer.write_batch(pa.RecordBatch.from_arrays(list(batch.columns) + added, schema=schema))
        os.replace(partial, folder / file_name)
        return billable


def _csv_cell(text: str) -> str:
    if any(c in text for c in ',"\r\n'):
        return '"' + text.replace('"', '""') + '"'
    return text
