"""Audience pulls: a CleverTap profile query streamed into a list's Parquet file by a background thread.

CleverTap has no API that reads a dashboard segment's members, so an audience is a query (event,
date range, profile filters) paged through the cursor export. Pages are turned into columns at once
and written a few pages per Parquet row group: a million profiles never sit in memory as dicts.
Progress (rows so far, expected rows) lives in the store, where pages poll it; a pull the process
did not finish (restart) is marked failed at the next start, and its saved audience re-pulls it.
"""
from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from lib.clevertap import MAX_BATCH_SIZE, CleverTapError, _profile_from_record
from lib.lists import clean_name, email_stats, staging_path
from lib.runtime import MissingSecretError
from lib.store import Audience, ListRecord, Store, StoreError

if TYPE_CHECKING:
    from lib.runtime import Runtime

log = logging.getLogger(__name__)

PULL_SCHEMA = pa.schema([("identity", pa.string()), ("objectId", pa.string()), ("email", pa.string()),
                         ("name", pa.string()), ("MSG-email", pa.bool_())])
PAGES_PER_ROW_GROUP = 4  # 4 pages of up to 4991 profiles: ~20k rows per group, a few MB of columns
READ_AHEAD_PAGES = 2  # pages fetched ahead while one is converted: ~10k record dicts at most
DEFAULT_DAYS = 30
# Events every CleverTap project has, offered as suggestions; any other name can be typed.
SUGGESTED_EVENTS = ("App Launched", "App Installed", "Product Viewed", "Added to Cart", "Charged",
                    "App Uninstalled", "Notification Clicked")
# The operators of CleverTap's query language for profile_fields (the sandbox simulates these).
OPERATORS = ("equals", "not_equals", "contains", "greater_than", "less_than", "exists", "not_exists")
INTERRUPTED = "Interrupted by a restart: pull it again."
SERVICE_KEY = "pulls"


class PullError(ValueError):
    """An audience definition cannot be used; `str()` says what to fix."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class PullCancelled(Exception):
    """The list was deleted, or the app is stopping: the pull ends without a file."""


@dataclass(frozen=True)
class ProfileFilter:
    name: str
    operator: str
    value: str | None

    def as_query(self) -> dict[str, Any]:
        spec: dict[str, Any] = {"name": self.name, "operator": self.operator}
        if self.operator not in ("exists", "not_exists"):
            spec["value"] = self.value
        return spec


@dataclass(frozen=True)
class AudienceQuery:
    connection_id: int
    event_name: str
    from_date: date
    to_date: date
    filters: tuple[ProfileFilter, ...] = ()

    def profile_fields(self) -> list[dict[str, Any]]:
        return [f.as_query() for f in self.filters]

    def describe(self) -> str:
        text = f"{self.event_name}, {self.from_date:%Y-%m-%d} → {self.to_date:%Y-%m-%d}"
        for f in self.filters:
            text += f" · {f.name} {f.operator.replace('_', ' ')}" + (f" {f.value}" if "exists" not in f.operator else "")
        return text

    @classmethod
    def from_audience(cls, audience: Audience) -> AudienceQuery:
        return cls(audience.connection_id, audience.event_name, date.fromisoformat(audience.from_date),
                   date.fromisoformat(audience.to_date),
                   tuple(ProfileFilter(f["name"], f["operator"], f.get("value")) for f in audience.filters))


def default_range(today: date | None = None) -> tuple[date, date]:
    """The last 30 days, ending today in UTC (CleverTap refuses dates in the future)."""
    end = today or datetime.now(timezone.utc).date()
    return end - timedelta(days=DEFAULT_DAYS), end


def build_query(connection_id: int | None, event_name: str | None, from_date: date | None,
                to_date: date | None, filters: Iterable[tuple[str, str, str]] = ()) -> AudienceQuery:
    """Check what the form says and make a query of it. Blank filter rows are ignored.

    Raises:
        PullError: no connection or event, a reversed date range, a filter without name or value.
    """
    if connection_id is None:
        raise PullError("Choose a CleverTap connection.")
    event = (event_name or "").strip()
    if not event:
        raise PullError("Choose or type an event name (names are case-sensitive, e.g. App Launched).")
    if from_date is None or to_date is None:
        raise PullError("Choose a start and an end date.")
    if from_date > to_date:
        raise PullError(f"The start date {from_date:%Y-%m-%d} is after the end date {to_date:%Y-%m-%d}.")
    checked = []
    for name, operator, value in filters:
        name, value = (name or "").strip(), (value or "").strip()
        if not name and not value:
            continue
        if operator not in OPERATORS:
            raise PullError(f"Unknown operator {operator!r}: use one of {', '.join(OPERATORS)}.")
        if not name:
            raise PullError("A profile filter has a value but no property name.")
        if not value and operator not in ("exists", "not_exists"):
            raise PullError(f"The filter on {name} needs a value (or the operator 'exists').")
        checked.append(ProfileFilter(name, operator, value or None))
    return AudienceQuery(connection_id, event, from_date, to_date, tuple(checked))


# ---- talking to CleverTap ------------------------------------------------------------------------
def _client(runtime: Runtime, connection_id: int):
    connection = runtime.store.get_connection(connection_id)
    if connection is None:
        raise PullError("That CleverTap connection was removed: choose another one.")
    return runtime.clevertap_client(connection)


def count_audience(runtime: Runtime, query: AudienceQuery) -> int:
    """CleverTap's count of the profiles the query matches (what a pull will bring).

    Raises:
        CleverTapError: CleverTap refused or could not be reached (the message says which).
        MissingSecretError: the connection's passcode is not known to this process.
    """
    with _client(runtime, query.connection_id) as client:
        return client.count_profiles(query.event_name, query.from_date, query.to_date,
                                     filters=query.profile_fields() or None)


def error_message(exc: CleverTapError) -> str:
    """The client's message, with what to check when CleverTap does not know the event."""
    if "invalid event" in (exc.server_message or "").lower():
        return f"{exc.message}: event names are case-sensitive, check the spelling (e.g. App Launched)."
    return exc.message


def save_audience(store: Store, query: AudienceQuery, name: str) -> Audience:
    return store.save_audience(name=clean_name(name), connection_id=query.connection_id,
                               event_name=query.event_name, from_date=query.from_date.isoformat(),
                               to_date=query.to_date.isoformat(), filters=query.profile_fields())


# ---- writing -------------------------------------------------------------------------------------
def records_to_table(records: Iterable[dict[str, Any]]) -> pa.Table:
    """The list columns of raw CleverTap records (objectId from platformInfo when not top-level)."""
    columns: dict[str, list[Any]] = {name: [] for name in PULL_SCHEMA.names}
    for record in records:
        profile = _profile_from_record(record)
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
    buffer: queue.Queue = queue.Queue(maxsize=depth)
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

    helper = threading.Thread(target=produce, name="pull-read-ahead", daemon=True)
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


# ---- the background pulls ------------------------------------------------------------------------
class PullService:
    """Runs pulls in daemon threads; `stop()` makes each end at its next chunk, without a file."""

    def __init__(self, runtime: Runtime) -> None:
        self._runtime = runtime
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._threads: dict[int, threading.Thread] = {}

    def start(self, audience: Audience, list_name: str, *, expected_rows: int | None = None,
              batch_size: int = MAX_BATCH_SIZE, pages_per_group: int = PAGES_PER_ROW_GROUP) -> ListRecord:
        """Create the list (state 'pulling') and pull into it in the background."""
        store = self._runtime.store
        connection = store.get_connection(audience.connection_id)
        if connection is None:
            raise PullError("That CleverTap connection was removed: connect it again first.")
        query = AudienceQuery.from_audience(audience)
        record = store.create_list(name=clean_name(list_name), mode=self._runtime.mode, source_kind="audience",
                                   source=f"{connection.name} · {query.describe()}", audience_id=audience.id,
                                   connection_id=connection.id, expected_rows=expected_rows)
        thread = threading.Thread(target=self._run, name=f"pull-{record.id}", daemon=True,
                                  args=(record.id, audience, query, batch_size, pages_per_group))
        with self._lock:
            self._threads = {k: t for k, t in self._threads.items() if t.is_alive()}
            self._threads[record.id] = thread
        thread.start()
        return record

    def wait(self, list_id: int, timeout: float | None = None) -> None:
        """Block until a pull's thread ends (tests and the benchmark; pages poll the store)."""
        with self._lock:
            thread = self._threads.get(list_id)
        if thread is not None:
            thread.join(timeout)

    def stop(self) -> None:
        self._stopping.set()
        with self._lock:
            threads = list(self._threads.values())
        for thread in threads:
            thread.join(timeout=10)

    def _run(self, list_id: int, audience: Audience, query: AudienceQuery, batch_size: int,
             pages_per_group: int) -> None:
        store = self._runtime.store
        staged = staging_path(store)
        try:
            with _client(self._runtime, query.connection_id) as client:
                self._check_wanted(list_id)
                if store.get_list(list_id).expected_rows is None:
                    expected = client.count_profiles(query.event_name, query.from_date, query.to_date,
                                                     filters=query.profile_fields() or None)
                    store.update_list(list_id, expected_rows=expected)
                pages = client.iter_profiles(query.event_name, query.from_date, query.to_date,
                                             filters=query.profile_fields() or None, batch_size=batch_size)
                write_pages(read_ahead(pages), staged, pages_per_group=pages_per_group,
                            on_chunk=lambda rows: self._progress(list_id, rows))
            self._check_wanted(list_id)
            staged.replace(store.list_path(list_id))
            stats = email_stats(store.list_path(list_id), "email")
            store.update_list(list_id, state="ready", email_column="email", identity_column="identity",
                              object_id_column="objectId", msg_email_column="MSG-email", **stats.as_changes())
            store.mark_audience_pulled(audience.id)
        except (PullCancelled, StoreError):
            # Deleted while pulling (or the app is stopping): nothing to keep.
            if store.get_list(list_id) is None:
                store.list_path(list_id).unlink(missing_ok=True)
        except CleverTapError as exc:
            self._fail(list_id, error_message(exc))
        except PullError as exc:
            self._fail(list_id, exc.message)
        except MissingSecretError as exc:
            self._fail(list_id, str(exc))
        except Exception:  # noqa: BLE001 - a worker must record its failure, not die silently
            log.exception("audience pull of list %s failed", list_id)
            self._fail(list_id, "The pull stopped on an unexpected error (details in the server log): "
                                "pull it again.")
        finally:
            staged.unlink(missing_ok=True)

    def _progress(self, list_id: int, rows: int) -> None:
        self._check_wanted(list_id)
        self._runtime.store.update_list(list_id, rows=rows)

    def _check_wanted(self, list_id: int) -> None:
        if self._stopping.is_set() or self._runtime.store.get_list(list_id) is None:
            raise PullCancelled()

    def _fail(self, list_id: int, message: str) -> None:
        store = self._runtime.store
        store.list_path(list_id).unlink(missing_ok=True)
        try:
            store.update_list(list_id, state="failed", error=message, rows=0)
        except StoreError:
            pass  # deleted meanwhile


def pull_service(runtime: Runtime) -> PullService:
    """The process's pull service (created by `start_pull_service` at startup, or on first use)."""
    service = runtime.services.get(SERVICE_KEY)
    if service is None:
        service = runtime.services.setdefault(SERVICE_KEY, PullService(runtime))
    return service


def start_pull_service(runtime: Runtime) -> PullService:
    """At startup: pulls left 'pulling' by the previous process can never finish; say so."""
    marked = runtime.store.fail_unfinished_lists(runtime.mode, INTERRUPTED)
    if marked:
        log.info("marked %d interrupted audience pull(s) as failed", marked)
    for leftover in (runtime.store.data_dir / "lists").glob(".incoming-*.parquet"):
        leftover.unlink(missing_ok=True)
    return pull_service(runtime)


def start_pull(runtime: Runtime, audience: Audience, list_name: str, *,
               expected_rows: int | None = None) -> ListRecord:
    """Pull a saved audience into a new list in the background; returns the list ('pulling')."""
    return pull_service(runtime).start(audience, list_name, expected_rows=expected_rows)


def pull_again(runtime: Runtime, failed: ListRecord) -> ListRecord:
    """Re-pull a failed list's saved audience into a new list, which replaces the failed one."""
    audience = runtime.store.get_audience(failed.audience_id) if failed.audience_id else None
    if audience is None:
        raise PullError("This list's saved audience is gone (its connection was removed): connect the "
                        "project again and define the audience anew.")
    record = start_pull(runtime, audience, failed.name)
    runtime.store.delete_list(failed.id)
    return record
