"""Audience pulls against the sandbox: counts, chunked writing, errors, interruption by a restart."""
from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from lib import connections as conn
from lib import pulls
from tests.runtime_support import make_runtime, no_sleep  # noqa: F401 - fixture


@pytest.fixture
def runtime(tmp_path, sandbox, no_sleep):
    rt = make_runtime(tmp_path, sandbox)
    yield rt
    rt.close()


@pytest.fixture
def connection(runtime, sandbox):
    return conn.check_and_save(runtime, name="Shop", account_id=sandbox.account_id, passcode=sandbox.passcode,
                               region="IN1")


def list_files(rt) -> list[str]:
    return sorted(p.name for p in (rt.store.data_dir / "lists").iterdir())


def run_pull(rt, query, name="pulled", **kwargs):
    audience = pulls.save_audience(rt.store, query, name)
    record = pulls.pull_service(rt).start(audience, name, **kwargs)
    pulls.pull_service(rt).wait(record.id, timeout=60)
    return rt.store.get_list(record.id)


def test_pull_to_the_last_page_equals_the_count(runtime, connection) -> None:
    start, end = pulls.default_range()
    query = pulls.build_query(connection.id, "Charged", start, end)
    count = pulls.count_audience(runtime, query)
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
    assert list_files(runtime) == [f"{record.id}.parquet"]


def test_profile_filters_narrow_the_pull(runtime, connection) -> None:
    start, end = date.today() - timedelta(days=89), date.today()
    everyone = pulls.build_query(connection.id, "App Launched", start, end)
    gold = pulls.build_query(connection.id, "App Launched", start, end, [("Customer Type", "equals", "Gold")])
    assert 0 < pulls.count_audience(runtime, gold) < pulls.count_audience(runtime, everyone)
    record = run_pull(runtime, gold)
    assert record.state == "ready" and record.rows == pulls.count_audience(runtime, gold)


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
    start, end = pulls.default_range()
    query = pulls.build_query(connection.id, event, start + timedelta(days=shift), end + timedelta(days=shift))
    record = run_pull(runtime, query)
    assert record.state == "failed" and expected in record.error.lower() and "CleverTap" in record.error
    assert ("case-sensitive" in record.error) == (expected == "invalid event")
    assert record.rows == 0 and list_files(runtime) == []


def test_rejected_passcode_fails_the_list(runtime, connection, sandbox) -> None:
    runtime.vault.set_passcode(sandbox.account_id, "WRONG-PASS", remember=False)
    record = run_pull(runtime, pulls.build_query(connection.id, "Charged", *pulls.default_range()))
    assert record.state == "failed" and "rejected" in record.error and "WRONG-PASS" not in record.error
    assert list_files(runtime) == []


def test_missing_passcode_fails_the_list_with_what_to_do(runtime, connection, sandbox) -> None:
    runtime.vault.forget_passcode(sandbox.account_id)
    record = run_pull(runtime, pulls.build_query(connection.id, "Charged", *pulls.default_range()))
    assert record.state == "failed" and "Connect page" in record.error


def test_interrupted_pull_is_marked_failed_at_startup_and_pulls_again(tmp_path, sandbox, no_sleep) -> None:
    first = make_runtime(tmp_path, sandbox)
    connection = conn.check_and_save(first, name="Shop", account_id=sandbox.account_id,
                                     passcode=sandbox.passcode, region="IN1", remember=True)
    audience = pulls.save_audience(first.store, pulls.build_query(connection.id, "Charged", *pulls.default_range()),
                                   "buyers")
    stuck = first.store.create_list(name="buyers", mode="live", source_kind="audience", source="q",
                                    audience_id=audience.id, connection_id=connection.id, expected_rows=10)
    first.store.update_list(stuck.id, rows=5)
    leftover = first.store.data_dir / "lists" / ".incoming-dead.parquet"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"half")
    first.close()

    again = make_runtime(tmp_path, sandbox)
    try:
        failed = again.store.get_list(stuck.id)
        assert failed.state == "failed" and failed.error == pulls.INTERRUPTED
        assert not leftover.exists()
        record = pulls.pull_again(again, failed)
        pulls.pull_service(again).wait(record.id, timeout=60)
        assert again.store.get_list(stuck.id) is None
        assert again.store.get_list(record.id).state == "ready" and again.store.get_list(record.id).name == "buyers"
    finally:
        again.close()


def test_deleting_a_list_while_pulling_leaves_nothing(runtime, connection) -> None:
    audience = pulls.save_audience(runtime.store, pulls.build_query(connection.id, "App Launched",
                                                                    *pulls.default_range()), "all")
    service = pulls.pull_service(runtime)
    record = service.start(audience, "all", batch_size=23, pages_per_group=1)
    runtime.store.delete_list(record.id)
    service.wait(record.id, timeout=60)
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
    with pytest.raises(pulls.PullError, match=message):
        pulls.build_query(**args)


def test_build_query_skips_blank_filters_and_keeps_exists_without_value() -> None:
    query = pulls.build_query(1, " Charged ", date(2025, 3, 1), date(2025, 3, 2),
                              [("", "equals", ""), ("Phone", "exists", "")])
    assert query.event_name == "Charged"
    assert query.profile_fields() == [{"name": "Phone", "operator": "exists"}]
    assert "Phone exists" in query.describe()
