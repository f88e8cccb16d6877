"""A list above the part size goes to Clearout as parts (here of 7 addresses): each part takes the
usual path through the three slots, a failed part is retried alone, a cancel covers every part, and
the verdicts of all parts merge back into one result, against the sandbox over real HTTP."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from lib import columns as C
from lib.clearout import ClearoutClient, ClearoutRequestError
from lib.store import Store, VerificationJob
from lib.verification import plan as V
from lib.verification import views
from lib.verification.start import retry_failed_parts
from lib.verification.verdicts import parts_of
from lib.verification.worker import PART_FAILED
from lib.access import NotAllowed
from tests.access_support import OPERATOR, VIEWER
from tests.verification.support import make_list, start
from tests.verification.test_worker import client_for, drive, make_worker, people

PART = 7


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "data")
    yield store
    store.close()


def test_a_big_list_goes_as_parts_three_at_a_time_and_merges_into_one_result(make_sandbox, store: Store) -> None:
    sb = make_sandbox(bulk_seconds=0.5)
    emails = people("p", 30) + ["P.Person0@Gmail.com", "broken@", None]
    record = make_list(store, emails)
    price = V.plan_verification(store, record.id, cache_days=30)
    assert (price.to_verify, price.parts(PART)) == (30, 5)
    job = start(store, record.id, part_rows=PART)
    assert (job.state, job.parts, job.to_verify) == ("parts", 5, 30)
    parts = parts_of(store, job)
    assert [(p.part_no, p.to_verify, p.state) for p in parts] == [(1, 7, "queued"), (2, 7, "queued"),
                                                                   (3, 7, "queued"), (4, 7, "queued"), (5, 2, "queued")]
    assert store.reserved_credits("sandbox") == 30  # held by the parts, not twice by the whole
    assert [j.id for j in store.list_jobs()] == [job.id]  # parts are not lists of their own
    files = [store.job_dir(job.id) / f"part-{n}.csv" for n in range(1, 6)]
    sent = [line for path in files for line in path.read_text().splitlines()[1:]]
    assert sorted(sent) == sorted(people("p", 30))  # each address in exactly one part

    most_active: list[int] = []

    def count_active() -> None:
        most_active.append(len(store.list_jobs(parts_of=job.id, states=VerificationJob.ACTIVE_STATES)))
    drive(make_worker(store, client_for(sb)), sb, lambda: store.job(job.id).is_final, seconds=30,
          on_round=count_active)

    final = store.job(job.id)
    assert final.state == "done", final.error
    stats = sb.stats()
    assert stats["bulk_uploads_accepted"] == 5 and max(most_active) == 3 and stats["max_running_bulk_lists"] <= 3
    assert final.credits_spent == stats["credits_charged"] > 25  # Unknown verdicts are free
    result = pd.read_parquet(store.job_verdicts_path(final.id)).set_index("email")
    assert len(result) == 31 and result.index.is_unique  # 30 people + the bad syntax, once each
    assert set(result[C.VERDICT_SOURCE]) == {C.SOURCE_NEW, C.SOURCE_SYNTAX}
    assert (result[C.REASON] != "Not in the Clearout result").all()  # every part's verdicts came back
    unknown = int((result[C.STATUS] == C.UNKNOWN).sum())  # "try later": never reused
    assert V.plan_verification(store, record.id, cache_days=30).to_verify == unknown  # the cache holds every part
    view = views.job_view(store, final, record.name)
    assert view.label == "Done" and f"{final.credits_spent} credits spent" in view.detail
    assert [p.label for p in view.parts] == ["Done"] * 5


class FailingDownload:
    """The shared client, except that downloading the result of one upload fails `times` times."""

    def __init__(self, client: ClearoutClient, upload_name_part: str, times: int = 1) -> None:
        self.client, self.name, self.left = client, upload_name_part, times
        self.lists: dict[str, str] = {}

    def __getattr__(self, name: str) -> object:
        return getattr(self.client, name)

    def bulk_upload(self, path: Path, name: str, **kwargs: object) -> str:
        list_id = self.client.bulk_upload(path, name, **kwargs)
        self.lists[list_id] = name
        return list_id

    def download_result(self, list_id: str) -> pd.DataFrame:
        if self.name in self.lists.get(list_id, "") and self.left:
            self.left -= 1
            raise ClearoutRequestError("The result file could not be read", status=400, code=1999)
        return self.client.download_result(list_id)


def test_a_failed_part_is_retried_alone_and_not_bought_twice(make_sandbox, store: Store) -> None:
    sb = make_sandbox(bulk_seconds=0.5)
    record = make_list(store, people("q", 20))
    job = start(store, record.id, part_rows=PART)
    client = FailingDownload(client_for(sb)(), "-part2.csv")
    worker = make_worker(store, lambda: client)

    def settled() -> bool:
        parts = parts_of(store, job)
        return all(p.is_final for p in parts) and store.job(job.id).attention == PART_FAILED
    drive(worker, sb, settled, seconds=30)

    waiting = store.job(job.id)
    assert waiting.state == "parts" and "1 of 3 parts failed (part 2" in (waiting.error or "")
    assert [p.state for p in parts_of(store, job)] == ["done", "failed", "done"]
    view = views.job_view(store, waiting, record.name)
    assert view.retryable_parts == 1 and "part 2" in view.detail and "2 of 3 parts done" in view.detail
    uploads_before = sb.stats()["bulk_uploads_accepted"]

    retried = retry_failed_parts(store, job.id, user=OPERATOR)
    assert [(r.part_no, r.state, r.requested_by) for r in retried] == [(2, "queued", OPERATOR.email)]
    assert retried[0].clearout_list_id  # Clearout holds the part: fetched again, not uploaded again
    with pytest.raises(V.VerificationError, match="No part"):
        retry_failed_parts(store, job.id, user=OPERATOR)  # two presses make one retry
    drive(worker, sb, lambda: store.job(job.id).is_final, seconds=30)

    final = store.job(job.id)
    assert final.state == "done", final.error
    assert sb.stats()["bulk_uploads_accepted"] == uploads_before == 3  # nothing sent again
    assert final.credits_spent == sb.stats()["credits_charged"] > 15  # Unknown verdicts are free
    assert len(pd.read_parquet(store.job_verdicts_path(final.id))) == 20


def test_a_part_refused_before_upload_is_sent_again_on_retry(make_sandbox, store: Store) -> None:
    sb = make_sandbox(bulk_seconds=0.5)
    job = start(store, make_list(store, people("r", 10)).id, part_rows=PART)
    real = client_for(sb)()
    refusals = {"left": 1}

    class Refusing(FailingDownload):
        def bulk_upload(self, path: Path, name: str, **kwargs: object) -> str:
            if name.endswith("-part1.csv") and refusals["left"]:
                refusals["left"] -= 1
                raise ClearoutRequestError("The file could not be read", status=400, code=1005)
            return self.client.bulk_upload(path, name, **kwargs)

    worker = make_worker(store, lambda: Refusing(real, "nothing"))
    drive(worker, sb, lambda: store.job(job.id).attention == PART_FAILED and
          all(p.is_final for p in parts_of(store, job)), seconds=30)
    with pytest.raises(NotAllowed):
        retry_failed_parts(store, job.id, user=VIEWER)
    retry_failed_parts(store, job.id, user=OPERATOR)
    drive(worker, sb, lambda: store.job(job.id).is_final, seconds=30)
    assert store.job(job.id).state == "done"
    assert sb.stats()["bulk_uploads_accepted"] == 2


def test_cancel_covers_every_part(make_sandbox, store: Store) -> None:
    sb = make_sandbox(bulk_seconds=30)
    job = start(store, make_list(store, people("c", 35)).id, part_rows=PART)  # 5 parts: 3 run, 2 wait
    worker = make_worker(store, client_for(sb))
    for _ in range(3):
        worker.run_once()
    states = [p.state for p in parts_of(store, job)]
    assert states.count("verifying") == 3 and states.count("queued") == 2
    sb.clock.advance(10)

    assert views.cancel(store, job.id, user=OPERATOR).cancel_requested == 1
    assert [p.state for p in parts_of(store, job)][3:] == ["cancelled", "cancelled"]  # never sent: ended at once
    drive(worker, sb, lambda: store.job(job.id).is_final, seconds=30)

    final = store.job(job.id)
    assert final.state == "cancelled" and [p.state for p in parts_of(store, job)] == ["cancelled"] * 5
    stats = sb.stats()
    assert stats["requests"].get("clearout.cancel") == 3 and stats["running_bulk_lists"] == 0
    assert stats["bulk_uploads_accepted"] == 3
    assert final.credits_spent == stats["credits_charged"] and "0 of 5 parts" in (final.error or "")


def test_progress_counts_every_part_by_its_size(make_sandbox, store: Store) -> None:
    sb = make_sandbox(bulk_seconds=20)
    job = start(store, make_list(store, people("g", 14)).id, part_rows=PART)  # two parts of 7
    worker = make_worker(store, client_for(sb))
    worker.run_once()
    worker.run_once()
    sb.clock.advance(10)
    worker.run_once()
    halfway = store.job(job.id)
    assert 20 <= halfway.percent <= 80
    view = views.job_view(store, halfway, "g")
    assert view.label.startswith("Verifying in 2 parts") and [p.job.state for p in view.parts] == ["verifying"] * 2
    assert 0 < view.progress < 1 and [p.list_name for p in view.parts] == ["Part 1 of 2", "Part 2 of 2"]


def test_the_verify_page_says_a_big_list_goes_in_parts(store: Store) -> None:
    from lib.verification.balance import Balance

    record = make_list(store, people("s", 20))
    price = V.plan_verification(store, record.id, cache_days=30)
    ready = views.start_readiness(price, Balance(available=100, message=None), 0, list_name="s",
                                  running=None, verified_before=False, part_rows=PART)
    assert ready.tone == "info" and "as 3 files of at most 7" in (ready.message or "") and not ready.disabled
    whole = views.start_readiness(price, Balance(available=100, message=None), 0, list_name="s",
                                  running=None, verified_before=False, part_rows=500_000)
    assert whole.message is None
