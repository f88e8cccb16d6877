"""Connections (CleverTap projects, without their passcodes) and saved audiences (profile queries)."""
from __future__ import annotations

import json
import sqlite3
from typing import Any

from lib.store.db import Database
from lib.store.records import (Audience, Connection, StoreError, from_row, from_rows, must_exist,
                               utc_now)


class ConnectionsStore(Database):
    # ---- connections ----------------------------------------------------------------------
    def add_connection(self, *, name: str, account_id: str, region: str, mode: str,
                       passcode_storage: str) -> Connection:
        """Add a connection, or update the one with the same project and region."""
        now = utc_now()
        try:
            with self._tx() as con:
                con.execute(
                    """INSERT INTO connections (name, account_id, region, mode, passcode_storage,
                                                created_at, last_checked_at)
                       VALUES (?, ?, ?, ?, ?, ?, ?)
                       ON CONFLICT (mode, account_id, region) DO UPDATE SET
                           name = excluded.name, passcode_storage = excluded.passcode_storage,
                           last_checked_at = excluded.last_checked_at""",
                    (name, account_id, region, mode, passcode_storage, now, now))
        except sqlite3.IntegrityError:
            raise StoreError(f"A connection named {name!r} already exists: pick another name") from None
        added = from_row(Connection, self._one(
            "SELECT * FROM connections WHERE mode = ? AND account_id = ? AND region = ?",
            (mode, account_id, region)))
        assert added is not None  # just written, in this transaction's commit
        return added

    def connection(self, connection_id: int) -> Connection:
        """The connection, which must exist (else StoreError: removed meanwhile)."""
        return must_exist(self.get_connection(connection_id),
                          "That CleverTap connection was removed: connect the project again on Connect.")

    def get_connection(self, connection_id: int) -> Connection | None:
        return from_row(Connection, self._one("SELECT * FROM connections WHERE id = ?", (connection_id,)))

    def list_connections(self, mode: str) -> list[Connection]:
        rows = self._all("SELECT * FROM connections WHERE mode = ? ORDER BY name", (mode,))
        return from_rows(Connection, rows)

    def delete_connection(self, connection_id: int) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM connections WHERE id = ?", (connection_id,))

    # ---- audiences ------------------------------------------------------------------------
    def save_audience(self, *, name: str, connection_id: int, event_name: str, from_date: str,
                      to_date: str, filters: list[dict[str, Any]]) -> Audience:
        with self._tx() as con:
            cur = con.execute(
                """INSERT INTO audiences (name, connection_id, event_name, from_date, to_date,
                                          filters_json, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)""",
                (name, connection_id, event_name, from_date, to_date, json.dumps(filters), utc_now()))
        return self.audience(int(cur.lastrowid or 0))

    def audience(self, audience_id: int) -> Audience:
        return must_exist(self.get_audience(audience_id),
                          "That saved audience no longer exists (its connection was removed).")

    def get_audience(self, audience_id: int) -> Audience | None:
        return from_row(Audience, self._one("SELECT * FROM audiences WHERE id = ?", (audience_id,)))

    def list_audiences(self, connection_id: int | None = None) -> list[Audience]:
        if connection_id is None:
            rows = self._all("SELECT * FROM audiences ORDER BY created_at DESC, id DESC")
        else:
            rows = self._all("SELECT * FROM audiences WHERE connection_id = ? ORDER BY created_at DESC, "
                             "id DESC", (connection_id,))
        return from_rows(Audience, rows)

    def mark_audience_pulled(self, audience_id: int) -> None:
        self._update("audiences", "id", audience_id, {"last_pulled_at": utc_now()}, ["last_pulled_at"])
