"""The worker processes' heartbeats: pages tell from them whether long work is moving."""
from __future__ import annotations

import time

from lib.store.db import Database
from lib.store.records import WorkerBeat, from_row, utc_now


class WorkersStore(Database):
    def beat(self, owner: str, mode: str) -> None:
        """Record that the worker `owner` is alive now (called every few seconds)."""
        with self._tx() as con:
            con.execute("""INSERT INTO workers (owner, mode, started_at, heartbeat_at) VALUES (?, ?, ?, ?)
                           ON CONFLICT (owner) DO UPDATE SET heartbeat_at = excluded.heartbeat_at,
                                                             stopped_at = NULL""",
                        (owner, mode, utc_now(), time.time()))

    def worker_stopped(self, owner: str) -> None:
        with self._tx() as con:
            con.execute("UPDATE workers SET stopped_at = ? WHERE owner = ?", (utc_now(), owner))

    def latest_worker(self, mode: str) -> WorkerBeat | None:
        """The worker of this mode that beat last, if any ever did."""
        return from_row(WorkerBeat, self._one(
            "SELECT * FROM workers WHERE mode = ? ORDER BY heartbeat_at DESC LIMIT 1", (mode,)))
