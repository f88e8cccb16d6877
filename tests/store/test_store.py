from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pandas as pd
import pytest

from lib import columns as C
from lib.store import ActiveJobExists, Store, StoreError
from lib.store.schema import MIGRATIONS, SCHEMA_VERSION, statements as _statements


def verdict_rows(emails: list[str], status: str = "valid") -> pd.DataFrame:
    rows = [{"email": e, **C.verdict_from_api({
        "status": status, "safe_to_send": {"valid": "yes", "invalid": "no", "unknown": "unknown"}[status],
        "sub_status": {"code": 200, "desc": "Success"}, "disposable": "no", "free": "yes", "role": "no",
        "gibberish": "no", "suggested_email_address": "", "bounce_type": "",
        "detail_info": {"account": e.split("@")[0], "domain": e.split("@")[1], "mx_record": "mx.x",
                        "smtp_provider": "google"},
        "verified_on": "2026-11-01T08:30:00.000Z", "time_taken": 120})} for e in emails]
    return pd.DataFrame(rows)


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path)


def test_fresh_file_gets_latest_schema_and_wal(store: Store) -> None:
    assert store.schema_version == SCHEMA_VERSION
    assert store._one("PRAGMA journal_mode")[0] == "wal"


def test_migrates_from_previous_version_keeping_data(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "app.sqlite3")
    for statement in _statements(MIGRATIONS[0]):
        con.execute(statement)
    con.execute("PRAGMA user_version=1")
    con.execute("INSERT INTO connections (name, account_id, region, mode, passcode_storage, created_at) "
                "VALUES ('Old', 'W8R', 'IN1', 'live', 'memory', '2026-01-01T00:00:00+00:00')")
    con.commit()
    con.close()

    store = Store(tmp_path)
    assert store.schema_version == SCHEMA_VERSION
    assert [c.name for c in store.list_connections("live")] == ["Old"]
    assert store.list_export_runs() == []  # the v2 tables exist


def test_refuses_a_newer_schema(tmp_path: Path) -> None:
    con = sqlite3.connect(tmp_path / "app.sqlite3")
    con.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(StoreError, match="newer than this app"):
        Store(tmp_path)


def test_connections_round_trip_and_survive_reopen(tmp_path: Path) -> None:
    store = Store(tmp_path)
    first = store.add_connection(name="Prod", account_id="W8R-1", region="IN1", mode="live",
                                 passcode_storage="memory")
    again = store.add_connection(name="Prod IN", account_id="W8R-1", region="IN1", mode="live",
                                 passcode_storage="env")
    assert again.id == first.id and again.name == "Prod IN" and again.passcode_storage == "env"
    store.add_connection(name="Other", account_id="W8R-2", region="US1", mode="live", passcode_storage="memory")
    with pytest.raises(StoreError, match="already exists"):
        store.add_connection(name="Other", account_id="W8R-3", region="US1", mode="live",
                             passcode_storage="memory")
    store.close()

    reopened = Store(tmp_path)
    assert [c.name for c in reopened.list_connections("live")] == ["Other", "Prod IN"]
    assert reopened.list_connections("sandbox") == []
    reopened.delete_connection(first.id)
    assert reopened.get_connection(first.id) is None


def test_no_secret_column_anywhere(store: Store) -> None:
    names = {row[1].lower() for table in ("connections", "audiences", "lists", "export_runs")
             for row in store._all(f"PRAGMA table_info({table})")}
    assert not {n for n in names if "passcode" in n and n != "passcode_storage"}
    assert not {n for n in names if "token" in n}


def test_audiences_and_lists_round_trip(store: Store) -> None:
    conn = store.add_connection(name="P", account_id="A", region="EU1", mode="sandbox", passcode_storage="memory")
    audience = store.save_audience(name="Buyers", connection_id=conn.id, event_name="Charged",
                                   from_date="2026-10-01", to_date="2026-10-31",
                                   filters=[{"name": "City", "operator": "equals", "value": "Pune"}])
    assert store.get_audience(audience.id).filters[0]["value"] == "Pune"
    store.mark_audience_pulled(audience.id)
    assert store.get_audience(audience.id).last_pulled_at

    lst = store.create_list(name="Buyers Oct", mode="sandbox", source_kind="audience",
                            source="Charged 2026-10-01..31", audience_id=audience.id, connection_id=conn.id)
    assert lst.state == "pulling"
    updated = store.update_list(lst.id, state="ready", rows=10, valid_emails=8, unique_emails=7,
                                duplicates=1, missing_emails=2, email_column="email")
    assert (updated.rows, updated.unique_emails, updated.state) == (10, 7, "ready")
    assert [r.id for r in store.list_lists("sandbox", states=["ready"])] == [lst.id]
    with pytest.raises(StoreError):
        store.update_list(lst.id, bogus=1)

    store.list_path(lst.id).parent.mkdir(parents=True, exist_ok=True)
    store.list_path(lst.id).write_bytes(b"x")
    job = store.create_job(list_id=lst.id, unique_emails=7, cached=0, syntax_invalid=1, to_verify=6)
    store.job_dir(job.id).mkdir(parents=True)
    store.delete_list(lst.id)
    assert store.get_list(lst.id) is None and store.get_job(job.id) is None
    assert not store.list_path(lst.id).exists() and not store.job_dir(job.id).exists()


def test_jobs_claim_at_most_three_active(store: Store) -> None:
    lists = [store.create_list(name=f"L{i}", mode="live", source_kind="csv", source="a.csv", state="ready")
             for i in range(5)]  # one job in flight per list
    jobs = [store.create_job(list_id=lst.id, unique_emails=5, cached=0, syntax_invalid=0, to_verify=5)
            for lst in lists]
    claimed = store.claim_jobs("w1", lease_seconds=30, max_active=3)
    assert [j.id for j in claimed] == [j.id for j in jobs[:3]]
    assert all(j.state == "uploading" and j.lease_owner == "w1" for j in claimed)
    # another worker gets nothing while the leases are live and the slots are full
    assert store.claim_jobs("w2", lease_seconds=30, max_active=3) == []
    store.update_job(jobs[0].id, state="done")
    store.update_job(jobs[4].id, cancel_requested=1)
    claimed = store.claim_jobs("w1", lease_seconds=30, max_active=3)
    assert sorted(j.id for j in claimed) == [jobs[1].id, jobs[2].id, jobs[3].id]
    assert store.get_job(jobs[4].id).state == "cancelled"
    # an expired lease lets another worker take over
    for job in claimed:
        store.update_job(job.id, lease_until=0)
    assert len(store.claim_jobs("w2", lease_seconds=30, max_active=3)) == 3


def test_cache_round_trip_freshness_and_lookup(store: Store) -> None:
    store.upsert_cache(verdict_rows(["a@x.com", "b@x.com"]), verified_on="2026-01-01T00:00:00+00:00")
    store.upsert_cache(verdict_rows(["c@x.com"], status="unknown"), verified_on="2026-11-01T00:00:00+00:00")
    everything = store.cached_verdicts()
    assert sorted(everything["email"]) == ["a@x.com", "b@x.com", "c@x.com"]
    row = everything.set_index("email").loc["a@x.com"]
    assert row[C.STATUS] == C.VALID and row[C.DOMAIN] == "x.com" and row[C.TIME_TAKEN] == 120
    assert row[C.VERIFIED_AT] == pd.Timestamp("2026-11-01T08:30:00Z")
    assert everything[C.STATUS].dtype == C.STATUS_DTYPE

    fresh = store.cached_verdicts(fresh_since="2026-06-01T00:00:00+00:00")
    assert list(fresh["email"]) == ["c@x.com"]
    assert store.cached_verdicts(["a@x.com", "c@x.com", "zz@x.com"], include_unknown=False)["email"].tolist() \
        == ["a@x.com"]
    # a newer verdict replaces the old one
    store.upsert_cache(verdict_rows(["a@x.com"], status="invalid"), verified_on="2026-11-20T00:00:00+00:00")
    assert store.cached_verdicts(["a@x.com"])[C.STATUS].tolist() == [C.INVALID]
    assert store.cache_size() == 3


def test_cache_rejects_frames_missing_columns(store: Store) -> None:
    with pytest.raises(C.ClearoutColumnsError):
        store.upsert_cache(pd.DataFrame({"email": ["a@x.com"], C.STATUS: ["Valid"]}))


def test_export_runs_batches_changes_and_audit(store: Store) -> None:
    conn = store.add_connection(name="P", account_id="A", region="IN1", mode="live", passcode_storage="memory")
    run = store.create_export_run(kind="export", list_id=None, job_id=None, connection=conn, list_name="L",
                                  actions=["unsubscribe"], policy={"statuses": ["Invalid"]},
                                  method="upload", actor="ana")
    changes = pd.DataFrame({
        "key_type": ["identity"] * 5, "key_value": [f"u{i}" for i in range(5)],
        "email": [f"u{i}@x.com" for i in range(5)], "unsubscribe": [True] * 5,
        "prior_msg_email": [True, False, None, True, True], "properties_json": [None] * 5})
    store.add_export_changes(run.id, [changes], batch_size=2)
    run = store.get_export_run(run.id)
    assert (run.planned_records, run.batches_total, run.actions) == (5, 3, ["unsubscribe"])
    assert [b.records for b in store.export_batches(run.id)] == [2, 2, 1]

    store.finish_export_batch(run.id, 0, state="done", processed=1, unprocessed=[(1, 515, "Email is not valid")],
                              audit={"actor": "ana", "account_id": "A", "region": "IN1",
                                     "endpoint": "/1/upload", "records": 2, "processed": 1,
                                     "unprocessed": 1, "outcome": "partial"})
    assert [b.batch_no for b in store.export_batches(run.id, states=["pending"])] == [1, 2]
    recorded = store.export_changes(run.id, batch_no=0)
    assert recorded["outcome"].tolist() == ["ok", "unprocessed"]
    assert recorded["error_code"].tolist()[1] == 515
    prior = store.export_changes(run.id)["prior_msg_email"]
    assert prior.isna().tolist() == [False, False, True, False, False]
    assert prior.dropna().tolist() == [1, 0, 1, 1]
    entry = store.audit_log(run_id=run.id)[0]
    assert (entry.endpoint, entry.records, entry.outcome) == ("/1/upload", 2, "partial")

    run = store.update_export_run(run.id, state="done", counts={"unsubscribed": 4})
    assert run.counts == {"unsubscribed": 4} and store.list_export_runs(states=["done"])[0].id == run.id


def test_two_threads_write_at_once(store: Store) -> None:
    lists = {p: store.create_list(name=f"L{p}", mode="live", source_kind="csv", source="a.csv", state="ready")
             for p in ("a", "b")}
    errors: list[BaseException] = []

    def write(prefix: str) -> None:
        try:
            for i in range(200):
                store.upsert_cache(verdict_rows([f"{prefix}{i}@x.com"]))
                job = store.create_job(list_id=lists[prefix].id, unique_emails=1, cached=0, syntax_invalid=0,
                                       to_verify=1)
                store.update_job(job.id, state="done")  # one job in flight per list: end it before the next
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            store.close()

    threads = [threading.Thread(target=write, args=(p,)) for p in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert store.cache_size() == 400
    assert [len(store.list_jobs(list_id=lst.id)) for lst in lists.values()] == [200, 200]


def test_one_job_in_flight_per_list_whoever_asks(store: Store) -> None:
    lst = store.create_list(name="L", mode="live", source_kind="csv", source="a.csv", state="ready")
    first = store.create_job(list_id=lst.id, unique_emails=5, cached=0, syntax_invalid=0, to_verify=5,
                             requested_by="ana")
    with pytest.raises(ActiveJobExists) as caught:
        store.create_job(list_id=lst.id, unique_emails=5, cached=0, syntax_invalid=0, to_verify=5)
    assert caught.value.job is not None and caught.value.job.id == first.id
    assert "started by ana" in caught.value.message
    store.update_job(first.id, state="done")
    store.create_job(list_id=lst.id, unique_emails=5, cached=0, syntax_invalid=0, to_verify=5)  # ended: fine


def test_migrations_split_trigger_bodies_whole() -> None:
    from lib.store.schema import MIGRATIONS, statements

    triggers = [s for s in statements(MIGRATIONS[3]) if s.startswith("CREATE TRIGGER")]
    assert len(triggers) == 4 and all(s.endswith("END") for s in triggers)
