"""lib/progress.py: long work says what it does, waits for and retries, from the store, and pages show it
without ever waiting themselves. Against the sandbox over real HTTP with a tight rate limit."""
from __future__ import annotations

import threading
import time
from pathlib import Path
from collections.abc import Iterator

import pytest

from lib import activity
from lib.clearout import ClearoutClient
from lib.progress import StoreReporter, activity_line, job_subject, track
from lib.ratelimit import Gates
from lib.store import Activity, Store
from lib.verification import views
from lib.verification.worker import VerificationWorker
from lib.worker.loop import LoopThread
from tests.verification.support import make_list, start


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "data")
    yield store
    store.close()


def test_the_line_a_page_shows() -> None:
    now = 1000.0
    doing = Activity(subject="run:1", step="Batch 1: checking each profile", done=240, total=568,
                     wait_until=now + 11.6, wait_reason="waiting for CleverTap's rate limit", retries=2,
                     last_retry="CleverTap answered HTTP 429 (too many requests): retry 2 of 5", updated_at=now)
    assert activity_line(doing, now=now) == (
        "Batch 1: checking each profile: 240 of 568 · waiting for CleverTap's rate limit: next try in 12 s · "
        "2 retries so far (last: CleverTap answered HTTP 429 (too many requests): retry 2 of 5)")
    over = Activity("run:1", "Sending batches", None, None, now - 1, "waiting for X", 0, None, now)
    assert activity_line(over, now=now) == "Sending batches"  # a wait that is over is not said
    assert activity_line(None) is None


def test_the_reporter_keeps_steps_waits_and_retries_in_the_store(store: Store) -> None:
    with track(store, "task:7", fresh=True):
        activity.step("Reading", 0, 3)
        activity.step("Reading", 1, 3)  # thinned: within STEP_EVERY_S of the last write
        activity.retrying("CleverTap", 1, 5, "HTTP 503 (service unavailable)", 2.0)
        activity.step("Reading", 3, 3)  # the last always
        activity.waiting("CleverTap", 30, "rate limit")
    found = store.activity("task:7")
    assert found is not None and (found.step, found.done, found.total) == ("Reading", 3, 3)
    assert found.retries == 1 and found.last_retry == "CleverTap answered HTTP 503 (service unavailable): retry 1 of 5"
    assert found.wait_reason == "waiting for CleverTap's rate limit" and found.wait_until > time.time() + 25
    activity.step("Outside any tracked work")  # nobody listens: nothing written, nothing raised
    assert store.activity("task:7") == found
    with track(store, "task:7", fresh=True):
        pass
    assert store.activity("task:7") is None


def test_a_rate_limited_verification_says_so_and_the_page_never_waits(make_sandbox, store: Store,
                                                                       tmp_path: Path) -> None:
    """Clearout allows three requests per 8 s window: the worker waits out the window (in its own
    thread, holding the token's budget) and the job row says so with a countdown; meanwhile starting
    another verification (what Verify again does on the page) records the request at once."""
    sb = make_sandbox(rpm=3, rpm_window_s=8, bulk_seconds=30)
    gates = Gates(tmp_path / "gates")

    def client() -> ClearoutClient:
        return ClearoutClient(sb.clearout_token, base_url=sb.clearout_base, gate=gates.clearout(sb.clearout_token))

    first = make_list(store, [f"wait.person{i}@gmail.com" for i in range(5)], name="First")
    second = make_list(store, [f"again.person{i}@gmail.com" for i in range(5)], name="Second")
    job = start(store, first.id)
    stop = threading.Event()
    worker = VerificationWorker(store, client, mode="sandbox", owner="test-progress", stop=stop, poll_seconds=0.2)
    thread = LoopThread(worker, stop, busy_pause=0.05, idle_pause=0.05).start()
    try:
        deadline = time.monotonic() + 30
        while True:
            found = store.activity(job_subject(job.id))
            if found is not None and found.wait_until is not None and found.wait_until > time.time() + 1:
                break
            assert time.monotonic() < deadline, f"the worker never said it waits: {found}"
            time.sleep(0.05)
        assert found.wait_reason == "waiting for Clearout's rate limit"
        [row] = [v for v in views.job_views(store, "sandbox") if v.job.id == job.id]
        assert row.activity is not None and "waiting for Clearout's rate limit: next try in" in row.activity

        started = time.monotonic()
        again = start(store, second.id)  # the page's part: price, record; the worker does the rest
        assert time.monotonic() - started < 1.0 and again.state in ("queued", "preparing")
    finally:
        stop.set()
        thread.join(30)


def test_an_undo_says_how_far_it_is_within_a_batch(make_sandbox, store: Store, monkeypatch) -> None:
    """An undo reads every profile of a batch before writing it: the run's activity counts the reads."""
    from lib import columns as C
    from lib.export import runs, undo
    from lib.export.applier import RunApplier
    from lib.export.plan import ExportOptions
    from lib.export.planfile import plan_export
    from tests.access_support import OPERATOR
    from tests.export.support import client_for, connect, make_verified_list, pull

    heard: list[tuple] = []
    original = StoreReporter.step

    def step(self, text, done=None, total=None) -> None:
        heard.append((self.subject, text, done, total))
        original(self, text, done, total)

    monkeypatch.setattr(StoreReporter, "step", step)
    sb = make_sandbox()
    record = make_verified_list(store, pull(sb, 60), lambda i: C.INVALID if i % 2 == 0 else C.VALID)
    plan = plan_export(store, record.id, ExportOptions(), guardrail_pct=100)
    run = runs.start_run(store, plan, connect(store, sb), user=OPERATOR)
    with client_for(sb) as client:
        RunApplier(store, run.id, client).apply()
        undo_run = undo.start_undo(store, run.id, user=OPERATOR)
        RunApplier(store, undo_run.id, client).apply()
    checking = [(done, total) for subject, text, done, total in heard
                if subject == f"run:{undo_run.id}" and text.startswith("Batch 1: checking each profile")]
    assert checking[0] == (0, plan.summary.to_unsubscribe) and checking[-1] == (plan.summary.to_unsubscribe,) * 2
