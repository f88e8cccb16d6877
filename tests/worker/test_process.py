"""The worker process (`python -m lib.worker`), killed with SIGKILL mid-export and mid-verification: a new
worker, with no Streamlit and no browser, takes the dead one's leases over at once and finishes the work
with the remote state exactly as planned and nothing paid twice."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from collections.abc import Callable, Iterator

import pytest

from lib import columns as C
from lib.export.plan import ExportOptions
from lib.export.planfile import plan_export
from lib.export.runs import start_run
from lib.store import Store
from tests.e2e_support import app_environment
from tests.export.support import assert_state_matches_plan, connect, make_verified_list, pull
from tests.verification.support import make_list, start
from tests.access_support import OPERATOR

ROOT = Path(__file__).resolve().parent.parent.parent
RESUME_WITHIN_S = 5.0
FINISH_WITHIN_S = 30.0


class WorkerProcess:
    """`python -m lib.worker` on a data directory, pointed at a test's sandbox."""

    def __init__(self, data_dir: Path, sandbox, log: Path) -> None:
        environ = app_environment(data_dir, APP_MODE="sandbox", SANDBOX_URL=sandbox.base_url,
                                  SANDBOX_SEED=str(sandbox.config.seed))
        self.log = log.open("ab")
        self.started = time.monotonic()
        self.process = subprocess.Popen([sys.executable, "-m", "lib.worker"], cwd=ROOT, env=environ,
                                        stdout=self.log, stderr=subprocess.STDOUT)

    def kill(self) -> None:
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.log.close()


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    started: list[WorkerProcess] = []

    def launch(data_dir: Path, sandbox) -> WorkerProcess:
        worker = WorkerProcess(data_dir, sandbox, tmp_path / "worker.log")
        started.append(worker)
        return worker

    yield launch
    for worker in started:
        worker.stop()


def wait_until(condition: Callable[[], bool], timeout: float, what: str, log: Path | None = None) -> float:
    """Seconds until `condition()` held (polling the store: the worker is another process)."""
    begin = time.monotonic()
    while not condition():
        if time.monotonic() - begin > timeout:
            tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
            raise AssertionError(f"{what} did not happen within {timeout:.0f} s\n{tail}")
        time.sleep(0.02)
    return time.monotonic() - begin


def test_sigkill_mid_export_resumes_at_once_and_reaches_exactly_the_plan(make_sandbox, workers, tmp_path) -> None:
    sb = make_sandbox(latency_ms=150)
    data_dir = tmp_path / "data"
    store = Store(data_dir)
    record = make_verified_list(store, pull(sb, 600), lambda i: C.INVALID if i % 2 else C.VALID)
    plan = plan_export(store, record.id, ExportOptions(unsubscribe=True, append=True), guardrail_pct=100)
    run = start_run(store, plan, connect(store, sb), user=OPERATOR, batch_size=4)
    assert run.batches_total == 150

    first = workers(data_dir, sb)
    wait_until(lambda: store.export_progress(run.id)["batches_done"] >= 20, FINISH_WITHIN_S, "sending",
               tmp_path / "worker.log")
    first.kill()
    done_at_kill = store.export_progress(run.id)["batches_done"]
    uploads_at_kill = sb.stats()["requests"]["clevertap.upload"]
    assert done_at_kill < run.batches_total and store.export_run(run.id).state == "running"

    second = workers(data_dir, sb)
    resumed = wait_until(lambda: store.export_progress(run.id)["batches_done"] > done_at_kill, RESUME_WITHIN_S,
                         "resuming", tmp_path / "worker.log")
    wait_until(lambda: store.export_run(run.id).state == "done", FINISH_WITHIN_S, "finishing", tmp_path / "worker.log")
    finished = time.monotonic() - second.started

    final = store.export_run(run.id)
    assert final.processed == len(plan.read_changes()) and final.unprocessed == 0
    assert store.export_outcome_counts(run.id) == {"ok": len(plan.read_changes())}
    assert_state_matches_plan(sb, plan)
    # Sent again: the batches in flight or answered but not recorded when the first worker died.
    resent = sb.stats()["requests"]["clevertap.upload"] - run.batches_total
    print(f"export: resumed {resumed:.2f} s after the new worker started, finished in {finished:.1f} s; "
          f"{resent} of {run.batches_total} batches sent twice ({uploads_at_kill} sent before the kill)")
    assert 0 <= resent <= 15


def test_sigkill_mid_verification_resumes_polling_without_a_second_upload(make_sandbox, workers, tmp_path) -> None:
    sb = make_sandbox(bulk_seconds=4)
    data_dir = tmp_path / "data"
    store = Store(data_dir)
    job = start(store, make_list(store, [f"kill.person{i}@gmail.com" for i in range(30)]).id)

    first = workers(data_dir, sb)
    wait_until(lambda: store.job(job.id).state == "verifying", FINISH_WITHIN_S, "uploading", tmp_path / "worker.log")
    first.kill()
    killed = store.job(job.id)
    assert killed.lease_owner and str(first.process.pid) in killed.lease_owner  # the lease names the dead process

    workers(data_dir, sb)
    resumed = wait_until(lambda: store.job(job.id).lease_owner not in (killed.lease_owner, None), RESUME_WITHIN_S,
                         "taking the job over", tmp_path / "worker.log")
    wait_until(lambda: store.job(job.id).is_final, FINISH_WITHIN_S, "finishing", tmp_path / "worker.log")

    done = store.job(job.id)
    assert done.state == "done", done.error
    assert (done.clearout_list_id, done.upload_attempts) == (killed.clearout_list_id, 1)
    stats = sb.stats()
    assert stats["bulk_uploads_accepted"] == 1 and stats["credits_charged"] == done.credits_spent > 0
    print(f"verification: taken over {resumed:.2f} s after the new worker started")


def test_sigkill_between_upload_sent_and_list_id_stored_never_pays_twice(make_sandbox, workers, tmp_path) -> None:
    from lib.verification.start import attach_list_id

    sb = make_sandbox(bulk_seconds=1, latency_ms=2500)  # the upload's answer leaves 2.5 s after it arrived
    data_dir = tmp_path / "data"
    store = Store(data_dir)
    job = start(store, make_list(store, [f"paid.person{i}@gmail.com" for i in range(30)]).id)

    first = workers(data_dir, sb)
    wait_until(lambda: store.job(job.id).upload_started_at is not None, FINISH_WITHIN_S, "sending the upload",
               tmp_path / "worker.log")
    wait_until(lambda: sb.stats()["bulk_uploads_accepted"] == 1, 5, "Clearout taking the file")
    first.kill()  # Clearout holds the list; its id never reached the store
    assert store.job(job.id).clearout_list_id is None

    workers(data_dir, sb)
    wait_until(lambda: store.job(job.id).attention == "upload_uncertain", RESUME_WITHIN_S + 5, "asking a person",
               tmp_path / "worker.log")
    time.sleep(3)  # a worker that would upload again has had every chance to
    assert sb.stats()["bulk_uploads_accepted"] == 1 and store.job(job.id).state == "uploading"

    [held] = [item.list_id for item in sb.bulk._lists.values()]  # what app.clearout.io shows
    attach_list_id(store, job.id, held, user=OPERATOR)
    wait_until(lambda: store.job(job.id).is_final, FINISH_WITHIN_S, "finishing", tmp_path / "worker.log")
    done = store.job(job.id)
    assert done.state == "done" and done.clearout_list_id == held
    stats = sb.stats()
    assert stats["bulk_uploads_accepted"] == 1 and stats["credits_charged"] == done.credits_spent > 0
