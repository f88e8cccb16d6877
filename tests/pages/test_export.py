"""AppTest of the Export page: empty states, dry run, guardrail, apply, the email-only path."""
from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest

from lib import columns as C
from lib import connections as conn
from lib import ui
from lib.access import local_user
from lib.export.plan import ExportOptions
from lib.export.planfile import plan_export
from tests.export.support import csv_list, make_verified_list, pull
from tests.pages.support import app_test, isolate_app, page_errors, release_app, rendered_text, start_worker
from tests.access_support import ADMIN


@pytest.fixture(autouse=True)
def _release(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr("lib.http.sleep", lambda seconds: None)
    yield
    release_app()


def open_page(monkeypatch, tmp_path, *, connect: bool = True, invalid_every: int | None = 4, email_only=False):
    isolate_app(monkeypatch, tmp_path)
    at = app_test().run()
    start_worker()
    rt = ui.runtime()
    sb = rt.sandbox
    if connect:
        conn.check_and_save(rt, name="Sandbox demo", account_id=sb.account_id, passcode=sb.passcode, region="IN1",
                            user=ADMIN)
    if invalid_every:
        rows = pull(sb, 120)
        statuses = [C.INVALID if i % invalid_every == 0 else C.VALID for i in range(len(rows))]
        if email_only:
            csv_list(rt.store, rows["email"].tolist(), statuses)
        else:
            make_verified_list(rt.store, rows, statuses)
    at.switch_page("pages/export.py").run()
    assert not at.exception, page_errors(at)
    return at


def wait_until_done(run_id: int, timeout: float = 30.0):
    store = ui.runtime().store
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = store.get_export_run(run_id)
        if run.state not in ("planned", "running"):
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} still {store.get_export_run(run_id).state}")


def wait_for_task(task_id: int, timeout: float = 30.0):
    store = ui.runtime().store
    deadline = time.monotonic() + timeout
    while (task := store.task(task_id)).is_open:
        assert time.monotonic() < deadline, task
        time.sleep(0.05)
    return task


def dry_run(at):
    """Press Dry run, let the worker plan it, and show the answer."""
    at.button(key="export_dry_run").click().run()
    assert not at.exception, page_errors(at)
    wait_for_task(at.session_state["export_plan_task"])
    at.run()
    assert not at.exception, page_errors(at)
    return at


def test_without_a_verified_list_it_links_to_verify(monkeypatch, tmp_path) -> None:
    at = open_page(monkeypatch, tmp_path, invalid_every=None)
    assert "No verified list yet" in rendered_text(at)
    assert [link.proto.page for link in at.get("page_link")] == ["verify"]


def test_without_a_project_it_links_to_connect(monkeypatch, tmp_path) -> None:
    at = open_page(monkeypatch, tmp_path, connect=False)
    assert "No CleverTap project connected yet" in rendered_text(at)
    assert [link.proto.page for link in at.get("page_link")] == ["connect"]


def test_dry_run_shows_the_plan_then_apply_creates_a_run(monkeypatch, tmp_path) -> None:
    at = open_page(monkeypatch, tmp_path)
    assert not [b for b in at.button if b.key == "export_apply"]  # no apply before a dry run
    at.button(key="export_dry_run").click().run()
    assert "Dry run: planning every change of the 120 rows" in rendered_text(at)  # the worker plans it
    dry_run(at)
    rt = ui.runtime()
    expected = plan_export(rt.store, rt.store.list_lists("sandbox")[0].id, ExportOptions(),
                                  guardrail_pct=30).summary
    assert 20 < expected.to_unsubscribe < 36
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["To unsubscribe"] == str(expected.to_unsubscribe) and metrics["Profiles in the list"] == "120"
    reasons = at.dataframe[0].value
    assert reasons["Profiles"].sum() == expected.to_unsubscribe and set(reasons["Rule"]) == {"Invalid"}
    assert '"MSG-email": false' in at.code[0].value and '"/1/upload"' in at.code[0].value
    assert not at.button(key="export_apply").disabled  # 25% is under the 30% guardrail
    # The funnel from Results' undeliverable rows to the profiles unsubscribed adds up.
    [chart] = [c for c in at.get("plotly_chart") if c.proto.id.endswith("export_funnel") or "funnel" in c.proto.spec]
    steps = dict(zip(*(json.loads(chart.proto.spec)["data"][0][axis] for axis in ("y", "x"))))
    assert steps["To unsubscribe"] == expected.to_unsubscribe
    assert steps["Distinct profiles"] == expected.to_unsubscribe + expected.already_unsubscribed
    assert steps["Matching your rules"] == expected.matched_rows == expected.undeliverable_matched
    assert f"{expected.undeliverable_rows:,} undeliverable rows (as on Results)" in rendered_text(at)
    assert f"= **{expected.to_unsubscribe:,} profiles to unsubscribe**" in rendered_text(at)
    # The dry run's words mean what the glossary says, as on Lists, Verify and Results.
    [words] = [d.value for d in at.dataframe if list(d.value.columns) == ["Word", "Meaning"]]
    assert {"Matching your rules", "With a profile key", "Distinct profiles", "To unsubscribe"} <= set(words["Word"])

    at.checkbox(key="export_rule_catch_all").check().run()
    assert "choices changed since the dry run" in rendered_text(at)
    assert "Catch-all is risky, not dead" in rendered_text(at)
    at.checkbox(key="export_rule_catch_all").uncheck().run()

    dry_run(at)
    at.button(key="export_apply").click().run()
    assert not at.exception, page_errors(at)
    [run] = ui.runtime().store.list_export_runs()
    # No sign-in on a loopback address: the one local user, named after the OS user, applied it.
    assert run.actor == local_user().email and run.planned_records == expected.to_unsubscribe
    run = wait_until_done(run.id)
    assert run.state == "done" and run.processed == expected.to_unsubscribe
    at.run()
    text = rendered_text(at)
    assert f"Run {run.id}" in text and "Done" in text and "Read-back check" in text
    assert "Communication preferences" in text


def test_guardrail_needs_the_typed_confirmation(monkeypatch, tmp_path) -> None:
    at = open_page(monkeypatch, tmp_path, invalid_every=2)
    dry_run(at)
    assert "more than the 30% guardrail" in rendered_text(at)
    assert at.button(key="export_apply").disabled
    at.text_input(key="export_confirm").input("UNSUBSCRIBE 1").run()
    assert at.button(key="export_apply").disabled
    rt = ui.runtime()
    plan = plan_export(rt.store, rt.store.list_lists("sandbox")[0].id, ExportOptions(), guardrail_pct=30)
    at.text_input(key="export_confirm").input(f"UNSUBSCRIBE {plan.summary.to_unsubscribe}").run()
    assert not at.button(key="export_apply").disabled
    at.button(key="export_apply").click().run()
    assert not at.exception, page_errors(at)
    assert len(ui.runtime().store.list_export_runs()) == 1


def test_email_only_list_explains_the_subscribe_api(monkeypatch, tmp_path) -> None:
    at = open_page(monkeypatch, tmp_path, email_only=True)
    assert "Subscribe API" in rendered_text(at) and at.checkbox(key="export_append").disabled
    dry_run(at)
    assert '"/1/subscribe"' in at.code[0].value and '"Unsubscribe"' in at.code[0].value
    # Some addresses' state before cannot be known: the person chooses what undo does, nothing pre-selected.
    [choice] = [r for r in at.radio if r.key.startswith("export_unknown_prior_")]
    assert choice.value is None and "no profile for" in choice.label
    assert at.button(key="export_apply").disabled
    choice.set_value("resubscribe").run()
    assert not at.button(key="export_apply").disabled
    at.button(key="export_apply").click().run()
    assert not at.exception, page_errors(at)
    [run] = ui.runtime().store.list_export_runs()
    assert run.policy["unknown_prior"] == "resubscribe" and run.policy["unknown_prior_chosen_by"]
