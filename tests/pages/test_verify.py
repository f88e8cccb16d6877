"""AppTest of the Verify page: the cost breakdown, the insufficient-credits message, starting a job."""
from __future__ import annotations

from pathlib import Path
from collections.abc import Iterator

import pytest

from lib.store import Store
from tests.pages.support import balance_read, open_page, page_errors, plain, release_app, wait_for
from tests.verification.support import make_list, verdicts
from tests.access_support import OPERATOR


@pytest.fixture(autouse=True)
def _release() -> Iterator[None]:
    yield
    release_app()


def seed(tmp_path: Path, mode: str) -> tuple[Store, int]:
    """A list of 10 people, one duplicate, two syntax failures; two addresses fresh in the cache."""
    store = Store(tmp_path / "data")
    emails = [f"p{i}@gmail.com" for i in range(10)] + ["P1@Gmail.com", "broken@", "two@@x.com"]
    record = make_list(store, emails, name="Spring promo", mode=mode)
    store.upsert_cache(verdicts(["p0@gmail.com", "p1@gmail.com"]))
    return store, record.id


def metrics(at) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def open_verify(monkeypatch, tmp_path: Path, *, balance: bool = True, worker: bool = True, **environ: str):
    at = open_page(monkeypatch, tmp_path, "pages/verify.py", worker=worker, **environ)
    if balance:
        wait_for(balance_read)  # the page asked the worker for the balance
        at.run()
    assert not at.exception, page_errors(at)
    return at


def test_shows_the_cost_breakdown_and_starts_a_queued_job(monkeypatch, tmp_path: Path) -> None:
    store, list_id = seed(tmp_path, "sandbox")
    at = open_verify(monkeypatch, tmp_path)

    shown = metrics(at)
    assert shown["Distinct addresses"] == "12"
    assert shown["From the cache"] == "2" and shown["Syntax errors"] == "2"
    assert shown["To buy"] == "8"
    assert shown["Credits available"] == "250,000"  # the sandbox account's default
    button = at.button(key="verify_start")
    assert not button.disabled and "8 credits" in button.label

    button.click().run()

    assert not at.exception, page_errors(at)
    assert any("Started" in s.value for s in at.success)
    [job] = store.list_jobs(list_id=list_id)
    assert (job.to_verify, job.cached, job.syntax_invalid) == (8, 2, 2)
    assert job.state in ("preparing", "queued", "uploading", "verifying", "downloading", "done")

    # Until it is finished (the app's sandbox takes 20 s a list), the same list cannot be started twice.
    assert not store.get_job(job.id).is_final
    assert at.button(key="verify_start").disabled
    assert any("already being verified since" in i.value for i in at.info)


def test_insufficient_credits_says_how_many_more_and_starts_nothing(monkeypatch, tmp_path: Path,
                                                                   make_sandbox) -> None:
    sb = make_sandbox(credits=5)
    store, list_id = seed(tmp_path, "live")
    at = open_verify(monkeypatch, tmp_path, APP_MODE="live", CLEAROUT_API_TOKEN=sb.clearout_token,
                     CLEAROUT_API_BASE=sb.clearout_base)

    assert metrics(at)["Credits available"] == "5"
    message = plain(" ".join(e.value for e in at.error))
    assert "Buy at least 3 more at clearout.io" in message
    assert at.button(key="verify_start").disabled
    assert store.list_jobs() == []
    assert sb.stats()["bulk_uploads_accepted"] == 0


def test_without_a_token_the_balance_is_unknown_and_nothing_starts(monkeypatch, tmp_path: Path) -> None:
    seed(tmp_path, "live")
    at = open_verify(monkeypatch, tmp_path, balance=False, APP_MODE="live")
    assert metrics(at)["Credits available"] == "—"
    assert any("Connect" in w.value for w in at.warning)
    assert at.button(key="verify_start").disabled


def test_no_list_yet_points_to_the_lists_page(monkeypatch, tmp_path: Path) -> None:
    at = open_verify(monkeypatch, tmp_path)
    assert any("No list is ready to verify yet" in i.value for i in at.info)
    assert not at.button  # nothing to start
    assert "No verification yet" in " ".join(c.value for c in at.caption)


def test_an_upload_without_answer_asks_a_person_and_never_offers_a_paid_default(monkeypatch, tmp_path: Path) -> None:
    from lib.verification.plan import plan_verification
    from lib.verification.start import start_verification

    store, list_id = seed(tmp_path, "live")
    job = start_verification(store, plan_verification(store, list_id, cache_days=30), available_credits=100,
                             mode="live", user=OPERATOR)
    store.update_job(job.id, state="uploading", upload_name="Spring-promo-job1.csv", upload_attempts=1,
                     upload_started_at="2026-11-30T10:42:00+00:00", upload_bytes=2048, attention="upload_uncertain")
    at = open_verify(monkeypatch, tmp_path, balance=False, APP_MODE="live", worker=False)

    shown = [w.value.replace("\\", "") for w in at.warning]  # user text is escaped for Markdown
    assert any("Spring-promo-job1.csv" in w and "paste its list id" in w for w in shown), shown
    assert "Needs your decision" in " ".join(m.value for m in at.markdown)
    attach = at.button(key=f"verify_attach_go_{job.id}")
    again = at.button(key=f"verify_again_{job.id}")
    assert attach.proto.type == "primary" and again.disabled  # paying again is never the default
    assert f"({job.to_verify} credits at risk)" in again.label
    assert at.button(key="verify_start").disabled  # the list is still in flight

    at.text_input(key=f"verify_attach_{job.id}").input("5f8a1c2b3d4e5f6a7b8c9d0e")
    at.button(key=f"verify_attach_go_{job.id}").click().run()
    assert store.job(job.id).attach_list_id == "5f8a1c2b3d4e5f6a7b8c9d0e"

    at.checkbox(key=f"verify_again_ok_{job.id}").check().run()
    assert not at.button(key=f"verify_again_{job.id}").disabled
    at.button(key=f"verify_again_{job.id}").click().run()
    assert store.job(job.id).reupload_confirmed_by
