"""What long work is doing now, per job, run or task (lib.activity): one row each, written by the
worker's reporter, read by the pages while they poll."""
from __future__ import annotations

import time
from typing import Any
from collections.abc import Sequence

from lib.store.db import Database
from lib.store.records import Activity, from_row, from_rows

_FIELDS = ("step", "done", "total", "wait_until", "wait_reason")


class ActivityStore(Database):
    def record_activity(self, subject: str, **changes: Any) -> None:
        """Set some of a subject's fields (step, done, total, wait_until, wait_reason)."""
        unknown = set(changes) - set(_FIELDS)
        if unknown:
            raise ValueError(f"unknown activity fields: {', '.join(sorted(unknown))}")
        names = list(changes)
        with self._tx() as con:
            con.execute(f"INSERT INTO activity (subject, {', '.join([*names, 'updated_at'])}) "
                        f"VALUES ({', '.join('?' * (len(names) + 2))}) ON CONFLICT (subject) DO UPDATE SET "
                        + ", ".join(f"{n} = excluded.{n}" for n in [*names, "updated_at"]),
                        [subject, *changes.values(), time.time()])

    def record_retry(self, subject: str, text: str, *, wait_until: float | None) -> None:
        """One more retry of the subject's calls, said in `text`, the next attempt at `wait_until`."""
        with self._tx() as con:
            con.execute("INSERT INTO activity (subject, retries, last_retry, wait_until, wait_reason, updated_at) "
                        "VALUES (?, 1, ?, ?, ?, ?) ON CONFLICT (subject) DO UPDATE SET retries = retries + 1, "
                        "last_retry = excluded.last_retry, wait_until = excluded.wait_until, "
                        "wait_reason = excluded.wait_reason, updated_at = excluded.updated_at",
                        (subject, text, wait_until, text if wait_until else None, time.time()))

    def activity(self, subject: str) -> Activity | None:
        return from_row(Activity, self._one("SELECT * FROM activity WHERE subject = ?", (subject,)))

    def activities(self, subjects: Sequence[str]) -> dict[str, Activity]:
        if not subjects:
            return {}
        rows = self._all(f"SELECT * FROM activity WHERE subject IN ({self._in(subjects)})", list(subjects))
        return {a.subject: a for a in from_rows(Activity, rows)}

    def clear_activity(self, subject: str) -> None:
        """Forget what a subject did: a new attempt of its work starts from nothing."""
        with self._tx() as con:
            con.execute("DELETE FROM activity WHERE subject = ?", (subject,))
