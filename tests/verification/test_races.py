"""Two people start verifying the same list at the same instant, from two threads and from two
processes: one job, one upload, one charge; the other person is told who started it and when."""
from __future__ import annotations

import time

from lib.clearout import ClearoutClient
from lib.store import ActiveJobExists, Store
from lib.verification.plan import plan_verification
from lib.verification.start import prepare_job, start_verification
from lib.verification.worker import VerificationWorker
from tests.race_support import in_processes, in_threads
from tests.verification.support import make_list
from tests.access_support import OPERATOR


def finish(store: Store, sb, job_id: int) -> None:
    client = ClearoutClient(sb.clearout_token, base_url=sb.clearout_base)
    worker = VerificationWorker(store, lambda: client, mode="sandbox", owner="test", poll_seconds=0)
    deadline = time.monotonic() + 20
    while not store.job(job_id).is_final:
        assert time.monotonic() < deadline
        worker.run_once()
        sb.clock.advance(1)
        time.sleep(0.01)
    client.close()


def test_two_threads_starting_one_list_make_one_job_and_one_charge(make_sandbox, tmp_path) -> None:
    sb = make_sandbox(bulk_seconds=0.5)
    store = Store(tmp_path / "data")
    record = make_list(store, [f"race.t{i}@gmail.com" for i in range(40)])
    price = plan_verification(store, record.id, cache_days=30)

    results = in_threads(lambda: start_verification(store, price, available_credits=1_000, mode="sandbox",
                                                    user=OPERATOR))

    jobs = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, ActiveJobExists)]
    assert len(jobs) == 1 and len(refused) == 1, results
    assert "already being verified since" in refused[0].message and "started by ana" in refused[0].message
    assert refused[0].job is not None and refused[0].job.id == jobs[0].id
    prepare_job(store, jobs[0], cache_days=30)
    finish(store, sb, jobs[0].id)
    stats = sb.stats()
    assert stats["bulk_uploads_accepted"] == 1
    assert stats["credits_charged"] == store.job(jobs[0].id).credits_spent <= 40


def test_two_processes_starting_one_list_make_one_job_and_one_charge(make_sandbox, tmp_path) -> None:
    sb = make_sandbox(bulk_seconds=0.5)
    store = Store(tmp_path / "data")
    record = make_list(store, [f"race.p{i}@gmail.com" for i in range(40)])

    answers = in_processes("verify", str(tmp_path / "data"), str(record.id))

    made = [a["job"] for a in answers if "job" in a]
    refused = [a["refused"] for a in answers if "refused" in a]
    assert len(made) == 1 and len(refused) == 1, answers
    assert "already being verified" in refused[0] and f"started by {OPERATOR.email}" in refused[0]
    assert [j.id for j in store.list_jobs()] == made
    prepare_job(store, store.job(made[0]), cache_days=30)
    finish(store, sb, made[0])
    assert sb.stats()["bulk_uploads_accepted"] == 1
