"""The audit log: one entry per write to CleverTap (a batch sent), with who asked for it."""
from __future__ import annotations

import sqlite3
from typing import Any

from lib.store.db import Database
from lib.store.records import AuditEntry, from_rows, utc_now


def insert_audit(con: sqlite3.Connection, *, actor: str, account_id: str, region: str,
                 endpoint: str, records: int, outcome: str, processed: int = 0,
                 unprocessed: int = 0, run_id: int | None = None, batch_no: int | None = None,
                 detail: str | None = None) -> None:
    """Append one entry inside the caller's transaction (a batch's outcome and its entry commit together)."""
    con.execute("""INSERT INTO audit_log (at, actor, account_id, region, endpoint, run_id, batch_no,
                       records, processed, unprocessed, outcome, detail)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (utc_now(), actor, account_id, region, endpoint, run_id, batch_no, records,
                 processed, unprocessed, outcome, detail))


class AuditStore(Database):
    def audit_log(self, *, run_id: int | None = None, limit: int = 1000) -> list[AuditEntry]:
        sql, args = "SELECT * FROM audit_log", list[Any]()
        if run_id is not None:
            sql += " WHERE run_id = ?"
            args.append(run_id)
        return from_rows(AuditEntry, self._all(sql + f" ORDER BY id DESC LIMIT {int(limit)}", args))
