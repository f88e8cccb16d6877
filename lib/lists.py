""""My lists": lists from a CSV file or an audience pull, their email statistics, preview, rename, delete.

A list's rows live in `store.list_path(id)` (Parquet); the store row says which columns matter and
holds the statistics of the data contract (docs/architecture.md). Files are written beside their
final place and renamed once complete, so a list file is either whole or absent.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from collections.abc import Sequence

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lib import actions
from lib.access import ADMIN, OPERATOR, User, require
from lib.errors import UserError
from lib.csv_import import convert_csv
from lib.emails import normalise_emails, valid_syntax_mask
from lib.store import ListRecord, Store, StoreError

PREVIEW_ROWS = 100
STATS_BATCH_ROWS = 256_000
MAX_NAME_LENGTH = 120


class ListError(UserError):
    """A list operation cannot be done; `str()` says why."""


@dataclass(frozen=True)
class EmailStats:
    rows: int
    valid_emails: int    # rows whose address passes the syntax check
    unique_emails: int   # distinct normalised addresses among them
    duplicates: int      # valid_emails - unique_emails
    missing_emails: int  # rows with no address at all

    def as_changes(self) -> dict[str, int]:
        return {"rows": self.rows, "valid_emails": self.valid_emails, "unique_emails": self.unique_emails,
                "duplicates": self.duplicates, "missing_emails": self.missing_emails}


def email_stats(path: Path, email_column: str, *, batch_rows: int = STATS_BATCH_ROWS) -> EmailStats:
    """The statistics of a list file, reading only its email column, a batch at a time.

    Only the distinct valid addresses of each batch are kept until the end (the final count needs
    them all), so a 2M-row list never has its whole column in pandas at once.
    """
    rows = valid = missing = 0
    distinct: list[pa.Array] = []
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=[email_column]):
        emails = pd.Series(batch.column(0).to_pandas(), copy=False)
        normalised = normalise_emails(emails)
        mask = valid_syntax_mask(normalised)
        rows += len(emails)
        valid += int(mask.sum())
        missing += int(normalised.isna().sum())
        distinct.append(pc.unique(pa.array(normalised[mask].array).cast(pa.large_string())))
    unique = _count_distinct(pa.chunked_array(distinct, pa.large_string()))
    return EmailStats(rows=rows, valid_emails=valid, unique_emails=unique, duplicates=valid - unique,
                      missing_emails=missing)


def _count_distinct(values: pa.ChunkedArray) -> int:
    """Distinct strings by sorting: Arrow's hash-based count_distinct allocates ~250 bytes per
    string (500 MB for 2M addresses), a sort one copy of the data."""
    if len(values) == 0:
        return 0
    ordered = values.take(pc.sort_indices(values)).combine_chunks()
    return int(pc.sum(pc.not_equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))).as_py() or 0) + 1


def staging_path(store: Store) -> Path:
    """A private file beside the list files, renamed into place when complete."""
    folder = store.data_dir / "lists"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f".incoming-{uuid.uuid4().hex}.parquet"


def clean_name(name: str) -> str:
    text = " ".join(name.split())
    if not text:
        raise ListError("Give the list a name.")
    if len(text) > MAX_NAME_LENGTH:
        raise ListError(f"Keep the name under {MAX_NAME_LENGTH} characters.")
    return text


def default_name(file_name: str) -> str:
    stem = Path(file_name).stem.replace("_", " ").strip()
    return stem[:MAX_NAME_LENGTH] or "CSV list"


def add_csv_list(store: Store, mode: str, source: BinaryIO | Path, *, file_name: str, max_bytes: int,
                 user: User, name: str | None = None) -> tuple[ListRecord, str | None]:
    """Import a CSV file as a ready list; returns it and a notice for the user (or None).

    Raises:
        NotAllowed: `user` is not an operator.
        CsvImportError: the file was rejected; no list row and no file are left behind.
        ListError: the name is not usable.
    """
    require(user, OPERATOR, "Adding a list")
    list_name = clean_name(name) if name is not None else default_name(file_name)
    staged = staging_path(store)
    try:
        conversion = convert_csv(source, staged, max_bytes=max_bytes)
        stats = email_stats(staged, conversion.email_column)
        record = store.create_list(name=list_name, mode=mode, source_kind="csv", source=file_name)
        try:
            staged.replace(store.list_path(record.id))
            record = store.update_list(
                record.id, state="ready", email_column=conversion.detected.email,
                identity_column=conversion.detected.identity,
                object_id_column=conversion.detected.object_id,
                msg_email_column=conversion.detected.msg_email, **stats.as_changes())
        except BaseException:
            store.delete_list(record.id)
            raise
    finally:
        staged.unlink(missing_ok=True)
    actions.record(store, user, "list_added", target=f"list {record.id}: {record.name}",
                   detail=f"CSV {file_name}, {record.rows:,} rows", mode=mode)
    return record, conversion.notice


def preview(store: Store, record: ListRecord, limit: int = PREVIEW_ROWS) -> pd.DataFrame:
    """The first rows of a list (at most `limit`), read without loading the whole file."""
    path = store.list_path(record.id)
    if record.state != "ready" or not path.exists():
        raise ListError(f"{record.name} has no rows to show yet.")
    batches = pq.ParquetFile(path).iter_batches(batch_size=limit)
    first = next(batches, None)
    if first is None:
        return pq.read_schema(path).empty_table().to_pandas()
    return first.to_pandas()


def rename_list(store: Store, list_id: int, name: str, *, user: User) -> ListRecord:
    """Raises NotAllowed unless `user` is an operator; ListError for an unusable name or a gone list."""
    require(user, OPERATOR, "Renaming a list")
    old = store.get_list(list_id)
    try:
        record = store.update_list(list_id, name=clean_name(name))
    except StoreError:
        raise ListError("That list no longer exists.") from None
    actions.record(store, user, "list_renamed", target=f"list {list_id}: {record.name}",
                   detail=f"was {old.name}" if old else "", mode=record.mode)
    return record


def delete_list(store: Store, list_id: int, *, user: User) -> None:
    """Delete a list with its file and verification jobs (a running pull stops at its next chunk).

    Raises:
        NotAllowed: `user` is not an admin (deleting cannot be undone).
    """
    require(user, ADMIN, "Deleting a list")
    record = store.get_list(list_id)
    store.delete_list(list_id)
    if record is not None:
        actions.record(store, user, "list_deleted", target=f"list {list_id}: {record.name}",
                       detail=f"{record.rows:,} rows", mode=record.mode)


def progress(record: ListRecord) -> float | None:
    """Share of a pull done so far (0..1), or None when the expected count is unknown."""
    if not record.expected_rows:
        return None
    return min(1.0, record.rows / record.expected_rows)


# Short headers keep the table readable at laptop width; the page explains each in its help text.
COUNT_HELP = {"Rows": "Rows in the list", "Valid": "Rows whose address passes the syntax check",
              "Unique": "Distinct addresses among the valid ones (trimmed, lower-cased)",
              "Duplicates": "Valid rows repeating an address already counted", "No email": "Rows without an address"}
COUNT_COLUMNS = tuple(COUNT_HELP)
_STATE_LABELS = {"pulling": "Pulling…", "ready": "Ready", "failed": "Failed"}  # as on Home (lib/guide)


def overview(records: Sequence[ListRecord]) -> pd.DataFrame:
    """The "My lists" table: one row per list, newest first, with the data-contract figures."""
    frame = pd.DataFrame({
        "Name": [r.name for r in records],
        "State": [_STATE_LABELS.get(r.state, r.state) for r in records],
        "Source": [("CleverTap · " if r.source_kind == "audience" else "CSV · ") + r.source for r in records],
        "Rows": [r.rows for r in records],
        "Valid": [r.valid_emails for r in records],
        "Unique": [r.unique_emails for r in records],
        "Duplicates": [r.duplicates for r in records],
        "No email": [r.missing_emails for r in records],
        "Added": pd.to_datetime([r.created_at for r in records], utc=True),
    }, index=pd.Index([r.id for r in records], name="id"))
    return frame

