"""Durable sandbox state in `state_dir` (SQLite, write-through), so a restart continues where it was.

Holds only mutations: the profile overlay, address-level subscription changes, the credits
ledger and bulk lists (their files live beside the database). The generated dataset itself is
recomputed from the seed, which is why a state_dir refuses to open under another seed. One
sandbox at a time uses a state_dir: `StateDirLock`, taken at start, refuses a second one.
"""
from __future__ import annotations

import fcntl
import json
import os
import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS generated_profiles (idx INTEGER PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS created_profiles (ordinal INTEGER PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS addresses (email TEXT PRIMARY KEY, subscribed INTEGER NOT NULL,
                                      seq INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS ledger (id INTEGER PRIMARY KEY AUTOINCREMENT, ts REAL NOT NULL,
                                   delta INTEGER NOT NULL, reason TEXT NOT NULL, ref TEXT);
CREATE TABLE IF NOT EXISTS lists (list_id TEXT PRIMARY KEY, data TEXT NOT NULL);
"""


class StateMismatch(RuntimeError):
    """The state_dir was written by a sandbox with another seed or profile count."""


class StateDirBusy(RuntimeError):
    """Another sandbox (in this process or another) is using the state_dir."""


LOCK_FILE = "sandbox.lock"


class StateDirLock:
    """An exclusive `flock` on `state_dir/sandbox.lock`: one sandbox per state_dir.

    Two sandboxes writing one SQLite file and one lists directory would each trust its own
    in-memory view and overwrite the other's changes. The lock is taken without waiting (the second
    sandbox fails at once) and the kernel drops it when its process dies, so a crash leaves no stale
    lock. flock locks belong to the open file, so a second Sandbox in the same process is refused too.
    """

    def __init__(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.path = directory / LOCK_FILE
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            owner = f" (process {holder})" if holder.isdigit() else ""
            raise StateDirBusy(f"state_dir {directory} is in use by another sandbox{owner}; stop it "
                               "or give this one another state_dir") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)  # for the message above, informational only
        self._fd: int | None = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class StateStore:
    """A small write-through SQLite store; every method is one short transaction."""

    def __init__(self, directory: Path, seed: int, profiles: int) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self._lock = threading.Lock()
        self._db = sqlite3.connect(directory / "sandbox.sqlite3", check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        identity = json.dumps({"seed": seed, "profiles": profiles})
        found = self.get_meta("dataset")
        if found is None:
            self.set_meta("dataset", identity)
        elif found != identity:
            raise StateMismatch(f"state_dir {directory} belongs to another dataset ({found}); "
                                "use the same --seed and --profiles, or another state_dir")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _write(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany(sql, rows)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def _read(self, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # meta
    def get_meta(self, key: str) -> str | None:
        rows = self._read("SELECT value FROM meta WHERE key = ?", (key,))
        return rows[0][0] if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._write("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [(key, value)])

    # profiles
    def save_profiles(self, generated: list[tuple[int, str]], created: list[tuple[int, str]],
                      seq: int) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO generated_profiles VALUES (?, ?)", generated)
                self._db.executemany("INSERT OR REPLACE INTO created_profiles VALUES (?, ?)", created)
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (str(seq),))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def save_addresses(self, rows: list[tuple[str, int, int]], seq: int) -> None:
        with self._lock:
            self._db.execute("BEGIN")
            try:
                self._db.executemany("INSERT OR REPLACE INTO addresses VALUES (?, ?, ?)", rows)
                self._db.execute("INSERT OR REPLACE INTO meta VALUES ('seq', ?)", (str(seq),))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def load_generated(self) -> list[tuple[int, str]]:
        return self._read("SELECT idx, data FROM generated_profiles")

    def load_created(self) -> list[tuple[int, str]]:
        return self._read("SELECT ordinal, data FROM created_profiles ORDER BY ordinal")

    def load_addresses(self) -> list[tuple[str, int, int]]:
        return self._read("SELECT email, subscribed, seq FROM addresses")

    # credits
    def add_ledger(self, ts: float, delta: int, reason: str, ref: str | None) -> None:
        self._write("INSERT INTO ledger (ts, delta, reason, ref) VALUES (?, ?, ?, ?)",
                    [(ts, delta, reason, ref)])

    def ledger_total(self) -> int:
        return int(self._read("SELECT COALESCE(SUM(delta), 0) FROM ledger")[0][0])

    # bulk lists
    def save_list(self, list_id: str, data: dict[str, Any]) -> None:
        self._write("INSERT OR REPLACE INTO lists VALUES (?, ?)", [(list_id, json.dumps(data))])

    def delete_list(self, list_id: str) -> None:
        self._write("DELETE FROM lists WHERE list_id = ?", [(list_id,)])

    def load_lists(self) -> list[dict[str, Any]]:
        return [json.loads(data) for (data,) in self._read("SELECT data FROM lists")]
