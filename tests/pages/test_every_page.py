"""Every page renders without exception, in live mode and in sandbox mode; no secret leaks."""
from __future__ import annotations

from pathlib import Path
from collections.abc import Iterator

import pytest

from tests.pages.support import PAGES, app_test, isolate_app, page_errors, release_app, rendered_text

SECRET_TOKEN = "0123456789abcdef0123456789abcdef:LEAKCHECK" + "f" * 55
SECRET_PASSCODE = "LEAKCHECK-passcode-ZZ9"


@pytest.fixture(autouse=True)
def _release() -> Iterator[None]:
    yield
    release_app()


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_in_live_mode_without_leaking_secrets(
        page: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_app(monkeypatch, tmp_path, CLEAROUT_API_TOKEN=SECRET_TOKEN, CLEVERTAP_PASSCODE=SECRET_PASSCODE,
                CLEVERTAP_ACCOUNT_ID="W8R-LEAK-CHECK", CLEVERTAP_REGION="IN1",
                # nothing answers here: pages must cope with unreachable services
                CLEAROUT_API_BASE="http://127.0.0.1:9/v2", CLEVERTAP_API_BASE="http://127.0.0.1:9")
    at = app_test().run()
    if page != "pages/home.py":
        at.switch_page(page).run()
    assert not at.exception, page_errors(at)
    text = rendered_text(at)
    assert "Sandbox mode" not in text
    assert SECRET_TOKEN not in text and SECRET_PASSCODE not in text


def test_sidebar_badge_says_which_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_app(monkeypatch, tmp_path, APP_MODE="live")
    assert "Live" in rendered_text(app_test().run())
    release_app()
    isolate_app(monkeypatch, tmp_path / "sb")
    assert "Sandbox" in rendered_text(app_test().run())


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_in_sandbox_mode_with_banner(
        page: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    isolate_app(monkeypatch, tmp_path)
    at = app_test().run()
    if page != "pages/home.py":
        at.switch_page(page).run()
    assert not at.exception, page_errors(at)
    text = rendered_text(at)
    assert "Sandbox mode" in text and "simulated" in text
