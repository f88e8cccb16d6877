"""lib/verification/worker.py against the sandbox over real HTTP: lifecycle, the three-lists limit,
resume after a crash without a second upload, errors, cache reuse, cancel."""
from __future__ import annotations

import time
from pathlib import Path
from collections.abc import Callable, Iterator

import pandas as pd
import pytest

import itertools
import threading

from lib import columns as C
from lib import http
from lib.clearout import ClearoutClient
from lib.runtime import MissingSecretError
from lib.store import Store, VerificationJob
from lib.verification import plan as V
from lib.verification import views
from lib.verification.balance import current_balance, refresh_balance
from lib.verification.start import attach_list_id, confirm_upload_again, start_verification
from lib.verification.worker import VerificationWorker
from lib.worker.loop import LoopThread
from tests.verification.support import make_list, start, verdicts
from tests.access_support import OPERATOR

# Clearout's documented test addresses: deterministic verdicts, and free (the sandbox charges none).
TEST_ADDRESSES = ["valid", "invalid", "catch_all", "unknown", "disposable", "role", "free", "gibberish",
                  "mailbox_not_found", "suggested_email_address"]


def people(prefix: str, n: int) -> list[str]:
    """Ordinary (billable) addresses at a sandbox-verifiable domain."""
    return [f"{prefix}.person{i}@gmail.com" for i in range(n)]


class Crash(BaseException):
    """Stands in for the process dying: no `except Exception` in the worker catches it."""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "data")
    yield store
    store.close()


def client_for(sb, token: str | None = None) -> Callable[[], ClearoutClient]:
    return lambda: ClearoutClient(token or sb.clearout_token, base_url=sb.clearout_base, max_retries=2)


_owners = itertools.count(1)


def make_worker(store: Store, factory: Callable[[], ClearoutClient], **kwargs) -> VerificationWorker:
    kwargs.setdefault("poll_seconds", 0.0)
    kwargs.setdefault("owner", f"test-worker-{next(_owners)}")  # not a live process: only expiry frees its leases
    return VerificationWorker(store, factory, mode="sandbox", **kwargs)


def drive(worker: VerificationWorker, sb, done: Callable[[], bool], *, seconds: float = 15.0,
          on_round: Callable[[], None] | None = None) -> int:
    """Run rounds until `done()`, moving the sandbox clock so bulk lists finish without waiting."""
    deadline, rounds = time.monotonic() + seconds, 0
    while not done():
        assert time.monotonic() < deadline, "jobs did not finish in time"
        worker.run_once()
        rounds += 1
        if on_round:
            on_round()
        sb.clock.advance(0.2)
        time.sleep(0.01)  # lets the sandbox's result-writer threads run
    return rounds


def job_state(store: Store, job_id: int) -> str:
    return store.get_job(job_id).state


def test_full_lifecycle_fills_cache_and_writes_verdicts(make_sandbox, store: Store) -> None:
    sb = make_sandbox(bulk_seconds=0.5)
    tests = [f"{x}@example.com" for x in TEST_ADDRESSES]
    emails = tests + people("a", 20) + ["A.Person0@Gmail.com ", "broken@", "no-at-sign", None]
    record = make_list(store, emails)
    store.upsert_cache(verdicts(["a.person1@gmail.com", "a.person2@gmail.com"]))
    job = start(store, record.id)
    assert (job.unique_emails, job.cached, job.syntax_invalid, job.to_verify) == (32, 2, 2, 28)
    worker = make_worker(store, client_for(sb))

    seen: list[str] = []
    drive(worker, sb, lambda: store.get_job(job.id).is_final,
          on_round=lambda: seen.append(job_state(store, job.id)))

    final = store.get_job(job.id)
    assert final.state == "done", final.error
    assert "verifying" in seen and seen[-1] == "done"
    stats = sb.stats()
    assert stats["bulk_uploads_accepted"] == 1
    assert final.credits_spent == stats["credits_charged"] == 18  # 18 billable people; test addresses free
    assert final.clearout_list_id and final.percent == 100
    result = pd.read_parquet(store.job_verdicts_path(job.id)).set_index("email")
    assert len(result) == 32 and result.index.is_unique
    assert result[C.VERDICT_SOURCE].value_counts().to_dict() == {
        C.SOURCE_NEW: 28, C.SOURCE_CACHED: 2, C.SOURCE_SYNTAX: 2}
    assert result.loc["catch_all@example.com", C.STATUS] == C.CATCH_ALL
    assert result.loc["disposable@example.com", C.DISPOSABLE] == C.YES
    assert result.loc["broken@", C.REASON] == "Syntax error"
    # The result file's 15 columns reached the cache, with the job and a verified_on stamp.
    cached = store.cached_verdicts(tests).set_index("email")
    assert len(cached) == len(tests)
    valid = cached.loc["valid@example.com"]
    assert (valid[C.STATUS], valid[C.SAFE_TO_SEND], valid[C.DOMAIN], valid[C.ACCOUNT]) == \
        (C.VALID, C.YES, "example.com", "valid")
    assert valid[C.MX_RECORD] and valid[C.SMTP_PROVIDER] and pd.notna(valid[C.VERIFIED_AT])
    assert pd.notna(valid[C.TIME_TAKEN]) and valid["verified_on"]
    assert cached.loc["suggested_email_address@example.com", C.SUGGESTED] == "valid@example.com"
    assert cached[C.STATUS].notna().all()


def test_five_lists_verify_three_at_a_time_and_all_finish(make_sandbox, store: Store) -> None:
    sb = make_sandbox(bulk_seconds=0.5)
    started = [start(store, make_list(store, people(f"l{i}", 5), name=f"list {i}").id) for i in range(5)]
    worker = make_worker(store, client_for(sb))
    most_active = []

    def count_active() -> None:
        most_active.append(len(store.list_jobs(states=VerificationJob.ACTIVE_STATES)))

    drive(worker, sb, lambda: all(store.get_job(j.id).is_final for j in started), on_round=count_active)

    assert [store.get_job(j.id).state for j in started] == ["done"] * 5
    assert max(most_active) == 3
    assert sb.stats()["max_running_bulk_lists"] <= 3
    assert sb.stats()["bulk_uploads_accepted"] == 5


@pytest.mark.parametrize("clean_stop", [True, False])
def test_a_new_worker_resumes_a_verifying_job_without_uploading_again(make_sandbox, store: Store,
                                                                      clean_stop: bool) -> None:
    sb = make_sandbox(bulk_seconds=5)
    job = start(store, make_list(store, people("r", 8)).id)
    first = make_worker(store, client_for(sb))
    first.run_once()
    assert job_state(store, job.id) == "verifying"
    if clean_stop:
        first.release()
    else:  # the process died: its lease stays until it expires
        second_try = make_worker(store, client_for(sb))
        second_try.run_once()
        assert store.get_job(job.id).lease_owner == first.owner  # not taken over while leased
        store.update_job(job.id, lease_until=0.0)  # time passes beyond the lease

    second = make_worker(store, client_for(sb))  # a new instance with a new client
    sb.clock.advance(10)
    drive(second, sb, lambda: store.get_job(job.id).is_final)

    assert store.get_job(job.id).state == "done"
    assert sb.stats()["bulk_uploads_accepted"] == 1


class CrashingClient(ClearoutClient):
    """A client whose process 'dies' around bulk_upload: after it was accepted, or before it was sent."""

    def __init__(self, *args, crash_after_upload: bool, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.crash_after_upload = crash_after_upload

    def bulk_upload(self, *args, **kwargs) -> str:
        if self.crash_after_upload:
            super().bulk_upload(*args, **kwargs)
        raise Crash()


def crash_mid_upload(sb, store: Store, *, after_sending: bool) -> VerificationJob:
    """A job whose worker died between "upload sent" and "list id stored" (or just before sending)."""
    job = start(store, make_list(store, people("c", 6)).id)
    dying = make_worker(store, lambda: CrashingClient(sb.clearout_token, base_url=sb.clearout_base,
                                                      crash_after_upload=after_sending))
    with pytest.raises(Crash):
        dying.run_once()
    crashed = store.job(job.id)
    upload = store.job_dir(job.id) / "upload.csv"
    assert (crashed.state, crashed.clearout_list_id, crashed.upload_bytes) == ("uploading", None, upload.stat().st_size)
    assert crashed.upload_started_at  # recorded before the request left
    store.update_job(job.id, lease_until=0.0)  # the dead worker's lease, expired
    return crashed


def clearout_list_named(sb, name: str) -> str:
    """The id of the list Clearout holds under `name`, as a person reads it off app.clearout.io."""
    return next(item.list_id for item in sb.bulk._lists.values() if item.filename == name)


def test_after_a_crash_mid_upload_nothing_is_uploaded_again_without_a_decision(make_sandbox, store: Store) -> None:
    sb = make_sandbox(bulk_seconds=0.5)
    crashed = crash_mid_upload(sb, store, after_sending=True)
    worker = make_worker(store, client_for(sb))
    for _ in range(5):
        worker.run_once()
        sb.clock.advance(60)

    waiting = store.job(crashed.id)
    assert (waiting.state, waiting.attention) == ("uploading", "upload_uncertain")
    assert sb.stats()["bulk_uploads_accepted"] == 1  # the lost one only
    view = views.describe(waiting, "Newsletter")
    assert view.needs_decision and view.label == "Needs your decision"
    assert waiting.upload_name in (view.decision or "") and "paste its list id" in (view.decision or "")
    assert store.reserved_credits("sandbox") == waiting.to_verify  # still held: it may be charged


def test_attaching_the_list_clearout_holds_finishes_with_one_charge(make_sandbox, store: Store) -> None:
    sb = make_sandbox(bulk_seconds=0.5)
    crashed = crash_mid_upload(sb, store, after_sending=True)
    worker = make_worker(store, client_for(sb))
    worker.run_once()
    with pytest.raises(V.VerificationError, match="list id"):
        attach_list_id(store, crashed.id, "not an id!", user=OPERATOR)
    attach_list_id(store, crashed.id, "0123456789abcdef01234567",
                   user=OPERATOR)  # a wrong one: Clearout does not know it
    worker.run_once()
    wrong = store.job(crashed.id)
    assert wrong.attention and wrong.attach_list_id is None and "does not know list" in (wrong.error or "")

    attach_list_id(store, crashed.id, clearout_list_named(sb, crashed.upload_name or ""), user=OPERATOR)
    drive(worker, sb, lambda: store.job(crashed.id).is_final)

    done = store.job(crashed.id)
    assert done.state == "done" and done.attention is None
    stats = sb.stats()
    assert stats["bulk_uploads_accepted"] == 1 and stats["credits_charged"] == done.credits_spent > 0


def test_uploading_again_needs_the_confirmation_that_names_the_credits(make_sandbox, store: Store) -> None:
    sb = make_sandbox(bulk_seconds=0.5)
    crashed = crash_mid_upload(sb, store, after_sending=False)  # it never left: nothing at Clearout
    worker = make_worker(store, client_for(sb))
    worker.run_once()
    assert store.job(crashed.id).attention == "upload_uncertain"
    with pytest.raises(V.VerificationError, match="6"):
        confirm_upload_again(store, crashed.id, credits_at_risk=5, user=OPERATOR)
    confirm_upload_again(store, crashed.id, credits_at_risk=6, user=OPERATOR)
    drive(worker, sb, lambda: store.job(crashed.id).is_final)

    done = store.job(crashed.id)
    assert done.state == "done" and done.upload_attempts == 2
    assert sb.stats()["bulk_uploads_accepted"] == 1


def test_insufficient_credits_starts_nothing_at_clearout(make_sandbox, store: Store) -> None:
    sb = make_sandbox(bulk_seconds=0.5, credits=10)
    record = make_list(store, people("p", 15))
    with ClearoutClient(sb.clearout_token, base_url=sb.clearout_base) as client:
        refresh_balance(store, "sandbox", client)
    balance = current_balance(store, "sandbox", has_token=True)
    price = V.plan_verification(store, record.id, cache_days=30)

    with pytest.raises(V.InsufficientCreditsError) as caught:
        start_verification(store, price, available_credits=balance.available, mode="sandbox", user=OPERATOR)

    assert caught.value.available == 10 and caught.value.shortfall == 5
    assert store.list_jobs() == []
    assert sb.stats()["bulk_uploads_accepted"] == 0


def test_the_worker_reads_the_balance_when_a_page_asks(make_sandbox, store: Store) -> None:
    sb = make_sandbox(bulk_seconds=0.5, credits=100)
    assert current_balance(store, "sandbox", has_token=True).available is None  # asks for it
    with ClearoutClient(sb.clearout_token, base_url=sb.clearout_base) as client:
        refresh_balance(store, "sandbox", client)
    assert current_balance(store, "sandbox", has_token=True).available == 100
    assert "Connect" in (current_balance(store, "sandbox", has_token=False).message or "")


def test_without_a_token_jobs_wait_and_say_what_to_enter(make_sandbox, store: Store) -> None:
    job = start(store, make_list(store, people("w", 3)).id)

    def no_token() -> ClearoutClient:
        raise MissingSecretError("No Clearout API token yet")

    worker = make_worker(store, no_token)
    assert worker.run_once() is True
    assert job_state(store, job.id) == "queued"
    assert "enter your Clearout token on Connect" in (worker.waiting_reason or "")
    assert "Connect" in (views.waiting_reason(store, "sandbox", has_token=False) or "")
    assert views.waiting_reason(store, "sandbox", has_token=True) is None
    price = V.plan_verification(store, make_list(store, people("w2", 2)).id, cache_days=30)
    with pytest.raises(V.VerificationError, match="not known yet"):
        start_verification(store, price, available_credits=None, mode="sandbox", user=OPERATOR)


def test_an_invalid_token_fails_the_job_with_the_clients_message(make_sandbox, store: Store) -> None:
    sb = make_sandbox(bulk_seconds=0.5)
    job = start(store, make_list(store, people("t", 3)).id)
    make_worker(store, client_for(sb, token="0" * 32 + ":" + "f" * 64)).run_once()
    failed = store.get_job(job.id)
    assert failed.state == "failed" and "rejected the API token" in failed.error
    assert sb.stats()["bulk_uploads_accepted"] == 0


def test_a_vanished_clearout_list_fails_clearly(make_sandbox, store: Store) -> None:
    sb = make_sandbox(bulk_seconds=0.5)
    job = start(store, make_list(store, people("v", 3)).id)
    store.update_job(job.id, state="verifying", clearout_list_id="0123456789abcdef01234567", upload_attempts=1)
    make_worker(store, client_for(sb)).run_once()
    failed = store.get_job(job.id)
    assert failed.state == "failed"
    assert "no longer has list 0123456789abcdef01234567" in failed.error


def test_a_small_rate_limit_still_completes(make_sandbox, store: Store, monkeypatch) -> None:
    sb = make_sandbox(bulk_seconds=0.5, rpm=3)
    monkeypatch.setattr(http, "sleep", lambda seconds: sb.clock.advance(seconds))  # wait in sandbox time
    job = start(store, make_list(store, people("rl", 5)).id)
    worker = make_worker(store, lambda: ClearoutClient(sb.clearout_token, base_url=sb.clearout_base,
                                                       max_retries=5))
    drive(worker, sb, lambda: store.get_job(job.id).is_final)
    assert store.get_job(job.id).state == "done", store.get_job(job.id).error
    assert sb.stats()["rate_limited"] > 0


def test_cache_reuse_fresh_stale_and_unknown(make_sandbox, store: Store) -> None:
    sb = make_sandbox(bulk_seconds=0.5)
    emails = ["valid@example.com", "unknown@example.com", *people("k", 4)]
    record = make_list(store, emails)
    worker = make_worker(store, client_for(sb))
    first = start(store, record.id)
    drive(worker, sb, lambda: store.get_job(first.id).is_final)
    assert store.get_job(first.id).state == "done"

    # Fresh verdicts are reused; Unknown is bought again however fresh.
    again = start(store, record.id)
    assert (again.cached, again.to_verify) == (5, 1)
    assert (store.job_dir(again.id) / "upload.csv").read_text().split() == ["Email", "unknown@example.com"]
    store.cancel_job(again.id)

    # Stale verdicts are bought again.
    store.upsert_cache(verdicts(people("k", 4)), verified_on="2000-01-01T00:00:00+00:00")
    stale = start(store, record.id)
    assert (stale.cached, stale.to_verify) == (1, 5)


def test_a_list_with_nothing_to_buy_makes_no_clearout_call(make_sandbox, store: Store, tmp_path: Path) -> None:
    sb = make_sandbox(bulk_seconds=0.5)
    record = make_list(store, ["a@gmail.com", "not an address"])
    store.upsert_cache(verdicts(["a@gmail.com"]))
    before = sum(sb.stats()["requests"].values())

    job = start(store, record.id, credits=None)  # nothing to buy: the balance is not even needed

    assert job.state == "done" and job.credits_spent == 0
    assert sum(sb.stats()["requests"].values()) == before
    assert len(pd.read_parquet(store.job_verdicts_path(job.id))) == 2


def test_cancel_a_queued_job_is_immediate(store: Store) -> None:
    job = start(store, make_list(store, people("x", 3)).id)
    assert views.cancel(store, job.id, user=OPERATOR).state == "cancelled"
    assert store.claim_jobs("someone", lease_seconds=10, max_active=3) == []


def test_cancel_a_running_job_tells_clearout_and_keeps_what_was_paid_for(make_sandbox, store: Store) -> None:
    sb = make_sandbox(bulk_seconds=30)
    job = start(store, make_list(store, people("y", 40)).id)
    worker = make_worker(store, client_for(sb))
    worker.run_once()
    worker.run_once()
    assert job_state(store, job.id) == "verifying"
    sb.clock.advance(15)  # half way: about half the rows are verified (and charged)

    assert views.cancel(store, job.id, user=OPERATOR).cancel_requested == 1
    assert "cancelling" in views.describe(store.get_job(job.id), "y").label
    drive(worker, sb, lambda: store.get_job(job.id).is_final)

    final = store.get_job(job.id)
    assert final.state == "cancelled"
    stats = sb.stats()
    assert stats["requests"].get("clearout.cancel") == 1 and stats["running_bulk_lists"] == 0
    assert 0 < final.credits_spent == stats["credits_charged"] < 40
    assert f"{final.credits_spent} credits" in final.error
    decided = store.fresh_cached_emails(people("y", 40), fresh_since="2000-01-01T00:00:00+00:00")
    assert len(decided) == final.credits_spent  # paid verdicts kept; "Request cancelled" ones are not reusable
    assert not store.job_verdicts_path(job.id).exists()


def test_worker_thread_runs_jobs_and_stops_cleanly(make_sandbox, store: Store) -> None:
    sb = make_sandbox(bulk_seconds=0.2)
    job = start(store, make_list(store, people("th", 3)).id)
    stop = threading.Event()
    worker = make_worker(store, client_for(sb), stop=stop)
    thread = LoopThread(worker, stop, busy_pause=0.05, idle_pause=0.05).start()
    deadline = time.monotonic() + 15
    while not store.get_job(job.id).is_final and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    assert thread.join(10)
    assert store.get_job(job.id).state == "done"


def test_describe_says_what_a_job_costs_and_saves(store: Store) -> None:
    job = start(store, make_list(store, people("z", 4) + ["bad"]).id)
    view = views.describe(job, "Newsletter")
    assert view.label == "Queued" and view.cancellable
    assert "4 addresses to verify" in view.detail and "1 credit saved" in view.detail
    done = store.update_job(job.id, state="done", credits_spent=3)
    assert views.describe(done, "Newsletter").detail.startswith("3 credits spent")
    assert not views.describe(done, "Newsletter").cancellable


def test_a_worker_restart_resumes_polling_without_uploading_again(tmp_path: Path) -> None:
    from lib.worker.process import WorkerProcess
    from tests.runtime_support import make_runtime

    def wait_for(store: Store, job_id: int, states: tuple[str, ...]) -> VerificationJob:
        deadline = time.monotonic() + 20
        while (job := store.job(job_id)).state not in states:
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        return job

    # Sandbox mode: the sandbox keeps its state in DATA_DIR, so it survives the restart too.
    first = WorkerProcess(make_runtime(tmp_path, SANDBOX_BULK_SECONDS="0.5")).start()
    job = start(first.runtime.store, make_list(first.runtime.store, people("restart", 5)).id)
    list_id = wait_for(first.runtime.store, job.id, ("verifying", "downloading", "done")).clearout_list_id
    first.shutdown()

    second = WorkerProcess(make_runtime(tmp_path, SANDBOX_BULK_SECONDS="0.5")).start()
    try:
        done = wait_for(second.runtime.store, job.id, ("done", "failed", "cancelled"))
    finally:
        second.shutdown()
    assert done.state == "done", done.error
    assert (done.clearout_list_id, done.upload_attempts) == (list_id, 1)
