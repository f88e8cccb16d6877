"""The worker's small jobs: the tasks pages ask for (count an audience, preview an undo, read a run
back, write a verified list's merged file) and the Clearout balance pages show."""
from __future__ import annotations

import logging
import threading

from lib.audiences import COUNT_TASK, AudienceQuery, PullError, error_message
from lib.clevertap import CleverTapError
from lib.errors import UserError
from lib.export.readback import record_read_back
from lib.export.runs import connection_of, finished_run
from lib.export.undo import preview_undo
from lib.progress import task_subject, track
from lib.pulls import count_audience
from lib.results import MERGE_TASK, merge_now
from lib.runtime import Clients
from lib.store import Store, Task
from lib.export.plan import ExportOptions
from lib.export.planfile import plan_export
from lib.tasks import EXPORT_PLAN_TASK, READ_BACK_TASK, UNDO_PREVIEW_TASK
from lib.verification.balance import balance_wanted, refresh_balance

log = logging.getLogger(__name__)

KINDS = (COUNT_TASK, UNDO_PREVIEW_TASK, READ_BACK_TASK, MERGE_TASK, EXPORT_PLAN_TASK)


class TaskWorker:
    """Answers the oldest open task of its mode each round, and refreshes the balance when asked."""

    name = "tasks"

    def __init__(self, store: Store, clients: Clients, *, mode: str, owner: str,
                 stop: threading.Event | None = None) -> None:
        self.store = store
        self.clients = clients
        self.mode = mode
        self.owner = owner
        self.stop = stop or threading.Event()

    def run_once(self) -> bool:
        busy = False
        if balance_wanted(self.store, self.mode) and self.clients.has_clearout_token():
            try:
                refresh_balance(self.store, self.mode, self.clients.clearout())
            except UserError:
                pass  # the token went away meanwhile: the pages say so
            busy = True
        task = self.store.claim_task(self.owner, mode=self.mode, kinds=KINDS)
        if task is None:
            return busy
        try:
            with track(self.store, task_subject(task.id)):  # the page waiting for it says what it does
                result = self._answer(task)
        except CleverTapError as exc:
            self.store.finish_task(task.id, error=error_message(exc))
        except UserError as exc:
            self.store.finish_task(task.id, error=exc.message)
        except Exception:
            log.exception("task %s (%s) failed", task.id, task.kind)
            self.store.finish_task(task.id, error="This stopped on an unexpected error (see the worker log): "
                                                  "try again.")
        else:
            self.store.finish_task(task.id, result=result)
        return True

    def release(self) -> None:
        self.store.release_task_leases(self.owner)

    def _answer(self, task: Task) -> dict[str, object]:
        args = task.args
        if task.kind == COUNT_TASK:
            query = AudienceQuery.from_json(args)
            connection = self.store.get_connection(query.connection_id)
            if connection is None:
                raise PullError("That CleverTap connection was removed: choose another one.")
            return {"count": count_audience(self.clients.clevertap(connection), query)}
        if task.kind == UNDO_PREVIEW_TASK:
            run = finished_run(self.store, int(args["run_id"]))
            client = self.clients.clevertap(connection_of(self.store, run))
            return preview_undo(self.store, run.id, client).to_json()
        if task.kind == READ_BACK_TASK:
            run = finished_run(self.store, int(args["run_id"]))
            checks = record_read_back(self.store, run, self.clients.clevertap(connection_of(self.store, run)))
            return {"checked": len(checks), "confirmed": sum(1 for c in checks if c.confirmed)}
        if task.kind == EXPORT_PLAN_TASK:
            plan = plan_export(self.store, int(args["list_id"]), ExportOptions.from_json(args["options"]),
                               guardrail_pct=float(args["guardrail_pct"]))
            if plan.job_id != int(args["job_id"]):
                raise UserError("The list was verified again since you asked: make the dry run again.")
            return plan.to_json()
        if task.kind == MERGE_TASK:
            path = merge_now(self.store, int(args["list_id"]), int(args["job_id"]))
            return {"path": path.name}
        raise UserError(f"Unknown task {task.kind!r}.")
