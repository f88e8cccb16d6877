"""AppTest of the Home page: the five steps with the next one, credits, jobs in flight, recent lists."""
from __future__ import annotations

from pathlib import Path
from collections.abc import Iterator

import pytest

from lib.store import Store
from lib.verification.plan import plan_verification
from lib.verification.start import start_verification
from tests.pages.support import (
    app_test,
    balance_read,
    isolate_app,
    open_page,
    page_errors,
    release_app,
    rendered_text,
    wait_for,
)
from tests.verification.support import make_list
from tests.access_support import OPERATOR


@pytest.fixture(autouse=True)
def _release() -> Iterator[None]:
    yield
    release_app()


def request(store: Store, list_id: int, credits: int, mode: str):
    """What Start on Verify records (the worker has not prepared it yet)."""
    return start_verification(store, plan_verification(store, list_id, cache_days=30), available_credits=credits,
                              mode=mode, user=OPERATOR)


def test_a_new_user_sees_the_five_steps_and_where_to_start(monkeypatch, tmp_path: Path) -> None:
    at = open_page(monkeypatch, tmp_path)
    wait_for(balance_read)
    at.run()

    links = [link.proto for link in at.get("page_link")]
    assert [(link.page, link.label) for link in links[:5]] == [
        ("connect", "1. Connect"), ("lists", "2. Lists"), ("verify", "3. Verify"), ("results", "4. Results"),
        ("export", "5. Export")]
    # Sandbox mode holds the Clearout token already: the first thing to do is a list.
    assert any("Next: Lists" in i.value for i in at.info)
    assert {m.label: m.value for m in at.metric}["Clearout credits"] == "250,000"
    captions = " ".join(c.value for c in at.caption)
    assert "Nothing is being verified right now" in captions
    assert "No lists yet" in captions


def test_jobs_in_flight_and_recent_lists_at_a_glance(monkeypatch, tmp_path: Path) -> None:
    isolate_app(monkeypatch, tmp_path, APP_MODE="live")  # no token: the job waits where it is
    store = Store(tmp_path / "data")
    waiting = make_list(store, [f"p{i}@gmail.com" for i in range(4)], name="Winter leads", mode="live")
    make_list(store, ["a@gmail.com"], name="Older list", mode="live")
    request(store, waiting.id, 100, "live")

    at = app_test().run()

    assert not at.exception, page_errors(at)
    text = rendered_text(at)
    assert "Winter leads" in text and "Preparing" in text
    assert at.button(key=f"home_cancel_{store.list_jobs()[0].id}")
    assert any("enter your Clearout token on Connect" in w.value for w in at.warning)
    recent = at.dataframe[0].value
    assert list(recent["List"]) == ["Older list", "Winter leads"]
    assert list(recent["Verified"]) == ["Not yet", "Not yet"]
    assert any("Next: Connect" in i.value for i in at.info)


def test_cancel_from_home(monkeypatch, tmp_path: Path) -> None:
    isolate_app(monkeypatch, tmp_path, APP_MODE="live")
    store = Store(tmp_path / "data")
    record = make_list(store, ["a@gmail.com"], name="To cancel", mode="live")
    job = request(store, record.id, 10, "live")
    at = app_test().run()

    at.button(key=f"home_cancel_{job.id}").click().run()

    assert not at.exception, page_errors(at)
    assert store.get_job(job.id).state == "cancelled"
