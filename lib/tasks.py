"""Requests pages make of the worker process and read back: undo dry runs, read-back checks.

(An audience count is asked through lib.audiences.) A task asked again while the same one is open
is that task: two people pressing one button wait for one answer.
"""
from __future__ import annotations

from lib.export.undo import UndoPreview
from lib.store import Store, Task

UNDO_PREVIEW_TASK = "undo_preview"
READ_BACK_TASK = "read_back"


def request_undo_preview(store: Store, mode: str, run_id: int, *, requested_by: str = "") -> Task:
    """Ask the worker for the dry run of undoing a run (it reads the profiles' current state)."""
    return store.request_task(kind=UNDO_PREVIEW_TASK, mode=mode, args={"run_id": run_id}, requested_by=requested_by,
                              dedupe_key=f"{UNDO_PREVIEW_TASK}:{run_id}")


def undo_preview_of(task: Task) -> UndoPreview | None:
    result = task.result
    return UndoPreview.from_json(result) if task.state == "done" and result is not None else None


def request_read_back(store: Store, mode: str, run_id: int, *, requested_by: str = "") -> Task:
    """Ask the worker to read a finished run's sample back from CleverTap now."""
    return store.request_task(kind=READ_BACK_TASK, mode=mode, args={"run_id": run_id}, requested_by=requested_by,
                              dedupe_key=f"{READ_BACK_TASK}:{run_id}")
