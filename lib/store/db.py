"""The store's plumbing: one SQLite database in DATA_DIR (WAL), a connection per thread, transactions.

Threading: one connection per thread (sqlite3 connections must not be shared across threads),
autocommit mode with explicit `BEGIN IMMEDIATE` transactions, and a generous busy timeout so the
page threads of the Streamlit process and the worker process queue instead of failing.
"""
from __future__ import annotations

import sqlite3
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from collections.abc import Iterable, Iterator, Sequence

from lib.store.records import StoreError
from lib.store.schema import MIGRATIONS, SCHEMA_VERSION, statements

DB_FILE = "app.sqlite3"
BUSY_TIMEOUT_MS = 30_000


class Database:
    """Connections, transactions and migrations; the aggregate modules build on it."""

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / DB_FILE
        self._local = threading.local()
        self._migrate()

    def _connection(self) -> sqlite3.Connection:
        con: sqlite3.Connection | None = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                                  check_same_thread=True)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across app crashes
            con.execute("PRAGMA foreign_keys=ON")
            con.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            self._local.con = con
        return con

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        con = self._connection()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    def _one(self, sql: str, args: Sequence[Any] = ()) -> sqlite3.Row | None:
        row: sqlite3.Row | None = self._connection().execute(sql, args).fetchone()
        return row

    def _scalar(self, sql: str, args: Sequence[Any] = ()) -> Any:
        row = self._connection().execute(sql, args).fetchone()
        return None if row is None else row[0]

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._connection().execute(sql, args).fetchall()

    def _migrate(self) -> None:
        with self._tx() as con:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} has schema version {version}, newer than this app "
                                 f"({SCHEMA_VERSION}): upgrade the app")
            for target in range(version, SCHEMA_VERSION):
                for statement in statements(MIGRATIONS[target]):
                    con.execute(statement)
                con.execute(f"PRAGMA user_version={target + 1}")

    @property
    def schema_version(self) -> int:
        return int(self._scalar("PRAGMA user_version"))

    def close(self) -> None:
        """Close this thread's connection (other threads close theirs when they end)."""
        con = getattr(self._local, "con", None)
        if con is not None:
            con.close()
            self._local.con = None

    def _update(self, table: str, key: str, key_value: Any, changes: dict[str, Any],
                allowed: Iterable[str]) -> None:
        unknown = set(changes) - set(allowed)
        if unknown:
            raise StoreError(f"cannot update {table}.{', '.join(sorted(unknown))}")
        if not changes:
            return
        assignments = ", ".join(f"{name} = ?" for name in changes)
        with self._tx() as con:
            cur = con.execute(f"UPDATE {table} SET {assignments} WHERE {key} = ?",
                              [*changes.values(), key_value])
            if cur.rowcount == 0:
                raise StoreError(f"no {table} row with {key} = {key_value}")

    @staticmethod
    def _in(values: Sequence[Any]) -> str:
        """Placeholders for an IN (...) list of `values`."""
        return ",".join("?" * len(values))
