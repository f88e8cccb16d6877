""""My lists": lists from a CSV file or an audience pull, their email statistics, preview, rename, delete.

A list's rows live in `store.list_path(id)` (Parquet); the store row says which columns matter and
holds the statistics of the data contract (docs/architecture.md). Files are written beside their
final place and renamed once complete, so a list file is either whole or absent.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import BinaryIO
from collections.abc import Sequence

import pandas as pd
import pyarrow.parquet as pq

from lib import actions
from lib.access import ADMIN, OPERATOR, User, require
from lib.errors import UserError
from lib.csv_import import convert_csv
from lib.figures import plural
from lib.funnel import TERMS, distinct_addresses, list_stages, syntax_errors
from lib.listkeys import with_distinct_addresses, write_keys
from lib.processes import this_process
from lib.store import ListRecord, Store, StoreError, free_name

PREVIEW_ROWS = 100
MAX_NAME_LENGTH = 120
IMPORT_LEASE_S = 24 * 3600.0  # a CSV import far longer than any file takes; a dead importer frees it at once


class ListError(UserError):
    """A list operation cannot be done; `str()` says why."""


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


def unique_name(store: Store, mode: str, name: str, *, exclude: int | None = None) -> str:
    """`name`, or `name (2)`… when another list of this mode is called that already (`store.free_name`)."""
    return free_name((r.name for r in store.list_lists(mode) if r.id != exclude), name)


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
    wanted = clean_name(name) if name is not None else default_name(file_name)
    staged = staging_path(store)
    try:
        conversion = convert_csv(source, staged, max_bytes=max_bytes)
        # Until its rows are in place the list is 'pulling', as a pull is, leased by this process: the
        # worker took it for an audience pull and failed it, deleting the file just written (a race seen
        # under load). If this process dies mid-import, the worker takes the free lease and fails it.
        record = store.create_list(name=wanted, mode=mode, source_kind="csv", source=file_name, unique=True,
                                   lease_owner=str(this_process()), lease_seconds=IMPORT_LEASE_S)
        try:
            staged.replace(store.list_path(record.id))
            stats = write_keys(store.list_path(record.id), conversion.email_column, store.list_keys_path(record.id),
                               data_dir=store.data_dir)
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
    renamed = (f"A list named {wanted} exists already: this one is called {record.name}. Rename either "
               "under My lists." if record.name != wanted else None)
    return record, " ".join(n for n in (conversion.notice, renamed) if n) or None


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
    """Raises NotAllowed unless `user` is an operator; ListError for an unusable name, a name another list
    of its mode has, or a gone list."""
    require(user, OPERATOR, "Renaming a list")
    old = store.get_list(list_id)
    if old is None:
        raise ListError("That list no longer exists.")
    wanted = clean_name(name)
    if unique_name(store, old.mode, wanted, exclude=list_id) != wanted:
        raise ListError(f"A list named {wanted} exists already: choose another name.")
    try:
        record = store.update_list(list_id, name=wanted)
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


# The funnel's words (lib.funnel): the same on Lists, Verify and Results.
COUNT_HELP = {label: TERMS[label] for label in ("Rows", "With an address", "Well-formed", "Distinct addresses",
                                                 "Syntax errors")}
COUNT_COLUMNS = tuple(COUNT_HELP)
_STATE_LABELS = {"pulling": "Pulling…", "ready": "Ready", "failed": "Failed"}  # as on Home (lib/guide)


def added_line(record: ListRecord) -> str:
    """What a list just added holds, in the funnel's words (Lists' table, Verify and Results say the same)."""
    syntax = syntax_errors(record)
    distinct = plural(distinct_addresses(record), "distinct address", "distinct addresses")
    return f"{plural(record.rows, 'row')}, {distinct}" + (f" ({syntax:,} with a syntax error)" if syntax else "")


def my_lists(store: Store, mode: str) -> list[ListRecord]:
    """The lists of a mode, newest first, each with its distinct addresses counted."""
    return [with_distinct_addresses(store, record) for record in store.list_lists(mode)]


def overview(records: Sequence[ListRecord]) -> pd.DataFrame:
    """The "My lists" table: one row per list, newest first, with the funnel's figures."""
    stages = [{stage.label: stage.count for stage in list_stages(r)} for r in records]
    frame = pd.DataFrame({
        "Name": [r.name for r in records],
        "State": [_STATE_LABELS.get(r.state, r.state) for r in records],
        "Source": [("CleverTap · " if r.source_kind == "audience" else "CSV · ") + r.source for r in records],
        **{label: [counted[label] for counted in stages] for label in COUNT_COLUMNS if label != "Syntax errors"},
        "Syntax errors": [syntax_errors(r) for r in records],
        "Added": pd.to_datetime([r.created_at for r in records], utc=True),
    }, index=pd.Index([r.id for r in records], name="id"))
    return frame

