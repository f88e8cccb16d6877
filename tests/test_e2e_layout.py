"""Browser test: no key figure is cut at a laptop's width. At 1024 px the KPI cards read "6,…", "1,…",
"Unde…" and Verify "Credits ava… 241,…" (issue 15, defect 4): a metric's label, value or note must never
be wider than its box (Streamlit cuts it with an ellipsis), at 1024 and at 1440 px, on every page that
shows figures."""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING
from collections.abc import Callable

import pandas as pd
import pytest

from lib import columns as C
from lib.store import Store
from tests.e2e_support import ARTIFACTS, Walk, app_server
from tests.export.support import connect, make_verified_list, pull
from tests.verification.support import make_list

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from lib.sandbox import Sandbox

pytestmark = pytest.mark.e2e

SHOTS = ARTIFACTS.parent / "defects" / "layout-test"
WIDTHS = (1024, 1440)
PAGES = ("Home", "Lists", "Verify", "Results", "Export")
# The figures each page shows at least (Lists shows none; Home its credits): the check waits for them.
LEAST = {"Home": 1, "Lists": 0, "Verify": 5, "Results": 9, "Export": 4}
# Every text box of a metric (label, value, note) is a Markdown container that cuts with an ellipsis.
CUT = """() => [...document.querySelectorAll('[data-testid="stMetric"] [data-testid="stMarkdownContainer"]')]
    .filter(box => box.scrollWidth > box.clientWidth)
    .map(box => `${box.closest('[data-testid^="stMetric"]:not([data-testid="stMetric"])')?.dataset.testid}: `
              + `${box.innerText} (${box.scrollWidth} px in ${box.clientWidth})`)"""


def test_no_metric_is_cut_at_1024_or_1440_px(browser: Browser, make_sandbox: Callable[..., Sandbox],
                                             tmp_path: Path) -> None:
    sb = make_sandbox(profiles=3_000)
    data_dir = tmp_path / "data"
    store = Store(data_dir)  # what Lists and Verify leave behind: a list to price, a verified one to review
    make_list(store, [f"layout.person{i}@gmail.com" for i in range(1_500)] + ["bad@@address"], name="To verify")
    reviewed = make_verified_list(store, pull(sb, 2_500), lambda i: C.INVALID if i % 7 == 0 else
                                  C.CATCH_ALL if i % 5 == 0 else C.VALID, name="Reviewed")
    flags_answered(store, reviewed.id)
    connect(store, sb, name="Sandbox demo")
    store.close()
    shutil.rmtree(SHOTS, ignore_errors=True)
    SHOTS.mkdir(parents=True)

    knobs = {"SANDBOX_URL": sb.base_url, "SANDBOX_SEED": str(sb.config.seed)}
    with app_server(data_dir, SHOTS / "server.log", **knobs) as server:
        context = browser.new_context(viewport={"width": WIDTHS[0], "height": 900})
        walk = Walk(context.new_page(), server, SHOTS, timeout_ms=60_000)
        cut: dict[str, list[str]] = {}
        shown: dict[str, int] = {}
        try:
            walk.page.goto(server.url)
            walk.rendered()
            for width in WIDTHS:
                walk.page.set_viewport_size({"width": width, "height": 900})
                for title in PAGES:
                    open_with_figures(walk, title)
                    where = f"{title} at {width} px"
                    cut[where] = walk.page.evaluate(CUT)
                    shown[where] = walk.page.locator('[data-testid="stMetric"]').count()
                    walk.page.screenshot(path=str(SHOTS / f"{title.lower()}-{width}.png"), full_page=True)
        finally:
            context.close()
    assert {where: boxes for where, boxes in cut.items() if boxes} == {}
    # The check saw the figures it is about.
    assert {where: count for where, count in shown.items() if count < LEAST[where.split(" at ")[0]]} == {}


def open_with_figures(walk: Walk, title: str) -> None:
    """Open a page and wait until its figures are drawn (Verify: the price; Results: the KPIs and charts;
    Export: a dry run's)."""
    walk.open(title)
    if title == "Verify":
        walk.choose("List to verify", "To verify", exact=False)
        walk.heading("What this run costs")
    elif title == "Results":
        walk.choose("Verified list", "Reviewed", exact=False)
        walk.page.locator('[data-testid="stPlotlyChart"] .main-svg').first.wait_for(state="attached")
    elif title == "Export":
        walk.choose("Verified list", "Reviewed", exact=False)
        walk.rendered()
        # The page keeps the dry run it showed at the first width: asking again would replace it, under
        # the measurement, with "planning…" until the new one is ready.
        if walk.page.get_by_role("heading", name="Dry run: exactly what will be sent").count() == 0:
            walk.button("Dry run").click()
        walk.heading("Dry run: exactly what will be sent")
    elif title == "Home":
        walk.page.locator('[data-testid="stMetric"]').first.wait_for()
    walk.rendered()
    # Every figure drawn before measuring (a busy machine draws the metric rows one run at a time).
    walk.page.wait_for_function("least => document.querySelectorAll('[data-testid=\"stMetric\"]').length >= least",
                                arg=LEAST[title])
    walk.rendered()
    walk.check()


def flags_answered(store: Store, list_id: int) -> None:
    """Clearout answers Yes or No for every flag of a verified address; the test helper leaves some empty."""
    job = store.latest_done_job(list_id)
    assert job is not None
    path = store.job_verdicts_path(job.id)
    verdicts = pd.read_parquet(path)
    for column in (C.FREE, C.ROLE, C.GIBBERISH):
        verdicts[column] = verdicts[column].astype(object).where(verdicts[column].notna(), C.NO).astype(
            verdicts[column].dtype)
    verdicts.to_parquet(path, index=False)
