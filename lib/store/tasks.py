"""Tasks: requests a page makes of the worker process that are not a job, a pull or a run of their own
(count an audience, preview an undo, read a run back), and their answers.

A task asked again while the same one is still open (`dedupe_key`) is the same task: two people
pressing the same button wait for one answer. Leases name the worker process, so a dead worker's
task is taken over at once by the next one.
"""
from __future__ import annotations

import json
import sqlite3
import time
from typing import Any
from collections.abc import Sequence

from lib.processes import lease_is_free
from lib.store.db import Database
from lib.store.records import Task, from_row, utc_now

TASK_LEASE_SECONDS = 120.0


class TasksStore(Database):
    def request_task(self, *, kind: str, mode: str, args: dict[str, Any], requested_by: str = "",
                     dedupe_key: str | None = None) -> Task:
        """Queue a task, or return the open one with the same `dedupe_key`."""
        try:
            with self._tx() as con:
                cur = con.execute("""INSERT INTO tasks (kind, mode, args_json, dedupe_key, state, requested_by,
                                                        created_at) VALUES (?, ?, ?, ?, 'queued', ?, ?)""",
                                  (kind, mode, json.dumps(args), dedupe_key, requested_by, utc_now()))
                task_id = cur.lastrowid
        except sqlite3.IntegrityError:
            open_task = from_row(Task, self._one(
                "SELECT * FROM tasks WHERE dedupe_key = ? AND state IN ('queued', 'running')", (dedupe_key,)))
            if open_task is None:  # it finished between our insert and this read: ask again
                return self.request_task(kind=kind, mode=mode, args=args, requested_by=requested_by,
                                         dedupe_key=dedupe_key)
            return open_task
        return self.task(int(task_id or 0))

    def get_task(self, task_id: int) -> Task | None:
        return from_row(Task, self._one("SELECT * FROM tasks WHERE id = ?", (task_id,)))

    def task(self, task_id: int) -> Task:
        found = self.get_task(task_id)
        if found is None:
            raise LookupError(f"no task {task_id}")
        return found

    def claim_task(self, owner: str, *, mode: str, kinds: Sequence[str],
                   lease_seconds: float = TASK_LEASE_SECONDS) -> Task | None:
        """Lease the oldest open task of these kinds whose lease is free (or whose owner died)."""
        now = time.time()
        with self._tx() as con:
            rows = con.execute(
                f"SELECT id, lease_owner, lease_until FROM tasks WHERE mode = ? AND state IN ('queued', 'running') "
                f"AND kind IN ({self._in(kinds)}) ORDER BY id", (mode, *kinds)).fetchall()
            chosen = next((r["id"] for r in rows if r["lease_owner"] is None
                           or lease_is_free(r["lease_owner"], r["lease_until"], owner, now)), None)
            if chosen is None:
                return None
            con.execute("UPDATE tasks SET state = 'running', lease_owner = ?, lease_until = ? WHERE id = ?",
                        (owner, now + lease_seconds, chosen))
        return self.task(chosen)

    def finish_task(self, task_id: int, *, result: dict[str, Any] | None = None, error: str | None = None) -> Task:
        with self._tx() as con:
            con.execute("UPDATE tasks SET state = ?, result_json = ?, error = ?, finished_at = ?, "
                        "lease_owner = NULL, lease_until = NULL WHERE id = ?",
                        ("failed" if error is not None else "done", None if result is None else json.dumps(result),
                         error, utc_now(), task_id))
        return self.task(task_id)

    def release_task_leases(self, owner: str) -> None:
        with self._tx() as con:
            con.execute("UPDATE tasks SET lease_owner = NULL, lease_until = NULL WHERE lease_owner = ?", (owner,))
