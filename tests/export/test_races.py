"""One plan applied twice at the same instant (two threads, two processes), and two undos of one
run: one run, one undo, and the records sent once."""
from __future__ import annotations

from dataclasses import replace

import pytest

from lib import columns as C
from lib.export.applier import RunApplier
from lib.export.plan import ExportOptions, ExportPlan
from lib.export.planfile import plan_export
from lib.export.runs import start_run
from lib.export.undo import start_undo
from lib.store import DuplicateRun, Store
from tests.export.support import client_for, connect, make_verified_list, pull
from tests.race_support import in_processes, in_threads
from tests.access_support import OPERATOR, OTHER_OPERATOR


def test_one_plan_applied_twice_from_two_threads_makes_one_run(make_sandbox, tmp_path) -> None:
    sb = make_sandbox()
    store = Store(tmp_path / "data")
    record = make_verified_list(store, pull(sb, 90), lambda i: C.INVALID if i % 3 == 0 else C.VALID)
    plan = plan_export(store, record.id, ExportOptions(), guardrail_pct=100)
    connection = connect(store, sb)

    results = in_threads(lambda: start_run(store, plan, connection, user=OPERATOR))

    runs = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, DuplicateRun)]
    assert len(runs) == 1 and len(refused) == 1, results
    assert f"already applied as run {runs[0].id} (by ana" in refused[0].message
    with client_for(sb) as client:
        done = RunApplier(store, runs[0].id, client).apply()
    assert done.state == "done"
    assert sb.stats()["requests"]["clevertap.upload"] == done.batches_total == 1
    assert sb.stats()["records_processed"] == plan.summary.changes


def test_one_plan_applied_twice_from_two_processes_makes_one_run(make_sandbox, tmp_path) -> None:
    sb = make_sandbox()
    store = Store(tmp_path / "data")
    record = make_verified_list(store, pull(sb, 90), lambda i: C.INVALID if i % 3 == 0 else C.VALID)
    connection = connect(store, sb)

    answers = in_processes("apply", str(tmp_path / "data"), str(record.id), str(connection.id), "20991231-aaaaaa")

    made = [a["run"] for a in answers if "run" in a]
    refused = [a["refused"] for a in answers if "refused" in a]
    assert len(made) == 1 and len(refused) == 1, answers
    assert "already applied" in refused[0] or "still sending" in refused[0]
    assert [r.id for r in store.list_export_runs()] == made


def test_a_second_plan_of_a_list_waits_while_the_first_is_sending(make_sandbox, tmp_path) -> None:
    sb = make_sandbox()
    store = Store(tmp_path / "data")
    record = make_verified_list(store, pull(sb, 30), lambda i: C.INVALID)
    connection = connect(store, sb)
    first = start_run(store, plan_export(store, record.id, ExportOptions(), guardrail_pct=100), connection,
                      user=OPERATOR)
    second_plan = plan_export(store, record.id, ExportOptions(), guardrail_pct=100)
    with pytest.raises(DuplicateRun) as refused:
        start_run(store, second_plan, connection, user=OTHER_OPERATOR)
    assert f"run {first.id} (by ana" in refused.value.message and "still sending" in refused.value.message


def test_a_dry_run_made_before_another_run_of_the_list_ended_is_refused(make_sandbox, tmp_path) -> None:
    """Two people each make a dry run; one applies and it ends before the other clicks: the second plan
    would send what was sent already. It is refused; a new dry run, made knowingly, may be applied."""
    sb = make_sandbox()
    store = Store(tmp_path / "data")
    record = make_verified_list(store, pull(sb, 30), lambda i: C.INVALID if i % 2 == 0 else C.VALID)
    connection = connect(store, sb)
    mine = plan_export(store, record.id, ExportOptions(), guardrail_pct=100)
    mine = ExportPlan.from_json(mine.to_json())  # as the worker's dry run task hands it to the page
    theirs = plan_export(store, record.id, ExportOptions(), guardrail_pct=100)
    first = start_run(store, theirs, connection, user=OTHER_OPERATOR)
    with client_for(sb) as client:
        assert RunApplier(store, first.id, client).apply().state == "done"
    with pytest.raises(DuplicateRun) as refused:
        start_run(store, mine, connection, user=OPERATOR)
    said = refused.value.message
    assert f"after this dry run was made, as run {first.id} (by" in said and "new dry run" in said
    assert [r.id for r in store.list_export_runs()] == [first.id]
    fresh = plan_export(store, record.id, ExportOptions(), guardrail_pct=100)
    assert start_run(store, fresh, connection, user=OPERATOR).id > first.id


def test_two_undos_of_one_run_make_one_undo_run(make_sandbox, tmp_path) -> None:
    sb = make_sandbox()
    store = Store(tmp_path / "data")
    rows = pull(sb, 60)
    record = make_verified_list(store, rows, lambda i: C.INVALID if i % 2 == 0 else C.VALID)
    plan = replace(plan_export(store, record.id, ExportOptions(), guardrail_pct=100))
    run = start_run(store, plan, connect(store, sb), user=OPERATOR)
    with client_for(sb) as client:
        assert RunApplier(store, run.id, client).apply().state == "done"

    results = in_threads(lambda: start_undo(store, run.id, user=OPERATOR))

    undos = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(undos) == 1 and len(refused) == 1, results
    assert "already undone" in refused[0].message
    assert len(store.list_export_runs(kinds=["undo"])) == 1
