"""Audience pulls, in the worker process: a CleverTap profile query streamed into a list's Parquet file.

Pages are turned into columns at once and written a few pages per Parquet row group: a million
profiles never sit in memory as dicts. A list in state 'pulling' is the request; the worker leases
it, keeps its progress (rows so far, expected rows) in the store, where pages poll it, and renews the
lease as it goes. A pull whose worker died is taken over by the next worker and starts again from
the first page (the cursor export has no resumable position worth trusting after a crash).
"""
from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from lib import activity
from lib.audiences import AudienceQuery, PullError, error_message
from lib.clevertap import MAX_BATCH_SIZE, CleverTapClient, CleverTapError, profile_from_record
from lib.errors import UserError
from lib.listkeys import write_keys
from lib.progress import list_subject, track
from lib.store import Connection, ListRecord, Store, StoreError

log = logging.getLogger(__name__)

PULL_SCHEMA = pa.schema([("identity", pa.string()), ("objectId", pa.string()), ("email", pa.string()),
                         ("name", pa.string()), ("MSG-email", pa.bool_())])
PAGES_PER_ROW_GROUP = 4  # 4 pages of up to 4991 profiles: ~20k rows per group, a few MB of columns
READ_AHEAD_PAGES = 2  # pages fetched ahead while one is converted: ~10k record dicts at most
LEASE_SECONDS = 60.0


class PullCancelled(Exception):
    """The list was deleted, the lease was lost, or the worker is stopping: the pull ends without a file."""


def records_to_table(records: Iterable[dict[str, Any]]) -> pa.Table:
    """The list columns of raw CleverTap records (objectId from platformInfo when not top-level)."""
    columns: dict[str, list[Any]] = {name: [] for name in PULL_SCHEMA.names}
    for record in records:
        profile = profile_from_record(record)
        columns["identity"].append(profile.identity)
        columns["objectId"].append(profile.object_id)
        columns["email"].append(None if profile.email is None else str(profile.email))
        columns["name"].append(None if profile.name is None else str(profile.name))
        columns["MSG-email"].append(profile.msg_email)
    return pa.table(columns, schema=PULL_SCHEMA)


def write_pages(pages: Iterable[list[dict[str, Any]]], path: Path, *, pages_per_group: int = PAGES_PER_ROW_GROUP,
                on_chunk: Callable[[int], None] | None = None) -> int:
    """Stream pages of records into a Parquet file, one row group per `pages_per_group` pages.

    `on_chunk(rows_so_far)` runs after each row group; it may raise PullCancelled to stop.
    Returns the number of rows written. The file is incomplete if this raises.
    """
    rows = 0
    pending: list[pa.Table] = []
    with pq.ParquetWriter(path, PULL_SCHEMA) as writer:
        def flush() -> None:
            nonlocal rows
            chunk = pa.concat_tables(pending)
            writer.write_table(chunk, row_group_size=max(1, chunk.num_rows))
            rows += chunk.num_rows
            pending.clear()
            if on_chunk is not None:
                on_chunk(rows)

        for page in pages:
            pending.append(records_to_table(page))
            if len(pending) >= pages_per_group:
                flush()
        if pending:
            flush()
    return rows


def read_ahead(pages: Iterable[list[dict[str, Any]]], depth: int = READ_AHEAD_PAGES
               ) -> Iterator[list[dict[str, Any]]]:
    """Fetch the next pages in a helper thread while the caller converts and writes this one.

    CleverTap pages come one cursor after the other, so without this the network and our own
    work take turns; with it they overlap. At most `depth` pages wait in memory. The helper stops
    when the caller stops iterating (closing this generator), and its errors are re-raised here.
    """
    buffer: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def put(item: Any) -> bool:
        while not stop.is_set():
            try:
                buffer.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for page in pages:
                if not put(page):
                    return
            put(done)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which raises it
            put(exc)

    helper = threading.Thread(target=activity.carry(produce), name="pull-read-ahead", daemon=True)
    helper.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        helper.join(timeout=60)


def count_audience(client: CleverTapClient, query: AudienceQuery) -> int:
    """CleverTap's count of the profiles a query matches (what a pull will bring).

    Raises:
        CleverTapError: CleverTap refused or could not be reached (the message says which).
    """
    return client.count_profiles(query.event_name, query.from_date, query.to_date,
                                 filters=query.profile_fields() or None)


class PullWorker:
    """Pulls the lists waiting in state 'pulling', one at a time, renewing its lease as it goes.

    Args:
        client_for: the shared CleverTap client of a connection (not closed here); raises a UserError
            when the app does not hold its passcode.
        owner: this process (lib.processes), named in the list's lease.
        stop: set when the process stops: the pull in progress ends at its next chunk, without a file,
            and the next worker pulls the list again.
    """

    name = "pulls"

    def __init__(self, store: Store, client_for: Callable[[Connection], CleverTapClient], *, mode: str, owner: str,
                 stop: threading.Event | None = None, batch_size: int = MAX_BATCH_SIZE,
                 pages_per_group: int = PAGES_PER_ROW_GROUP) -> None:
        self.store = store
        self.client_for = client_for
        self.mode = mode
        self.owner = owner
        self.stop = stop or threading.Event()
        self.batch_size = batch_size
        self.pages_per_group = pages_per_group

    def run_once(self) -> bool:
        """Pull the next waiting list, if any; True when one was worked on."""
        record = self.store.claim_pull(self.owner, mode=self.mode, lease_seconds=LEASE_SECONDS)
        if record is None:
            return False
        try:
            with track(self.store, list_subject(record.id), fresh=True):  # waits and retries, for the Lists page
                self._pull(record)
        finally:
            if self.store.get_list(record.id) is not None:
                self.store.renew_pull_lease(record.id, self.owner, lease_seconds=None)
        return True

    def release(self) -> None:
        """Nothing held between rounds: a pull's lease is released when its round ends."""

    def _pull(self, record: ListRecord) -> None:
        store = self.store
        staged = store.data_dir / "lists" / f".incoming-{record.id}.parquet"
        staged.parent.mkdir(parents=True, exist_ok=True)
        try:
            if record.source_kind == "csv":  # its importer died before the rows were in place (lib.lists)
                raise PullError("The import of this file stopped before it finished (the app was stopped or "
                                "restarted meanwhile): add the file again.")
            audience = store.get_audience(record.audience_id) if record.audience_id else None
            connection = store.get_connection(record.connection_id) if record.connection_id else None
            if audience is None or connection is None:
                raise PullError("The saved audience or its CleverTap connection was removed: connect the project "
                                "again and define the audience anew.")
            query = AudienceQuery.from_audience(audience)
            client = self.client_for(connection)
            store.update_list(record.id, rows=0)  # a pull taken over starts again from the first page
            if record.expected_rows is None:
                store.update_list(record.id, expected_rows=count_audience(client, query))
            pages = client.iter_profiles(query.event_name, query.from_date, query.to_date,
                                         filters=query.profile_fields() or None, batch_size=self.batch_size)
            write_pages(read_ahead(pages), staged, pages_per_group=self.pages_per_group,
                        on_chunk=lambda rows: self._progress(record.id, rows))
            self._check_wanted(record.id)
            staged.replace(store.list_path(record.id))
            stats = write_keys(store.list_path(record.id), "email", store.list_keys_path(record.id),
                               data_dir=store.data_dir)
            store.update_list(record.id, state="ready", email_column="email", identity_column="identity",
                              object_id_column="objectId", msg_email_column="MSG-email", **stats.as_changes())
            store.mark_audience_pulled(audience.id)
        except (PullCancelled, StoreError):
            # Deleted while pulling (nothing to keep), or this worker is stopping or lost the lease
            # (the next worker pulls the list again).
            if store.get_list(record.id) is None:
                store.list_path(record.id).unlink(missing_ok=True)
        except CleverTapError as exc:
            self._fail(record.id, error_message(exc))
        except UserError as exc:
            self._fail(record.id, exc.message)
        except Exception:
            log.exception("audience pull of list %s failed", record.id)
            self._fail(record.id, "The pull stopped on an unexpected error (details in the worker log): pull it again.")
        finally:
            staged.unlink(missing_ok=True)

    def _progress(self, list_id: int, rows: int) -> None:
        self._check_wanted(list_id)
        self.store.update_list(list_id, rows=rows)

    def _check_wanted(self, list_id: int) -> None:
        if self.stop.is_set() or self.store.get_list(list_id) is None:
            raise PullCancelled()
        if not self.store.renew_pull_lease(list_id, self.owner, lease_seconds=LEASE_SECONDS):
            raise PullCancelled()

    def _fail(self, list_id: int, message: str) -> None:
        self.store.list_path(list_id).unlink(missing_ok=True)
        try:
            self.store.update_list(list_id, state="failed", error=message, rows=0)
        except StoreError:
            pass  # deleted meanwhile
