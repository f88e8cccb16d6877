"""Two people on the same deployment press the same button at the same moment, in two browsers:
Start verification on one list, then Apply on one export. One job, one upload, one run; the second
person is told who started it and when."""
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


def test_two_sessions_clicking_together_make_one_job_and_one_run(browser, make_sandbox, tmp_path) -> None:
    sb = make_sandbox(bulk_seconds=3, latency_ms=50, seed=7)
    data_dir = tmp_path / "data"
    store = Store(data_dir)
    shared = make_list(store, [f"twice.person{i}@gmail.com" for i in range(25)], name="Shared list")
    connect(store, sb, name="Sandbox demo")
    make_verified_list(store, pull(sb, 80), lambda i: C.INVALID if i % 4 == 0 else C.VALID, name="Reviewed")
    sb.reset_stats()

    with app_server(data_dir, tmp_path / "serve.log", SANDBOX_URL=sb.base_url, SANDBOX_SEED="7") as server:
        walks = []
        for _ in range(2):
            walk = Walk(browser.new_context(viewport=VIEWPORT).new_page(), server, tmp_path, timeout_ms=60_000)
            walk.page.goto(server.url)
            walk.rendered()
            walk.open("Verify")
            walk.choose("List to verify", "Shared list", exact=False)
            expect(walk.page.get_by_role("button", name=re.compile(r"^Start verification \("))).to_be_enabled()
            walks.append(walk)
        for walk in walks:  # one right after the other: both scripts run at once on the server
            walk.page.get_by_role("button", name=re.compile(r"^Start verification \(")).click()
        for walk in walks:
            walk.rendered()
        [job] = store.list_jobs(list_id=shared.id)  # one job between them
        # Each page says who started it and since when (the second person, whether its click was
        # refused or its page reran after the first person's job existed), until the job ends.
        for walk in walks:
            walk.text(f"already being verified since {job.created_at[11:16]} UTC, started by {job.requested_by}")

        for walk in walks:
            walk.open("Export")
            walk.choose("Verified list", "Reviewed", exact=False)
            walk.button("Dry run").click()
            walk.heading("Dry run: exactly what will be sent")
            walk.rendered()  # a click on a page still running its script may be dropped
        applies = [w.page.get_by_role("button", name=re.compile(r"^Apply: send [\d,]+ records to Sandbox demo$"))
                   for w in walks]
        for apply in applies:
            apply.click()
        for walk in walks:
            walk.rendered()
        walks[0].page.wait_for_timeout(500)
        for walk in walks:
            walk.rendered()
        assert len(store.list_export_runs()) == 1
        texts = [w.page.locator('[data-testid="stMain"]').inner_text() for w in walks]
        assert sum(("already applied" in t) or ("still sending" in t) for t in texts) == 1, texts
        walks[0].text("Done · ")
        for walk in walks:
            walk.page.context.close()
    stats = sb.stats()
    assert stats["bulk_uploads_accepted"] == 1
    [run] = store.list_export_runs()
    assert stats["requests"]["clevertap.upload"] == run.batches_total
