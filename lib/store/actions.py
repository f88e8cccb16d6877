"""The named audit: one row per action a person took (connect, verify, export, undo, download...)."""
from __future__ import annotations

from typing import Any

from lib.store.db import Database
from lib.store.records import Action, from_rows, utc_now


class ActionsStore(Database):
    def record_action(self, *, actor_email: str, actor_name: str, actor_role: str, action: str, target: str = "",
                      detail: str = "", mode: str | None = None) -> None:
        with self._tx() as con:
            con.execute("""INSERT INTO actions (at, actor_email, actor_name, actor_role, action, target, detail, mode)
                           VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                        (utc_now(), actor_email, actor_name, actor_role, action, target, detail, mode))

    def list_actions(self, *, actor_email: str | None = None, limit: int | None = 1000) -> list[Action]:
        """Newest first; `limit` None: every one (the CSV download)."""
        sql, args = "SELECT * FROM actions", list[Any]()
        if actor_email is not None:
            sql += " WHERE actor_email = ?"
            args.append(actor_email)
        sql += " ORDER BY id DESC"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return from_rows(Action, self._all(sql, args))
