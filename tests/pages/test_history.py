"""AppTest of the History page: empty state, runs with their changes, batches and audit log, undo."""
from __future__ import annotations

from collections.abc import Iterator

import pytest

from lib import columns as C
from lib import connections as conn
from lib import ui
from lib.export import runs
from lib.export.plan import ExportOptions
from lib.export.planfile import plan_export
from tests.export.support import make_verified_list, pull
from tests.pages.support import app_test, isolate_app, page_errors, release_app, rendered_text, start_worker
from tests.pages.test_export import wait_for_task, wait_until_done
from tests.access_support import ADMIN, OPERATOR


@pytest.fixture(autouse=True)
def _release(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr("lib.http.sleep", lambda seconds: None)
    yield
    release_app()


def table(at, column: str):
    """The first table on the page with `column` (AppTest does not expose st.dataframe keys)."""
    return next(d.value for d in at.dataframe if column in d.value.columns)


def test_without_runs_it_links_to_export(monkeypatch, tmp_path) -> None:
    isolate_app(monkeypatch, tmp_path)
    at = app_test().run()
    at.switch_page("pages/history.py").run()
    assert not at.exception, page_errors(at)
    assert "No export run yet" in rendered_text(at)
    assert [link.proto.page for link in at.get("page_link")] == ["export"]


def test_lists_runs_and_undoes_one(monkeypatch, tmp_path, make_sandbox) -> None:
    sb = make_sandbox()
    isolate_app(monkeypatch, tmp_path, sandbox=sb)
    at = app_test().run()
    start_worker()
    rt = ui.runtime()
    connection = conn.check_and_save(rt, name="Sandbox demo", account_id=sb.account_id, passcode=sb.passcode,
                                     region="IN1", user=ADMIN)
    record = make_verified_list(rt.store, pull(sb, 80), lambda i: C.INVALID if i % 5 == 0 else C.VALID)
    plan = plan_export(rt.store, record.id, ExportOptions(), guardrail_pct=30)
    run = wait_until_done(runs.start_run(rt.store, plan, connection, user=OPERATOR).id)
    assert run.state == "done"

    at.switch_page("pages/history.py").run()
    assert not at.exception, page_errors(at)
    run_rows = table(at, "Tag")
    assert run_rows["Run"].tolist() == [run.id] and run_rows["Who"].tolist() == [OPERATOR.email]
    changes = table(at, "Outcome")
    assert len(changes) == plan.summary.changes and set(changes["Outcome"]) == {"ok"}
    assert set(changes["MSG-email before"]) == {"subscribed"}
    assert table(at, "Attempts")["State"].tolist() == ["done"]
    assert table(at, "Endpoint")["Endpoint"].tolist() == ["/1/upload"]

    at.button(key="history_undo_dry_run").click().run()
    assert not at.exception, page_errors(at)
    assert "reading the current state" in rendered_text(at)  # the worker answers the dry run
    wait_for_task(at.session_state[f"history_undo_task_{run.id}"])
    at.run()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Will be re-subscribed"] == str(plan.summary.to_unsubscribe)
    at.button(key="history_undo").click().run()
    assert not at.exception, page_errors(at)
    undo = next(r for r in rt.store.list_export_runs() if r.kind == "undo")
    assert undo.parent_run_id == run.id and at.selectbox(key="history_run").value == undo.id
    assert wait_until_done(undo.id).state == "done"
    for key in plan.read_changes()["key_value"]:
        assert sb.profile(identity=key)["profileData"]["MSG-email"] is True
    at.run()
    assert f"Undo of {run.id}" in table(at, "Tag")["Kind"].tolist()
    # The export run says it was undone: in the table, in the run picker, and in its panel.
    assert table(at, "Tag").set_index("Run").loc[run.id, "State"] == "done, undone"
    at.selectbox(key="history_run").set_value(run.id).run()
    assert not at.exception, page_errors(at)
    assert at.selectbox(key="history_run").format_func(run.id).endswith(" · undone")
    assert not at.success and any(f"Done, then undone by run {undo.id}" in i.value for i in at.info)
    at.switch_page("pages/home.py").run()
    assert [m.value for m in at.markdown if "export run" in m.value] == [
        ":green[:material/check_circle:] 1 export run applied to CleverTap \\(undone\\)"]
