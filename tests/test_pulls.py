"""Audience pulls against the sandbox: counts, chunked writing, errors, interruption by a restart."""
from __future__ import annotations

import io
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

import socket

from lib import audiences, pulls
from lib import connections as conn
from lib.pulls import PullWorker
from lib.processes import ProcessId
from tests.runtime_support import make_runtime
from tests.access_support import ADMIN, OPERATOR


@pytest.fixture
def runtime(tmp_path, sandbox, no_sleep):
    rt = make_runtime(tmp_path, sandbox)
    yield rt
    rt.close()


@pytest.fixture
def connection(runtime, sandbox):
    return conn.check_and_save(runtime, name="Shop", account_id=sandbox.account_id, passcode=sandbox.passcode,
                               region="IN1", user=ADMIN)


def list_files(rt) -> list[str]:
    return sorted(p.name for p in (rt.store.data_dir / "lists").iterdir())


def worker_for(rt, **kwargs) -> PullWorker:
    return PullWorker(rt.store, rt.clients.clevertap, mode=rt.mode, owner="test-worker", **kwargs)


def run_pull(rt, query, name="pulled", **kwargs):
    """What the page records (a list in 'pulling'), then the worker's round that pulls it."""
    audience = audiences.save_audience(rt.store, query, name, user=OPERATOR)
    record = audiences.start_pull(rt.store, rt.mode, audience, name, user=OPERATOR)
    assert worker_for(rt, **kwargs).run_once()
    return rt.store.get_list(record.id)


def count_of(rt, query) -> int:
    return pulls.count_audience(rt.clients.clevertap(rt.store.connection(query.connection_id)), query)


def test_pull_to_the_last_page_equals_the_count_of(runtime, connection) -> None:
    start, end = audiences.default_range()
    query = audiences.build_query(connection.id, "Charged", start, end)
    count = count_of(runtime, query)
    assert 0 < count < 2000
    record = run_pull(runtime, query, batch_size=230, pages_per_group=2)
    assert record.state == "ready", record.error
    assert record.rows == count and record.expected_rows == count  # counted by the worker itself
    path = runtime.store.list_path(record.id)
    meta = pq.ParquetFile(path).metadata
    assert meta.num_rows == count and meta.num_row_groups == -(-count // 460)
    frame = pd.read_parquet(path)
    assert list(frame.columns) == ["identity", "objectId", "email", "name", "MSG-email"]
    assert frame["objectId"].notna().all() and frame["objectId"].is_unique
    assert frame["MSG-email"].dtype == bool or str(frame["MSG-email"].dtype) == "boolean"
    assert (record.email_column, record.identity_column, record.object_id_column, record.msg_email_column) == \
        ("email", "identity", "objectId", "MSG-email")
    assert record.valid_emails + record.missing_emails <= record.rows
    assert record.duplicates == record.valid_emails - record.unique_emails > 0
    assert runtime.store.get_audience(record.audience_id).last_pulled_at
    assert list_files(runtime) == [f"{record.id}.keys.parquet", f"{record.id}.parquet"]


def test_profile_filters_narrow_the_pull(runtime, connection) -> None:
    start, end = date.today() - timedelta(days=89), date.today()
    everyone = audiences.build_query(connection.id, "App Launched", start, end)
    gold = audiences.build_query(connection.id, "App Launched", start, end, [("Customer Type", "equals", "Gold")])
    assert 0 < count_of(runtime, gold) < count_of(runtime, everyone)
    record = run_pull(runtime, gold)
    assert record.state == "ready" and record.rows == count_of(runtime, gold)


def test_writer_flushes_a_row_group_every_few_pages_without_reading_ahead(tmp_path: Path) -> None:
    consumed = []

    def pages():
        for p in range(7):
            consumed.append(p)
            yield [{"identity": f"{p}-{i}", "email": f"u{p}{i}@x.com",
                    "platformInfo": [{"objectId": f"__{p}{i}"}]} for i in range(10)]

    chunks = []
    rows = pulls.write_pages(pages(), tmp_path / "p.parquet", pages_per_group=2,
                             on_chunk=lambda n: chunks.append((n, len(consumed))))
    # Each group is written as soon as its pages arrived: the writer never holds more than 2 pages.
    assert chunks == [(20, 2), (40, 4), (60, 6), (70, 7)] and rows == 70
    meta = pq.ParquetFile(tmp_path / "p.parquet").metadata
    assert meta.num_row_groups == 4 and meta.num_rows == 70


def test_records_keep_identity_object_id_email_name_and_msg_email() -> None:
    table = pulls.records_to_table([
        {"identity": "7", "email": " A@x.com", "name": "Ann", "objectId": "__top",
         "platformInfo": [{"objectId": "__platform"}], "profileData": {"MSG-email": False}},
        {"profileData": {"Email": "b@x.com", "Name": "Bo", "MSG-email": "true", "Identity": 8},
         "platformInfo": [{"platform": "iOS", "objectId": "__ios"}]},
        {"platformInfo": []},
    ]).to_pylist()
    assert table[0] == {"identity": "7", "objectId": "__top", "email": " A@x.com", "name": "Ann", "MSG-email": False}
    assert table[1] == {"identity": "8", "objectId": "__ios", "email": "b@x.com", "name": "Bo", "MSG-email": True}
    assert table[2] == {"identity": None, "objectId": None, "email": None, "name": None, "MSG-email": None}


@pytest.mark.parametrize(("event", "shift", "expected"), [
    ("app launched", 0, "invalid event"),           # names are case-sensitive
    ("App Launched", 5, "future"),                   # CleverTap refuses dates in the future
])
def test_clevertap_errors_fail_the_list_and_leave_no_file(runtime, connection, event, shift, expected) -> None:
    start, end = audiences.default_range()
    query = audiences.build_query(connection.id, event, start + timedelta(days=shift), end + timedelta(days=shift))
    record = run_pull(runtime, query)
    assert record.state == "failed" and expected in record.error.lower() and "CleverTap" in record.error
    assert ("case-sensitive" in record.error) == (expected == "invalid event")
    assert record.rows == 0 and list_files(runtime) == []


def test_rejected_passcode_fails_the_list(runtime, connection, sandbox) -> None:
    runtime.vault.set_passcode(sandbox.account_id, "WRONG-PASS", remember=False)
    record = run_pull(runtime, audiences.build_query(connection.id, "Charged", *audiences.default_range()))
    assert record.state == "failed" and "rejected" in record.error and "WRONG-PASS" not in record.error
    assert list_files(runtime) == []


def test_missing_passcode_fails_the_list_with_what_to_do(runtime, connection, sandbox) -> None:
    runtime.vault.forget_passcode(sandbox.account_id)
    record = run_pull(runtime, audiences.build_query(connection.id, "Charged", *audiences.default_range()))
    assert record.state == "failed" and "Connect page" in record.error


def test_a_pull_whose_worker_died_is_pulled_again_at_once(tmp_path, sandbox, no_sleep) -> None:
    rt = make_runtime(tmp_path, sandbox)
    try:
        connection = conn.check_and_save(rt, name="Shop", account_id=sandbox.account_id,
                                         passcode=sandbox.passcode, region="IN1", user=ADMIN)
        audience = audiences.save_audience(rt.store, audiences.build_query(connection.id, "Charged",
                                                                           *audiences.default_range()), "buyers",
                                                                           user=OPERATOR)
        stuck = audiences.start_pull(rt.store, rt.mode, audience, "buyers", expected_rows=10, user=OPERATOR)
        rt.store.update_list(stuck.id, rows=5)
        # Its worker was killed mid-pull: the lease names a process that no longer runs, far from expiry.
        dead = ProcessId(socket.gethostname(), 2**22 + 17, 1)
        with rt.store._tx() as con:
            con.execute("UPDATE lists SET lease_owner = ?, lease_until = ? WHERE id = ?",
                        (str(dead), 9e12, stuck.id))
        leftover = rt.store.data_dir / "lists" / f".incoming-{stuck.id}.parquet"
        leftover.parent.mkdir(parents=True, exist_ok=True)
        leftover.write_bytes(b"half")

        assert worker_for(rt).run_once()

        record = rt.store.list_record(stuck.id)
        assert record.state == "ready" and record.rows == count_of(rt, audiences.AudienceQuery.from_audience(audience))
        assert not leftover.exists() and list_files(rt) == [f"{stuck.id}.keys.parquet", f"{stuck.id}.parquet"]
    finally:
        rt.close()


def test_a_pull_leased_by_a_live_worker_is_left_to_it(runtime, connection) -> None:
    audience = audiences.save_audience(runtime.store, audiences.build_query(connection.id, "Charged",
                                                                            *audiences.default_range()), "b",
                                                                            user=OPERATOR)
    record = audiences.start_pull(runtime.store, runtime.mode, audience, "b", user=OPERATOR)
    assert runtime.store.claim_pull("other-live-worker", mode=runtime.mode, lease_seconds=60).id == record.id
    assert worker_for(runtime).run_once() is False
    assert runtime.store.list_record(record.id).state == "pulling"


def test_deleting_a_list_while_pulling_leaves_nothing(runtime, connection) -> None:
    audience = audiences.save_audience(runtime.store, audiences.build_query(connection.id, "App Launched",
                                                                            *audiences.default_range()), "all",
                                                                            user=OPERATOR)
    record = audiences.start_pull(runtime.store, runtime.mode, audience, "all", user=OPERATOR)
    worker = worker_for(runtime, batch_size=23, pages_per_group=1)
    original = runtime.store.update_list

    def delete_at_first_progress(list_id, **changes):
        if "rows" in changes and changes["rows"]:
            runtime.store.delete_list(list_id)
        return original(list_id, **changes)

    runtime.store.update_list = delete_at_first_progress
    worker.run_once()
    runtime.store.update_list = original
    assert runtime.store.get_list(record.id) is None and list_files(runtime) == []


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"connection_id": None}, "connection"),
    ({"event_name": "  "}, "event name"),
    ({"from_date": date(2025, 3, 2), "to_date": date(2025, 3, 1)}, "after the end date"),
    ({"filters": [("", "equals", "Gold")]}, "no property name"),
    ({"filters": [("City", "equals", "")]}, "needs a value"),
    ({"filters": [("City", "like", "x")]}, "Unknown operator"),
])
def test_build_query_explains_what_to_fix(kwargs, message) -> None:
    args = {"connection_id": 1, "event_name": "Charged", "from_date": date(2025, 3, 1),
            "to_date": date(2025, 3, 2), **kwargs}
    with pytest.raises(audiences.PullError, match=message):
        audiences.build_query(**args)


def test_build_query_skips_blank_filters_and_keeps_exists_without_value() -> None:
    query = audiences.build_query(1, " Charged ", date(2025, 3, 1), date(2025, 3, 2),
                              [("", "equals", ""), ("Phone", "exists", "")])
    assert query.event_name == "Charged"
    assert query.profile_fields() == [{"name": "Phone", "operator": "exists"}]
    assert "Phone exists" in query.describe()


def test_a_csv_list_being_imported_is_never_taken_for_a_pull(runtime, monkeypatch) -> None:
    """The worker's round falls exactly between the list row and its rows: it must leave the import alone
    (it took the list for a pull, failed it and deleted the file just written: Verify then broke)."""
    from lib import lists

    rounds: list[bool] = []
    write_keys = lists.write_keys

    def keys_during_a_worker_round(*args, **kwargs):
        rounds.append(worker_for(runtime).run_once())
        return write_keys(*args, **kwargs)

    monkeypatch.setattr(lists, "write_keys", keys_during_a_worker_round)
    record, _ = lists.add_csv_list(runtime.store, runtime.mode, io.BytesIO(b"Email\na@x.com\nb@x.com\n"),
                                   file_name="fresh.csv", max_bytes=10**6, user=OPERATOR)
    assert rounds == [False]  # nothing to pull
    record = runtime.store.list_record(record.id)
    assert record.state == "ready" and record.rows == 2 and runtime.store.list_path(record.id).exists()


def test_a_csv_import_whose_process_died_is_failed_by_the_worker(runtime) -> None:
    dead = ProcessId(socket.gethostname(), 2**22 + 17, 1)
    record = runtime.store.create_list(name="half", mode=runtime.mode, source_kind="csv", source="half.csv",
                                       lease_owner=str(dead), lease_seconds=3600)
    half_written = runtime.store.list_path(record.id)
    half_written.parent.mkdir(parents=True, exist_ok=True)
    half_written.write_bytes(b"half")
    assert worker_for(runtime).run_once()
    failed = runtime.store.list_record(record.id)
    assert failed.state == "failed" and "add the file again" in (failed.error or "")
    assert not half_written.exists()
