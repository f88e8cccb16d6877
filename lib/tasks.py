"""Requests pages make of the worker process and read back: export and undo dry runs, read-back checks.

(An audience count is asked through lib.audiences.) A task asked again while the same one is open
is that task: two people pressing one button wait for one answer.
"""
from __future__ import annotations

import json

from lib import actions
from lib.access import OPERATOR, User, require
from lib.export.plan import ExportOptions, ExportPlan
from lib.export.undo import UndoPreview
from lib.store import Store, Task

UNDO_PREVIEW_TASK = "undo_preview"
READ_BACK_TASK = "read_back"
EXPORT_PLAN_TASK = "export_plan"


def request_dry_run(store: Store, mode: str, list_id: int, job_id: int, options: ExportOptions, *,
                    guardrail_pct: float, user: User) -> Task:
    """Ask the worker for the dry run of an export (a ten-million-row list takes half a minute).

    Raises:
        NotAllowed: `user` is not an operator (the one who may export).
    """
    require(user, OPERATOR, "An export dry run")
    args = {"list_id": list_id, "job_id": job_id, "options": options.to_json(), "guardrail_pct": guardrail_pct}
    return store.request_task(kind=EXPORT_PLAN_TASK, mode=mode, args=args, requested_by=user.email,
                              dedupe_key=f"{EXPORT_PLAN_TASK}:{json.dumps(args, sort_keys=True)}")


def dry_run_of(task: Task) -> ExportPlan | None:
    result = task.result
    return ExportPlan.from_json(result) if task.state == "done" and result is not None else None


def request_undo_preview(store: Store, mode: str, run_id: int, *, user: User) -> Task:
    """Ask the worker for the dry run of undoing a run (it reads the profiles' current state).

    Raises:
        NotAllowed: `user` is not an operator (the one who may undo).
    """
    require(user, OPERATOR, "An undo dry run")
    task = store.request_task(kind=UNDO_PREVIEW_TASK, mode=mode, args={"run_id": run_id}, requested_by=user.email,
                              dedupe_key=f"{UNDO_PREVIEW_TASK}:{run_id}")
    actions.record(store, user, "undo_previewed", target=f"run {run_id}", mode=mode)
    return task


def undo_preview_of(task: Task) -> UndoPreview | None:
    result = task.result
    return UndoPreview.from_json(result) if task.state == "done" and result is not None else None


def request_read_back(store: Store, mode: str, run_id: int, *, user: User) -> Task:
    """Ask the worker to read a finished run's sample back from CleverTap now.

    Raises:
        NotAllowed: `user` is not an operator (it calls CleverTap with the team's passcode).
    """
    require(user, OPERATOR, "A read-back check")
    task = store.request_task(kind=READ_BACK_TASK, mode=mode, args={"run_id": run_id}, requested_by=user.email,
                              dedupe_key=f"{READ_BACK_TASK}:{run_id}")
    actions.record(store, user, "read_back", target=f"run {run_id}", mode=mode)
    return task
