"""The whole flow against a sandbox allowing few Clearout requests a minute and failing 20% of all
requests, with pages open and polling: not one call lands inside a wait the APIs announced."""
from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from lib import columns as C
from lib.store import Store
from tests.e2e_support import VIEWPORT, Walk, app_server
from tests.export.support import connect, make_verified_list, pull
from tests.verification.support import make_list

pytestmark = pytest.mark.e2e


def test_a_tight_rate_limit_and_faults_never_a_call_inside_a_wait(browser, make_sandbox, tmp_path) -> None:
    # Two requests per 15 s window: the flow needs several windows, so the app must wait for resets.
    sb = make_sandbox(rpm=2, rpm_window_s=15, fault_rate=0.2, bulk_seconds=2, seed=7)
    data_dir = tmp_path / "data"
    store = Store(data_dir)
    make_list(store, [f"budget.person{i}@gmail.com" for i in range(12)], name="Budget list")
    connect(store, sb, name="Sandbox demo")
    make_verified_list(store, pull(sb, 60), lambda i: C.INVALID if i % 4 == 0 else C.VALID, name="Reviewed")
    store.close()
    sb.reset_stats()

    with app_server(data_dir, tmp_path / "serve.log", SANDBOX_URL=sb.base_url, SANDBOX_SEED="7") as server:
        context = browser.new_context(viewport=VIEWPORT)
        home = context.new_page()
        home.goto(server.url)  # Home polls its job rows and shows the balance all along
        walk = Walk(context.new_page(), server, tmp_path, timeout_ms=240_000)
        walk.page.goto(server.url)
        walk.rendered()
        walk.open("Verify")
        walk.choose("List to verify", "Budget list", exact=False)
        start = walk.page.get_by_role("button", name=re.compile(r"^Start verification \("))
        expect(start).to_be_enabled(timeout=150_000)  # once the worker has read the balance, within budget
        start.click()
        walk.page.wait_for_function("""() => [...document.querySelectorAll('[data-testid="stMain"] p')]
            .some(p => /Budget list · Done/.test(p.innerText))""", polling=500, timeout=240_000)

        walk.open("Export")
        walk.choose("Verified list", "Reviewed", exact=False)
        walk.button("Dry run").click()
        walk.heading("Dry run: exactly what will be sent")
        walk.page.get_by_role("button", name=re.compile(r"^Apply: send [\d,]+ records to Sandbox demo$")).click()
        walk.text("Done · ")
        context.close()

    stats = sb.stats()
    print(f"rate budget: {sum(stats['requests'].values())} requests, {stats['faults_injected']} faults, "
          f"{stats['rate_limited']} answered 429 for the window's limit, waits announced "
          f"{stats['waits_announced_by_api']}, {stats['calls_in_wait_window']} calls inside a wait")
    assert stats["faults_injected"] > 0 and stats["requests"].get("clearout.bulk", 0) >= 1
    assert stats["waits_announced_by_api"]["clearout"] > 0  # the app was told to wait, and did
    assert stats["calls_in_wait_window"] == 0, stats["calls_in_wait_window_by_api"]
