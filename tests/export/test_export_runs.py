"""lib/export (runs, applier, worker, read-back, undo) against the sandbox over real HTTP: apply, faults,
resume, read-back, retry, undo."""
from __future__ import annotations

import json
import threading

import pandas as pd
import pytest

from lib import columns as C
from lib.export import readback, runs, undo, views
from lib.export.applier import RunApplier
from lib.export.planfile import plan_export
from lib.export.worker import ExportWorker
from lib.worker.loop import LoopThread
from lib.clevertap import CleverTapClient
from lib.export.plan import (STAMP_PROPERTY, UNDONE_PREFIX, UNKNOWN_PRIOR_LEAVE, UNKNOWN_PRIOR_RESUBSCRIBE,
                             ExportOptions)
from lib.runtime import MissingSecretError
from lib.store import DuplicateRun, Store
from tests.export.support import (assert_state_matches_plan, client_for, connect, csv_list, make_verified_list,
                                  profile_of, pull)
from tests.access_support import OPERATOR, OTHER_OPERATOR

APPEND = ExportOptions(unsubscribe=True, append=True)


@pytest.fixture
def store(tmp_path) -> Store:
    return Store(tmp_path / "data")


def every(n: int, status: str, other: str = C.VALID):
    return lambda i: status if i % n == 0 else other


def planned(store: Store, record, options=ExportOptions(), guardrail_pct: float = 100.0):
    return plan_export(store, record.id, options, guardrail_pct=guardrail_pct)


def run_plan(store: Store, sb, plan, *, batch_size: int = 40, concurrency: int = 15, unknown_prior: str | None = None,
             **kwargs):
    if unknown_prior is None and plan.needs_prior_choice:
        unknown_prior = UNKNOWN_PRIOR_LEAVE
    run = runs.start_run(store, plan, connect(store, sb), user=OPERATOR, batch_size=batch_size,
                         unknown_prior=unknown_prior)
    with client_for(sb) as client:
        return RunApplier(store, run.id, client, concurrency=concurrency, **kwargs).apply()


def test_apply_with_faults_reaches_exactly_the_plan(make_sandbox, store, no_sleep) -> None:
    sb = make_sandbox(fault_rate=0.1)
    rows = pull(sb, 400)
    record = make_verified_list(store, rows, every(3, C.INVALID))
    plan = planned(store, record, APPEND)
    assert plan.summary.to_unsubscribe > 50 and plan.summary.changes == len(plan.read_changes())
    run = run_plan(store, sb, plan)

    assert run.state == "done", run.error
    assert sb.stats()["faults_injected"] > 0 and no_sleep  # faults happened and were retried
    assert run.processed == len(plan.read_changes()) and run.unprocessed == 0
    assert store.export_outcome_counts(run.id) == {"ok": len(plan.read_changes())}
    assert sb.stats()["max_uploads_in_flight"] <= 15
    assert_state_matches_plan(sb, plan)
    untouched = rows[~rows["identity"].fillna(rows["objectId"]).isin(plan.read_changes()["key_value"])]
    for row in untouched.head(30).itertuples():
        key = ("identity", row.identity) if isinstance(row.identity, str) else ("objectId", row.objectId)
        assert profile_of(sb, *key)["MSG-email"] == row._5  # MSG-email as pulled
    audit = store.audit_log(run_id=run.id)
    assert len(audit) == run.batches_total and {a.endpoint for a in audit} == {"/1/upload"}


def test_killed_mid_run_resumes_without_resending_finished_batches(make_sandbox, store) -> None:
    sb = make_sandbox()
    record = make_verified_list(store, pull(sb, 600), every(2, C.INVALID))
    plan = planned(store, record)
    run = runs.start_run(store, plan, connect(store, sb), user=OPERATOR, batch_size=20)
    assert run.batches_total == 15

    seen: list[int] = []

    def crash_after_four(batch_no: int) -> None:
        seen.append(batch_no)
        if len(seen) == 4:
            raise KeyboardInterrupt("killed")

    with client_for(sb) as client, pytest.raises(KeyboardInterrupt):
        RunApplier(store, run.id, client, concurrency=3, on_batch=crash_after_four).apply()
    done = store.export_progress(run.id)["batches_done"]
    # Batches that finish together are recorded together: at least four, never all.
    assert 4 <= done < 15 and store.get_export_run(run.id).state == "running"
    sent_first = sb.stats()["requests"]["clevertap.upload"]
    assert sent_first >= done

    sb.reset_stats()
    with client_for(sb) as client:  # a new process: a new client and runner
        run = RunApplier(store, run.id, client).apply()
    assert run.state == "done"
    assert sb.stats()["requests"]["clevertap.upload"] == 15 - done  # not one finished batch again
    assert store.export_outcome_counts(run.id) == {"ok": len(plan.read_changes())}
    assert_state_matches_plan(sb, plan)


def test_worker_applies_runs_and_waits_for_a_missing_passcode(make_sandbox, store) -> None:
    sb = make_sandbox()
    record = make_verified_list(store, pull(sb, 60), every(2, C.INVALID))
    run = runs.start_run(store, planned(store, record), connect(store, sb), user=OPERATOR)
    passcode: list[str] = []

    def client_for_run(_run) -> CleverTapClient:
        if not passcode:
            raise MissingSecretError("The passcode of Sandbox project is not known: enter it on the Connect page.")
        return client_for(sb)

    worker = ExportWorker(store, client_for_run, mode="sandbox", owner="tester")
    assert worker.run_once() is False
    waiting = views.run_status(store, run.id).waiting
    assert waiting and "Connect" in waiting and store.get_export_run(run.id).state == "running"
    passcode.append("known")
    assert worker.run_once() is True
    run = store.get_export_run(run.id)
    assert run.state == "done" and run.error is None and run.lease_owner is None


def test_worker_thread_stops_and_another_resumes(make_sandbox, store) -> None:
    sb = make_sandbox(latency_ms=20)
    record = make_verified_list(store, pull(sb, 300), every(1, C.INVALID))
    plan = planned(store, record)
    run = runs.start_run(store, plan, connect(store, sb), user=OPERATOR, batch_size=10)
    recorded = threading.Event()
    client = client_for(sb)
    stop = threading.Event()
    first = ExportWorker(store, lambda _r: client, mode="sandbox", owner="first", stop=stop, concurrency=2)
    original = store.finish_export_batches

    def record_then_signal(run_id, batches) -> None:
        original(run_id, batches)
        recorded.set()

    store.finish_export_batches = record_then_signal
    thread = LoopThread(first, stop, busy_pause=0.0, idle_pause=0.01).start()
    assert recorded.wait(10)
    stop.set()
    assert thread.join(10)
    store.finish_export_batches = original
    partial = store.export_progress(run.id)["batches_done"]
    assert 0 < partial < run.batches_total and store.get_export_run(run.id).state == "running"
    second = ExportWorker(store, lambda _r: client, mode="sandbox", owner="second")
    assert second.run_once()
    assert store.get_export_run(run.id).state == "done"
    assert_state_matches_plan(sb, plan)
    client.close()


def test_read_back_confirms_a_sample(make_sandbox, store, no_sleep) -> None:
    sb = make_sandbox()
    record = make_verified_list(store, pull(sb, 200), every(2, C.INVALID))
    run = run_plan(store, sb, planned(store, record, APPEND))
    table = views.read_back_table(run)
    assert table is not None and len(table) == 20 and (table["As planned"] == "yes").all()
    assert sb.stats()["requests"]["clevertap.profile"] >= 20

    # A profile changed behind our back is reported, not confirmed.
    key = table[table["Expected"].str.contains("MSG-email=false")].iloc[0]
    with client_for(sb) as client:
        client.upload_batch([{key["Key"]: key["Value"], "type": "profile", "profileData": {"MSG-email": True}}])
        checks = readback.read_back(store, run, client, sample=1000)
    flagged = [c for c in checks if c.key_value == key["Value"]]
    assert flagged and not flagged[0].confirmed and "MSG-email=true" in flagged[0].found
    assert no_sleep.count(readback.READ_BACK_RETRY_S) == 1  # one more look before calling it unconfirmed


def test_guardrail_refuses_without_the_typed_confirmation(make_sandbox, store) -> None:
    sb = make_sandbox()
    record = make_verified_list(store, pull(sb, 50), every(2, C.INVALID))
    plan = planned(store, record, guardrail_pct=30.0)
    assert plan.summary.over_guardrail and plan.summary.unsubscribe_pct > 30
    connection = connect(store, sb)
    for typed in ("", "yes", "UNSUBSCRIBE 1"):
        with pytest.raises(runs.GuardrailError):
            runs.start_run(store, plan, connection, user=OPERATOR, confirmation=typed)
    assert store.list_export_runs() == []
    run = runs.start_run(store, plan, connection, user=OPERATOR,
                           confirmation=f"UNSUBSCRIBE {plan.summary.to_unsubscribe}")
    assert run.state == "running"
    with pytest.raises(DuplicateRun, match="already applied"):
        runs.start_run(store, plan, connection,
                       user=OPERATOR, confirmation=f"UNSUBSCRIBE {plan.summary.to_unsubscribe}")


def test_email_only_list_goes_through_the_subscribe_api(make_sandbox, store) -> None:
    sb = make_sandbox()
    rows = pull(sb, 300)
    # Two profiles sharing an address (the sandbox has case duplicates): both must follow.
    shared = rows["email"].str.lower().duplicated(keep=False)
    emails = rows["email"].tolist()
    record = csv_list(store, emails, [C.INVALID if i % 4 == 0 or s else C.VALID for i, s in enumerate(shared)])
    appending = planned(store, record, APPEND)
    assert appending.method == "subscribe" and any("Append needs identities" in e for e in appending.errors)
    plan = planned(store, record)
    assert plan.method == "subscribe" and not plan.errors and any("every profile" in n.lower() for n in plan.notes)
    run = run_plan(store, sb, plan)
    assert run.state == "done" and sb.stats()["requests"].get("clevertap.upload", 0) == 0
    assert sb.stats()["subscription_changes"] == len(plan.read_changes())
    for address in plan.read_changes()["key_value"]:
        with sb.store.lock:
            keys = sb.store.keys_of_email(address)
        assert keys and all(sb.store.profile_data(k)["MSG-email"] is False for k in keys)
    # Small plans read the previous state first, so undo knows what to restore.
    priors = store.export_changes(run.id)["prior_msg_email"]
    assert priors.notna().all()


def test_unprocessed_records_are_listed_and_retried(make_sandbox, store) -> None:
    sb = make_sandbox()
    rows = pull(sb, 80)
    rows.loc[3, "identity"] = None
    rows.loc[3, "objectId"] = "not an object id!"  # CleverTap answers 526 for this record, every time
    record = make_verified_list(store, rows, every(1, C.INVALID))
    plan = planned(store, record)
    flaky = plan.read_changes()["key_value"].iloc[10]

    class DropsOneRecordOnce(CleverTapClient):
        """CleverTap sometimes leaves a record unprocessed (code 555) and takes it on a retry."""
        dropped = False

        def upload_encoded(self, body, count, **kwargs):  # the runner sends bodies it encoded ahead
            if not self.dropped:
                records = json.loads(body)["d"]
                for record in records:
                    if flaky in record.values():
                        record["objectId"] = "bad id"
                        self.dropped = True
                body = json.dumps({"d": records}).encode()
            return super().upload_encoded(body, count, **kwargs)

    run = runs.start_run(store, plan, connect(store, sb), user=OPERATOR, batch_size=25)
    with DropsOneRecordOnce(sb.account_id, sb.passcode, sb.region, base_url=sb.clevertap_base_template) as client:
        run = RunApplier(store, run.id, client).apply()
    listed = views.run_changes(store, run.id, outcomes=["unprocessed"])
    assert run.state == "done" and run.unprocessed == 2 and len(listed) == 2
    assert set(listed["Value"]) == {"not an object id!", flaky}
    assert listed["Why"].str.contains("objectId is invalid").all()

    retry = runs.start_retry(store, run.id, user=OPERATOR)
    assert retry.kind == "retry" and retry.parent_run_id == run.id and retry.tag == run.tag
    with client_for(sb) as client:
        retry = RunApplier(store, retry.id, client).apply()
    assert store.export_outcome_counts(retry.id) == {"ok": 1, "unprocessed": 1}
    assert profile_of(sb, "identity", flaky)[STAMP_PROPERTY] == run.tag


def _sandbox_upload(sb, key: tuple[str, str], data: dict) -> None:
    with client_for(sb) as client:
        outcome = client.upload_batch([{key[0]: key[1], "type": "profile", "profileData": data}])
    assert outcome.processed == 1


def test_undo_restores_exactly_the_prior_state(make_sandbox, store) -> None:
    sb = make_sandbox()
    rows = pull(sb, 240)
    rows["MSG-email"] = rows["MSG-email"].astype("boolean")
    invalid = every(2, C.INVALID)
    # An unsubscribed profile the list does not know about: its state is read before sending.
    unknown = rows.index[(rows.index % 2 == 0) & ~rows["MSG-email"].fillna(True)].tolist()[:1]
    rows.loc[unknown, "MSG-email"] = pd.NA
    assert len(unknown) == 1
    record = make_verified_list(store, rows, invalid)
    plan = planned(store, record)
    before_false = rows.index[(rows.index % 2 == 0) & (rows["MSG-email"] == False)]  # noqa: E712
    assert len(before_false) > 0 and plan.summary.already_unsubscribed == len(before_false)
    run = run_plan(store, sb, plan)
    assert run.state == "done"

    changed = plan.read_changes()
    resubscribed_since = tuple(changed.iloc[0][["key_type", "key_value"]])
    other_run_since = tuple(changed.iloc[1][["key_type", "key_value"]])
    _sandbox_upload(sb, resubscribed_since, {"MSG-email": True})
    _sandbox_upload(sb, other_run_since, {"MSG-email": True})
    _sandbox_upload(sb, other_run_since, {"MSG-email": False, STAMP_PROPERTY: "20990101-other"})

    with client_for(sb) as client:
        undo_plan = undo.preview_undo(store, run.id, client)
    assert undo_plan.checked_all
    decisions = {value: decision for _, value, decision, _ in undo_plan.preview}
    assert decisions[resubscribed_since[1]] == undo.SKIP_SUBSCRIBED
    assert decisions[other_run_since[1]] == undo.SKIP_OTHER
    # Read as unsubscribed just before sending, or unsubscribed in the list already: never flipped.
    assert undo_plan.counts["were_unsubscribed_before"] == len(unknown) + len(before_false)

    undo_run = undo.start_undo(store, run.id, user=OPERATOR, batch_size=30)
    assert undo_run.kind == "undo" and undo_run.parent_run_id == run.id
    with client_for(sb) as client:
        undo_run = RunApplier(store, undo_run.id, client).apply()
    assert undo_run.state == "done"

    for row in rows.itertuples():
        key = ("identity", row.identity) if isinstance(row.identity, str) else ("objectId", row.objectId)
        data = profile_of(sb, *key)
        if key == other_run_since:
            assert data["MSG-email"] is False and data[STAMP_PROPERTY] == "20990101-other"
        elif key == resubscribed_since:
            assert data["MSG-email"] is True
        elif row.Index in unknown:
            assert data["MSG-email"] is False  # was unsubscribed before the run
        else:
            assert data["MSG-email"] == bool(row._5), row  # exactly as pulled
        if key in set(zip(changed["key_type"], changed["key_value"])) and key not in (other_run_since,):
            if key != resubscribed_since and row.Index not in unknown:
                assert data[STAMP_PROPERTY] == UNDONE_PREFIX + run.tag
    skipped = views.run_changes(store, undo_run.id, outcomes=["skipped"])
    assert set(skipped["Value"]) == {resubscribed_since[1], other_run_since[1]}
    # The run is partly undone: the profile another run unsubscribed since stays unsubscribed.
    status = views.undo_status(store, store.export_run(run.id))
    assert status is not None and status.word == "partly undone" and status.left_unsubscribed == 1
    assert status.line == f"partly undone by run {undo_run.id}: 1 profile left unsubscribed"
    table = views.runs_table(store.list_export_runs(), views.undo_statuses(store, store.list_export_runs()))
    assert table.set_index("Run").loc[run.id, "State"] == "done, partly undone"
    with pytest.raises(runs.ExportError, match="already undone"):
        undo.preview_undo(store, run.id, None)


def test_undo_of_an_email_only_run_resubscribes_addresses(make_sandbox, store) -> None:
    sb = make_sandbox()
    rows = pull(sb, 120)
    record = csv_list(store, rows["email"].tolist(), [C.INVALID if i % 3 == 0 else C.VALID for i in range(120)])
    run = run_plan(store, sb, planned(store, record))
    with client_for(sb) as client:
        undo_plan = undo.preview_undo(store, run.id, client)
    before = dict(zip(rows["email"].str.strip().str.lower(), rows["MSG-email"]))
    expected = sum(1 for v in store.export_changes(run.id)["prior_msg_email"] if v == 1)
    assert undo_plan.will_resubscribe == expected > 0
    undo_run = undo.start_undo(store, run.id, user=OPERATOR)
    with client_for(sb) as client:
        undo_run = RunApplier(store, undo_run.id, client).apply()
    assert undo_run.state == "done"
    for address in store.export_changes(run.id)["key_value"]:
        assert sb.profile(email=address)["profileData"]["MSG-email"] is bool(before.get(address, True))


NOBODY = ["nobody.one@gmail.com", "nobody.two@yahoo.com", "nobody.three@outlook.com"]  # no sandbox profile


@pytest.mark.parametrize("choice", [UNKNOWN_PRIOR_RESUBSCRIBE, UNKNOWN_PRIOR_LEAVE])
def test_a_csv_list_s_unsubscribes_are_undone_as_chosen(make_sandbox, store, no_sleep, choice: str) -> None:
    """Issue 15, defect 2: a CSV list's addresses CleverTap has no profile for. Their state before cannot
    be read (no API reads an address-level preference), so the dry run says so and the person chooses
    before applying; the choice is recorded; the read-back explains them instead of "not found"; undo
    restores them as chosen, and the run says whether it is fully undone."""
    sb = make_sandbox()
    rows = pull(sb, 12)
    emails = rows["email"].tolist() + NOBODY
    record = csv_list(store, emails, [C.INVALID] * len(emails), name="messy")
    plan = planned(store, record)
    assert plan.method == "subscribe" and plan.needs_prior_choice and plan.unknown_before == len(emails)
    assert any("no CleverTap API reads that" in n for n in plan.notes)
    with pytest.raises(runs.PriorChoiceNeeded):
        runs.start_run(store, plan, connect(store, sb), user=OPERATOR)
    assert views.apply_readiness(plan, "", "Sandbox", None).disabled
    assert not views.apply_readiness(plan, "", "Sandbox", None, choice).disabled
    run = runs.start_run(store, plan, connect(store, sb, name="Other"), user=OPERATOR, unknown_prior=choice)
    assert run.policy["unknown_prior"] == choice and run.policy["unknown_prior_chosen_by"] == OPERATOR.email
    with client_for(sb) as client:
        run = RunApplier(store, run.id, client).apply()
    assert run.state == "done" and run.counts["prior_no_profile"] == len(NOBODY)
    changes = store.export_changes(run.id).set_index("key_value")
    assert set(changes.index[changes["prior_source"] == "no_profile"]) == set(NOBODY)
    assert changes.loc[NOBODY, "prior_msg_email"].isna().all()
    assert (changes["prior_source"] != "no_profile").sum() == len(rows)  # the others were read
    for address in NOBODY:
        assert sb.profile(email=address) is None and sb.address_subscription(address) is False

    # The read-back does not call them "not found" under a green Done: it says why they cannot be read.
    summary = views.read_back_summary(run)
    assert summary is not None and summary.different == 0 and summary.unreadable == len(NOBODY)
    assert summary.confirmed == len(rows) and "have no profile in CleverTap" in summary.line
    assert "not found" not in " ".join(r["found"] for r in run.counts["read_back"]["rows"])

    with client_for(sb) as client:
        preview = undo.preview_undo(store, run.id, client)
    assert preview.choice == choice and not preview.needs_choice and preview.checked_all
    subscribed_before = int(rows["MSG-email"].fillna(True).sum())  # the others were unsubscribed already
    resubscribed = subscribed_before + (len(NOBODY) if choice == UNKNOWN_PRIOR_RESUBSCRIBE else 0)
    assert 0 < subscribed_before and preview.will_resubscribe == resubscribed
    undo_run = undo.start_undo(store, run.id, user=OTHER_OPERATOR)
    with client_for(sb) as client:
        undo_run = RunApplier(store, undo_run.id, client).apply()
    assert undo_run.state == "done" and undo_run.processed == resubscribed
    for address, before in zip(rows["email"], rows["MSG-email"].fillna(True)):
        assert sb.profile(email=address)["profileData"]["MSG-email"] is bool(before)  # exactly as before
    for address in NOBODY:
        assert sb.address_subscription(address) is (choice == UNKNOWN_PRIOR_RESUBSCRIBE)
    status = views.undo_status(store, store.export_run(run.id))
    assert status is not None
    assert (status.word, status.left_unsubscribed) == (
        ("undone", 0) if choice == UNKNOWN_PRIOR_RESUBSCRIBE else ("partly undone", len(NOBODY)))


def test_a_run_without_a_recorded_choice_asks_for_it_at_undo(make_sandbox, store, no_sleep) -> None:
    """A run applied before the choice was asked (its policy has none): the undo asks, and records it."""
    sb = make_sandbox()
    record = csv_list(store, NOBODY, [C.INVALID] * len(NOBODY), name="old run")
    run = run_plan(store, sb, planned(store, record))
    with store._tx() as con:  # as a run of the earlier version recorded it: no choice in its policy
        policy = {k: v for k, v in run.policy.items() if not k.startswith("unknown_prior")}
        con.execute("UPDATE export_runs SET policy_json = ? WHERE id = ?", (json.dumps(policy), run.id))
    with client_for(sb) as client:
        preview = undo.preview_undo(store, run.id, client)
    assert preview.needs_choice and preview.counts["no_profile"] == len(NOBODY)
    assert (preview.resubscribes(None), preview.resubscribes(UNKNOWN_PRIOR_RESUBSCRIBE)) == (0, len(NOBODY))
    assert "3 addresses CleverTap had no profile for" in views.undo_choice_question(preview)
    with pytest.raises(runs.ExportError, match="choose whether undo"):
        undo.start_undo(store, run.id, user=OTHER_OPERATOR)
    undo_run = undo.start_undo(store, run.id, user=OTHER_OPERATOR, unknown_prior=UNKNOWN_PRIOR_RESUBSCRIBE)
    assert undo_run.policy["unknown_prior"] == UNKNOWN_PRIOR_RESUBSCRIBE
    assert undo_run.policy["unknown_prior_chosen_by"] == OTHER_OPERATOR.email
    with client_for(sb) as client:
        RunApplier(store, undo_run.id, client).apply()
    assert all(sb.address_subscription(a) is True for a in NOBODY)


def test_failed_batch_fails_the_run_and_resume_sends_the_rest(make_sandbox, store, no_sleep) -> None:
    sb = make_sandbox()
    record = make_verified_list(store, pull(sb, 100), every(1, C.INVALID))
    plan = planned(store, record)
    run = runs.start_run(store, plan, connect(store, sb), user=OPERATOR, batch_size=25)
    with CleverTapClient(sb.account_id, "wrong-passcode", sb.region, base_url=sb.clevertap_base_template) as bad:
        run = RunApplier(store, run.id, bad, concurrency=1).apply()
    assert run.state == "failed" and "passcode" in run.error
    assert "wrong-passcode" not in run.error
    assert store.audit_log(run_id=run.id)[0].outcome == "error"
    runs.resume_run(store, run.id, user=OPERATOR)
    with client_for(sb) as client:
        run = RunApplier(store, run.id, client).apply()
    assert run.state == "done" and store.export_outcome_counts(run.id) == {"ok": len(plan.read_changes())}


def test_stop_from_a_page_leaves_a_resumable_run(make_sandbox, store) -> None:
    sb = make_sandbox()
    record = make_verified_list(store, pull(sb, 100), every(1, C.INVALID))
    run = runs.start_run(store, planned(store, record), connect(store, sb), user=OPERATOR, batch_size=10)
    runs.stop_run(store, run.id, user=OPERATOR)
    with client_for(sb) as client:
        assert RunApplier(store, run.id, client).apply().state == "cancelled"
    assert sb.stats()["requests"].get("clevertap.upload", 0) <= 15
    runs.resume_run(store, run.id, user=OPERATOR)
    with client_for(sb) as client:
        assert RunApplier(store, run.id, client).apply().state == "done"


def test_a_big_plan_is_recorded_by_the_worker_then_applied(make_sandbox, store, monkeypatch) -> None:
    monkeypatch.setattr(runs, "RECORD_HERE_MAX", 10)  # as a plan of millions of changes
    sb = make_sandbox()
    record = make_verified_list(store, pull(sb, 60), every(2, C.INVALID))
    plan = planned(store, record)
    project = connect(store, sb)
    run = runs.start_run(store, plan, project, user=OPERATOR, batch_size=7)
    assert run.state == "planned" and run.planned_records == 0  # Apply returned at once: nothing recorded yet
    n = plan.summary.changes
    assert n > 20 and f"Recording the plan ({n} records)" in views.progress_text(views.run_status(store, run.id))
    with pytest.raises(DuplicateRun):  # already counts as the list's active run to this project
        runs.start_run(store, planned(store, record), project, user=OPERATOR)
    assert store.add_export_changes(run.id, [], batch_size=7) == 0  # nothing half-recorded to find

    worker = ExportWorker(store, lambda _r: client_for(sb), mode="sandbox", owner="tester")
    assert worker.run_once() is True  # records
    recorded = store.get_export_run(run.id)
    assert (recorded.state, recorded.planned_records, recorded.batches_total) == ("running", n, -(-n // 7))
    assert store.add_export_changes(run.id, plan.change_batches(), batch_size=7) == n  # recorded once only
    assert worker.run_once() is True  # applies
    done = store.get_export_run(run.id)
    assert done.state == "done" and store.export_outcome_counts(run.id) == {"ok": n}
    assert_state_matches_plan(sb, plan)


def test_a_big_plan_whose_files_are_gone_fails_without_sending(make_sandbox, store, monkeypatch) -> None:
    monkeypatch.setattr(runs, "RECORD_HERE_MAX", 5)
    sb = make_sandbox()
    record = make_verified_list(store, pull(sb, 20), every(2, C.INVALID))
    plan = planned(store, record)
    run = runs.start_run(store, plan, connect(store, sb), user=OPERATOR)
    for path in plan.changes_files:
        path.unlink()
    ExportWorker(store, lambda _r: client_for(sb), mode="sandbox", owner="tester").run_once()
    failed = store.get_export_run(run.id)
    assert failed.state == "failed" and "Make the dry run again" in (failed.error or "")
    assert sb.stats()["requests"].get("clevertap.upload") is None
