"""Browser test of the live Connect page as a person types into it: fields left with the real Tab key.

Streamlit sends a text field's value when the field loses focus to something outside the widget;
Tab from a password field lands on its own "Show password" button, inside the widget. This walks
the flow that lost the passcode that way (issue 15, defect 1): Project ID, Passcode, Tab, Account
name, Test and save.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Callable

import pytest

from tests.e2e_support import ARTIFACTS, VIEWPORT, Walk, app_server

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from lib.sandbox import Sandbox

pytestmark = pytest.mark.e2e

SHOTS = ARTIFACTS.parent / "defects" / "connect"


def live_knobs(sandbox: Sandbox) -> dict[str, str]:
    """A live-mode app (an empty form, as a new user meets it) whose CleverTap and Clearout are the sandbox."""
    return {"APP_MODE": "live", "CLEVERTAP_API_BASE": sandbox.clevertap_base_template,
            "CLEAROUT_API_BASE": sandbox.clearout_base, "CLEAROUT_API_TOKEN": sandbox.clearout_token}


def type_into(walk: Walk, label: str, text: str) -> None:
    field = walk.page.get_by_label(label, exact=True)
    field.click()
    field.press_sequentially(text, delay=15)


def test_passcode_left_with_tab_is_kept(browser: Browser, make_sandbox: Callable[..., Sandbox],
                                        tmp_path: Path) -> None:
    sandbox = make_sandbox(profiles=500)
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)
    with app_server(tmp_path / "data", SHOTS / "server.log", **live_knobs(sandbox)) as server:
        context = browser.new_context(viewport=VIEWPORT)
        walk = Walk(context.new_page(), server, SHOTS)
        try:
            walk.page.goto(server.url + "/connect")
            walk.heading("Connect", level=1)
            walk.rendered()
            sandbox.reset_stats()
            type_into(walk, "Project ID", sandbox.account_id)
            type_into(walk, "Passcode", sandbox.passcode)
            walk.page.keyboard.press("Tab")  # the real key: focus goes to the field's "Show password" button
            type_into(walk, "Account name", "Shop app")
            walk.button("Test and save").click()
            walk.text("Connected Shop app: CleverTap accepted the credentials.")
            walk.rendered()
            walk.check()
            walk.shot("connected-after-tab")
            reads = _profile_reads(sandbox.stats())
            assert reads == 1, f"one credentials check, no region probing: {reads} profile reads"

            # Nothing typed, yet Test and save: said at once, and CleverTap is not asked in any region.
            walk.page.get_by_text("Connect a CleverTap project", exact=True).click()  # the form folds once connected
            sandbox.reset_stats()
            type_into(walk, "Project ID", "W9R-OTHER-0001")
            walk.page.keyboard.press("Tab")
            type_into(walk, "Account name", "Other app")
            walk.page.keyboard.press("Tab")
            walk.button("Test and save").click()
            walk.text("Enter the passcode")
            walk.rendered()
            walk.check(expected_errors=("Enter the passcode",))
            assert _profile_reads(sandbox.stats()) == 0
            walk.shot("passcode-missing")
        except BaseException:
            walk.shot("failure")
            print(server.log())
            raise
        finally:
            context.close()


def _profile_reads(stats: dict[str, Any]) -> int:
    return sum(n for route, n in stats["requests"].items() if "profile" in route and "profiles" not in route)
