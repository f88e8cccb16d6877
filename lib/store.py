"""The durable store: SQLite in DATA_DIR (WAL), the only module that speaks SQL.

Row data is too big for SQLite rows: a list's rows live in `lists/<id>.parquet`, a job's files in
`jobs/<id>/`, an export run's plan in `exports/<id>/`; this module owns those paths too.
Secrets never enter the store: connections keep only non-secret fields.

Threading: one connection per thread (sqlite3 connections must not be shared across threads),
autocommit mode with explicit `BEGIN IMMEDIATE` transactions, and a generous busy timeout so the
Streamlit server's threads and the background workers queue instead of failing.
"""
from __future__ import annotations

import itertools
import json
import shutil
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lib import columns as C

DB_FILE = "app.sqlite3"
BUSY_TIMEOUT_MS = 30_000


def utc_now() -> str:
    """Timestamps are ISO 8601 UTC strings: sortable, readable in the database, unambiguous."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# --------------------------------------------------------------------------------------------
# Schema. Each entry moves the database from version i to i+1; never edit a released entry,
# append a new one. `PRAGMA user_version` holds the version.
# --------------------------------------------------------------------------------------------
_CACHE_COLUMNS: dict[str, str] = {  # SQL column -> Clearout column
    "safe_to_send": C.SAFE_TO_SEND, "status": C.STATUS, "reason": C.REASON,
    "suggested_email": C.SUGGESTED, "bounce_type": C.BOUNCE_TYPE, "disposable": C.DISPOSABLE,
    "free_account": C.FREE, "role_account": C.ROLE, "gibberish": C.GIBBERISH,
    "account": C.ACCOUNT, "domain": C.DOMAIN, "mx_record": C.MX_RECORD,
    "smtp_provider": C.SMTP_PROVIDER, "verified_at_ms": C.VERIFIED_AT, "time_taken_ms": C.TIME_TAKEN,
}

MIGRATIONS: tuple[str, ...] = (
    # v1: connections, audiences, lists, verification jobs and cache
    """
    CREATE TABLE connections (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        account_id TEXT NOT NULL,
        region TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('sandbox', 'live')),
        passcode_storage TEXT NOT NULL CHECK (passcode_storage IN ('memory', 'env')),
        created_at TEXT NOT NULL,
        last_checked_at TEXT,
        UNIQUE (mode, name),
        UNIQUE (mode, account_id, region)
    );
    CREATE TABLE audiences (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        connection_id INTEGER NOT NULL REFERENCES connections(id) ON DELETE CASCADE,
        event_name TEXT NOT NULL,
        from_date TEXT NOT NULL,
        to_date TEXT NOT NULL,
        filters_json TEXT NOT NULL DEFAULT '[]',
        created_at TEXT NOT NULL,
        last_pulled_at TEXT
    );
    CREATE TABLE lists (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('sandbox', 'live')),
        source_kind TEXT NOT NULL CHECK (source_kind IN ('csv', 'audience')),
        source TEXT NOT NULL,
        audience_id INTEGER REFERENCES audiences(id) ON DELETE SET NULL,
        connection_id INTEGER REFERENCES connections(id) ON DELETE SET NULL,
        state TEXT NOT NULL CHECK (state IN ('pulling', 'ready', 'failed')),
        error TEXT,
        email_column TEXT,
        identity_column TEXT,
        object_id_column TEXT,
        msg_email_column TEXT,
        rows INTEGER NOT NULL DEFAULT 0,
        valid_emails INTEGER NOT NULL DEFAULT 0,
        unique_emails INTEGER NOT NULL DEFAULT 0,
        duplicates INTEGER NOT NULL DEFAULT 0,
        missing_emails INTEGER NOT NULL DEFAULT 0,
        expected_rows INTEGER,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );
    CREATE TABLE verification_jobs (
        id INTEGER PRIMARY KEY,
        list_id INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
        state TEXT NOT NULL CHECK (state IN ('preparing', 'queued', 'uploading', 'verifying',
                                             'downloading', 'done', 'failed', 'cancelled')),
        clearout_list_id TEXT,
        upload_name TEXT,
        upload_attempts INTEGER NOT NULL DEFAULT 0,
        unique_emails INTEGER NOT NULL DEFAULT 0,
        cached INTEGER NOT NULL DEFAULT 0,
        syntax_invalid INTEGER NOT NULL DEFAULT 0,
        to_verify INTEGER NOT NULL DEFAULT 0,
        credits_spent INTEGER,
        percent REAL NOT NULL DEFAULT 0,
        error TEXT,
        cancel_requested INTEGER NOT NULL DEFAULT 0,
        lease_owner TEXT,
        lease_until REAL,
        created_at TEXT NOT NULL,
        started_at TEXT,
        updated_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE INDEX verification_jobs_state ON verification_jobs(state);
    CREATE INDEX verification_jobs_list ON verification_jobs(list_id);
    CREATE TABLE verification_cache (
        email TEXT PRIMARY KEY,
        safe_to_send TEXT, status TEXT NOT NULL, reason TEXT, suggested_email TEXT,
        bounce_type TEXT, disposable TEXT, free_account TEXT, role_account TEXT, gibberish TEXT,
        account TEXT, domain TEXT, mx_record TEXT, smtp_provider TEXT,
        verified_at_ms INTEGER, time_taken_ms INTEGER,
        verified_on TEXT NOT NULL,
        job_id INTEGER
    ) WITHOUT ROWID;
    """,
    # v2: export runs, their batches and per-profile changes, and the audit log of CRM writes
    """
    CREATE TABLE export_runs (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('export', 'undo', 'retry')),
        parent_run_id INTEGER REFERENCES export_runs(id),
        list_id INTEGER REFERENCES lists(id) ON DELETE SET NULL,
        job_id INTEGER,
        connection_id INTEGER REFERENCES connections(id) ON DELETE SET NULL,
        account_id TEXT NOT NULL,
        region TEXT NOT NULL,
        list_name TEXT NOT NULL,
        connection_name TEXT NOT NULL,
        actions_json TEXT NOT NULL,
        policy_json TEXT NOT NULL,
        method TEXT NOT NULL CHECK (method IN ('upload', 'subscribe')),
        mode TEXT NOT NULL CHECK (mode IN ('sandbox', 'live')),
        tag TEXT NOT NULL DEFAULT '',
        actor TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('planned', 'running', 'done', 'failed', 'cancelled')),
        planned_records INTEGER NOT NULL DEFAULT 0,
        batches_total INTEGER NOT NULL DEFAULT 0,
        processed INTEGER NOT NULL DEFAULT 0,
        unprocessed INTEGER NOT NULL DEFAULT 0,
        counts_json TEXT NOT NULL DEFAULT '{}',
        error TEXT,
        lease_owner TEXT,
        lease_until REAL,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT
    );
    CREATE TABLE export_batches (
        run_id INTEGER NOT NULL REFERENCES export_runs(id) ON DELETE CASCADE,
        batch_no INTEGER NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'done', 'failed')),
        first_row INTEGER NOT NULL DEFAULT 0,
        records INTEGER NOT NULL,
        processed INTEGER NOT NULL DEFAULT 0,
        unprocessed INTEGER NOT NULL DEFAULT 0,
        attempts INTEGER NOT NULL DEFAULT 0,
        error TEXT,
        finished_at TEXT,
        PRIMARY KEY (run_id, batch_no)
    ) WITHOUT ROWID;
    CREATE TABLE export_changes (
        run_id INTEGER NOT NULL REFERENCES export_runs(id) ON DELETE CASCADE,
        row_no INTEGER NOT NULL,
        batch_no INTEGER NOT NULL,
        -- ORs, not IN (...): each IN-list CHECK cost ~1.5 µs per inserted row (SQLite 3.40), the ORs ~0.
        key_type TEXT NOT NULL CHECK (key_type = 'identity' OR key_type = 'objectId' OR key_type = 'email'),
        key_value TEXT NOT NULL,
        email TEXT,
        unsubscribe INTEGER NOT NULL DEFAULT 0,
        prior_msg_email INTEGER,
        properties_json TEXT,
        outcome TEXT NOT NULL DEFAULT 'pending'
            CHECK (outcome = 'pending' OR outcome = 'ok' OR outcome = 'unprocessed' OR outcome = 'skipped'),
        error_code INTEGER,
        error TEXT,
        PRIMARY KEY (run_id, row_no)
    ) WITHOUT ROWID;
    CREATE INDEX export_runs_tag ON export_runs(tag);
    CREATE TABLE audit_log (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        account_id TEXT NOT NULL,
        region TEXT NOT NULL,
        endpoint TEXT NOT NULL,
        run_id INTEGER,
        batch_no INTEGER,
        records INTEGER NOT NULL,
        processed INTEGER NOT NULL DEFAULT 0,
        unprocessed INTEGER NOT NULL DEFAULT 0,
        outcome TEXT NOT NULL,
        detail TEXT
    );
    CREATE INDEX audit_log_run ON audit_log(run_id);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


# --------------------------------------------------------------------------------------------
# Records
# --------------------------------------------------------------------------------------------
def _from_row(cls: type, row: sqlite3.Row | None) -> Any:
    if row is None:
        return None
    keys = row.keys()
    return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in keys})


@dataclass(frozen=True)
class Connection:
    id: int
    name: str
    account_id: str
    region: str
    mode: str
    passcode_storage: str
    created_at: str
    last_checked_at: str | None


@dataclass(frozen=True)
class Audience:
    id: int
    name: str
    connection_id: int
    event_name: str
    from_date: str
    to_date: str
    filters_json: str
    created_at: str
    last_pulled_at: str | None

    @property
    def filters(self) -> list[dict[str, Any]]:
        return json.loads(self.filters_json)


@dataclass(frozen=True)
class ListRecord:
    id: int
    name: str
    mode: str
    source_kind: str
    source: str
    audience_id: int | None
    connection_id: int | None
    state: str
    error: str | None
    email_column: str | None
    identity_column: str | None
    object_id_column: str | None
    msg_email_column: str | None
    rows: int
    valid_emails: int
    unique_emails: int
    duplicates: int
    missing_emails: int
    created_at: str
    updated_at: str
    expected_rows: int | None = None  # an audience pull's count estimate: progress is rows / this


@dataclass(frozen=True)
class VerificationJob:
    id: int
    list_id: int
    state: str
    clearout_list_id: str | None
    upload_name: str | None
    upload_attempts: int
    unique_emails: int
    cached: int
    syntax_invalid: int
    to_verify: int
    credits_spent: int | None
    percent: float
    error: str | None
    cancel_requested: int
    lease_owner: str | None
    lease_until: float | None
    created_at: str
    started_at: str | None
    updated_at: str
    finished_at: str | None

    ACTIVE_STATES = ("uploading", "verifying", "downloading")
    FINAL_STATES = ("done", "failed", "cancelled")

    @property
    def is_final(self) -> bool:
        return self.state in self.FINAL_STATES


@dataclass(frozen=True)
class ExportRun:
    id: int
    kind: str
    parent_run_id: int | None
    list_id: int | None
    job_id: int | None
    connection_id: int | None
    account_id: str
    region: str
    list_name: str
    connection_name: str
    actions_json: str
    policy_json: str
    method: str
    actor: str
    state: str
    planned_records: int
    batches_total: int
    processed: int
    unprocessed: int
    counts_json: str
    error: str | None
    lease_owner: str | None
    lease_until: float | None
    created_at: str
    started_at: str | None
    finished_at: str | None
    mode: str = "sandbox"
    tag: str = ""  # written to CleverTap with the run's changes (undo checks it); retries share it

    ACTIVE_STATES = ("planned", "running")

    @property
    def actions(self) -> list[str]:
        return json.loads(self.actions_json)

    @property
    def policy(self) -> dict[str, Any]:
        return json.loads(self.policy_json)

    @property
    def counts(self) -> dict[str, Any]:
        return json.loads(self.counts_json)


@dataclass(frozen=True)
class ExportBatch:
    run_id: int
    batch_no: int
    state: str
    first_row: int
    records: int
    processed: int
    unprocessed: int
    attempts: int
    error: str | None
    finished_at: str | None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    at: str
    actor: str
    account_id: str
    region: str
    endpoint: str
    run_id: int | None
    batch_no: int | None
    records: int
    processed: int
    unprocessed: int
    outcome: str
    detail: str | None


class StoreError(RuntimeError):
    """The store cannot do what was asked (a missing record, a name already taken)."""


# --------------------------------------------------------------------------------------------
# The store
# --------------------------------------------------------------------------------------------
class Store:
    """All durable state of the app. Safe to share between threads."""

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / DB_FILE
        self._local = threading.local()
        self._migrate()

    # ---- plumbing -------------------------------------------------------------------------
    def _connection(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
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
        return self._connection().execute(sql, args).fetchone()

    def _all(self, sql: str, args: Sequence[Any] = ()) -> list[sqlite3.Row]:
        return self._connection().execute(sql, args).fetchall()

    def _migrate(self) -> None:
        with self._tx() as con:
            version = con.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} has schema version {version}, newer than this app "
                                 f"({SCHEMA_VERSION}): upgrade the app")
            for target in range(version, SCHEMA_VERSION):
                for statement in _statements(MIGRATIONS[target]):
                    con.execute(statement)
                con.execute(f"PRAGMA user_version={target + 1}")

    @property
    def schema_version(self) -> int:
        return self._one("PRAGMA user_version")[0]

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

    # ---- file locations -------------------------------------------------------------------
    def list_path(self, list_id: int) -> Path:
        return self.data_dir / "lists" / f"{list_id}.parquet"

    def job_dir(self, job_id: int) -> Path:
        return self.data_dir / "jobs" / str(job_id)

    def job_verdicts_path(self, job_id: int) -> Path:
        """A finished job's verdicts: `email` (normalised, unique), the 15 Clearout columns and
        the verdict source, for every address of the list (cached, new, or failed syntax)."""
        return self.job_dir(job_id) / "verdicts.parquet"

    def export_dir(self, run_id: int) -> Path:
        return self.data_dir / "exports" / str(run_id)

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
        return _from_row(Connection, self._one(
            "SELECT * FROM connections WHERE mode = ? AND account_id = ? AND region = ?",
            (mode, account_id, region)))

    def get_connection(self, connection_id: int) -> Connection | None:
        return _from_row(Connection, self._one("SELECT * FROM connections WHERE id = ?", (connection_id,)))

    def list_connections(self, mode: str) -> list[Connection]:
        rows = self._all("SELECT * FROM connections WHERE mode = ? ORDER BY name", (mode,))
        return [_from_row(Connection, r) for r in rows]

    def mark_connection_checked(self, connection_id: int) -> None:
        self._update("connections", "id", connection_id, {"last_checked_at": utc_now()},
                     ["last_checked_at"])

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
        return self.get_audience(cur.lastrowid)

    def get_audience(self, audience_id: int) -> Audience | None:
        return _from_row(Audience, self._one("SELECT * FROM audiences WHERE id = ?", (audience_id,)))

    def list_audiences(self, connection_id: int | None = None) -> list[Audience]:
        if connection_id is None:
            rows = self._all("SELECT * FROM audiences ORDER BY created_at DESC, id DESC")
        else:
            rows = self._all("SELECT * FROM audiences WHERE connection_id = ? ORDER BY created_at DESC, "
                             "id DESC", (connection_id,))
        return [_from_row(Audience, r) for r in rows]

    def mark_audience_pulled(self, audience_id: int) -> None:
        self._update("audiences", "id", audience_id, {"last_pulled_at": utc_now()}, ["last_pulled_at"])

    def delete_audience(self, audience_id: int) -> None:
        with self._tx() as con:
            con.execute("DELETE FROM audiences WHERE id = ?", (audience_id,))

    # ---- lists ----------------------------------------------------------------------------
    _LIST_FIELDS = ("name", "state", "error", "email_column", "identity_column", "object_id_column",
                    "msg_email_column", "rows", "valid_emails", "unique_emails", "duplicates",
                    "missing_emails", "expected_rows")

    def create_list(self, *, name: str, mode: str, source_kind: str, source: str,
                    state: str = "pulling", audience_id: int | None = None,
                    connection_id: int | None = None, expected_rows: int | None = None) -> ListRecord:
        now = utc_now()
        with self._tx() as con:
            cur = con.execute(
                """INSERT INTO lists (name, mode, source_kind, source, audience_id, connection_id,
                                      state, expected_rows, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                (name, mode, source_kind, source, audience_id, connection_id, state, expected_rows,
                 now, now))
        return self.get_list(cur.lastrowid)

    def update_list(self, list_id: int, **changes: Any) -> ListRecord:
        changes["updated_at"] = utc_now()
        self._update("lists", "id", list_id, changes, (*self._LIST_FIELDS, "updated_at"))
        return self.get_list(list_id)

    def get_list(self, list_id: int) -> ListRecord | None:
        return _from_row(ListRecord, self._one("SELECT * FROM lists WHERE id = ?", (list_id,)))

    def list_lists(self, mode: str, *, states: Sequence[str] | None = None) -> list[ListRecord]:
        sql, args = "SELECT * FROM lists WHERE mode = ?", [mode]
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args += list(states)
        rows = self._all(sql + " ORDER BY created_at DESC, id DESC", args)
        return [_from_row(ListRecord, r) for r in rows]

    def fail_unfinished_lists(self, mode: str, error: str) -> int:
        """Mark every list still 'pulling' in `mode` as failed (at startup: nothing can finish it)."""
        with self._tx() as con:
            cur = con.execute("UPDATE lists SET state = 'failed', error = ?, updated_at = ? "
                              "WHERE mode = ? AND state = 'pulling'", (error, utc_now(), mode))
        return cur.rowcount

    def delete_list(self, list_id: int) -> None:
        """Delete a list, its verification jobs and their files. Export history is kept."""
        job_ids = [r["id"] for r in self._all("SELECT id FROM verification_jobs WHERE list_id = ?",
                                              (list_id,))]
        with self._tx() as con:
            con.execute("DELETE FROM lists WHERE id = ?", (list_id,))
        self.list_path(list_id).unlink(missing_ok=True)
        for job_id in job_ids:
            shutil.rmtree(self.job_dir(job_id), ignore_errors=True)

    # ---- verification jobs ----------------------------------------------------------------
    _JOB_FIELDS = ("state", "clearout_list_id", "upload_name", "upload_attempts", "unique_emails",
                   "cached", "syntax_invalid", "to_verify", "credits_spent", "percent", "error",
                   "cancel_requested", "lease_owner", "lease_until", "started_at", "finished_at")

    def create_job(self, *, list_id: int, unique_emails: int, cached: int, syntax_invalid: int,
                   to_verify: int, state: str = "queued") -> VerificationJob:
        """A new job; 'preparing' keeps it away from workers until its files are written."""
        now = utc_now()
        with self._tx() as con:
            cur = con.execute(
                """INSERT INTO verification_jobs (list_id, state, unique_emails, cached, syntax_invalid,
                                                  to_verify, created_at, updated_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (list_id, state, unique_emails, cached, syntax_invalid, to_verify, now, now))
        return self.get_job(cur.lastrowid)

    def update_job(self, job_id: int, **changes: Any) -> VerificationJob:
        changes["updated_at"] = utc_now()
        self._update("verification_jobs", "id", job_id, changes, (*self._JOB_FIELDS, "updated_at"))
        return self.get_job(job_id)

    def get_job(self, job_id: int) -> VerificationJob | None:
        return _from_row(VerificationJob, self._one("SELECT * FROM verification_jobs WHERE id = ?",
                                                    (job_id,)))

    def list_jobs(self, *, states: Sequence[str] | None = None, list_id: int | None = None,
                  mode: str | None = None, limit: int | None = None) -> list[VerificationJob]:
        sql = "SELECT j.* FROM verification_jobs j JOIN lists l ON l.id = j.list_id WHERE 1 = 1"
        args: list[Any] = []
        if states:
            sql += f" AND j.state IN ({','.join('?' * len(states))})"
            args += list(states)
        if list_id is not None:
            sql += " AND j.list_id = ?"
            args.append(list_id)
        if mode is not None:
            sql += " AND l.mode = ?"
            args.append(mode)
        sql += " ORDER BY j.id DESC"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return [_from_row(VerificationJob, r) for r in self._all(sql, args)]

    def latest_done_job(self, list_id: int) -> VerificationJob | None:
        return _from_row(VerificationJob, self._one(
            "SELECT * FROM verification_jobs WHERE list_id = ? AND state = 'done' ORDER BY id DESC LIMIT 1",
            (list_id,)))

    def claim_jobs(self, owner: str, *, lease_seconds: float, max_active: int,
                   mode: str | None = None) -> list[VerificationJob]:
        """Lease the jobs this worker should advance now, in one transaction.

        Active jobs (uploading, verifying, downloading) whose lease is free or ours come first;
        queued jobs are promoted to 'uploading' while fewer than `max_active` are active across
        the whole store, which is how Clearout's three-lists limit is kept app-wide.
        `mode` limits both to lists of that mode: sandbox and live are different Clearout accounts.
        """
        now = time.time()
        until = now + lease_seconds
        in_mode, mode_args = ("", ()) if mode is None else \
            (" AND list_id IN (SELECT id FROM lists WHERE mode = ?)", (mode,))
        with self._tx() as con:
            active = con.execute(
                f"""SELECT id, lease_owner, lease_until FROM verification_jobs
                    WHERE state IN ({','.join('?' * len(VerificationJob.ACTIVE_STATES))}){in_mode}
                    ORDER BY id""", (*VerificationJob.ACTIVE_STATES, *mode_args)).fetchall()
            mine = [r["id"] for r in active
                    if r["lease_owner"] in (None, owner) or (r["lease_until"] or 0) < now]
            free_slots = max_active - len(active)
            if free_slots > 0:
                queued = con.execute(
                    "SELECT id FROM verification_jobs WHERE state = 'queued' AND cancel_requested = 0"
                    f"{in_mode} ORDER BY id LIMIT ?", (*mode_args, free_slots)).fetchall()
                for row in queued:
                    con.execute("UPDATE verification_jobs SET state = 'uploading', started_at = ?, "
                                "updated_at = ? WHERE id = ?", (utc_now(), utc_now(), row["id"]))
                    mine.append(row["id"])
            # Cancelled while still queued: final at once, nothing was spent.
            con.execute("UPDATE verification_jobs SET state = 'cancelled', finished_at = ?, updated_at = ? "
                        "WHERE state = 'queued' AND cancel_requested = 1", (utc_now(), utc_now()))
            for job_id in mine:
                con.execute("UPDATE verification_jobs SET lease_owner = ?, lease_until = ? WHERE id = ?",
                            (owner, until, job_id))
        return [self.get_job(job_id) for job_id in mine]

    def transition_job(self, job_id: int, from_states: Sequence[str], **changes: Any) -> bool:
        """Apply `changes` only while the job is in one of `from_states`; True if it was."""
        unknown = set(changes) - set(self._JOB_FIELDS)
        if unknown:
            raise StoreError(f"cannot update verification_jobs.{', '.join(sorted(unknown))}")
        changes["updated_at"] = utc_now()
        assignments = ", ".join(f"{name} = ?" for name in changes)
        with self._tx() as con:
            cur = con.execute(
                f"UPDATE verification_jobs SET {assignments} WHERE id = ? "
                f"AND state IN ({','.join('?' * len(from_states))})",
                [*changes.values(), job_id, *from_states])
        return cur.rowcount == 1

    def begin_upload(self, job_id: int) -> bool:
        """Count an upload attempt before sending it, unless the job was cancelled meanwhile.

        Counted first so that after a crash, a job in 'uploading' with attempts but no Clearout
        list id is known to have possibly reached Clearout (and is re-sent under its duplicate guard).
        """
        with self._tx() as con:
            cur = con.execute(
                "UPDATE verification_jobs SET upload_attempts = upload_attempts + 1, updated_at = ? "
                "WHERE id = ? AND state = 'uploading' AND cancel_requested = 0 AND clearout_list_id IS NULL",
                (utc_now(), job_id))
        return cur.rowcount == 1

    def cancel_job(self, job_id: int) -> VerificationJob | None:
        """Cancel at once when nothing can have reached Clearout yet; otherwise flag it for the worker."""
        now = utc_now()
        with self._tx() as con:
            cur = con.execute(
                "UPDATE verification_jobs SET state = 'cancelled', cancel_requested = 1, finished_at = ?, "
                "updated_at = ?, lease_owner = NULL WHERE id = ? AND (state IN ('preparing', 'queued') "
                "OR (state = 'uploading' AND upload_attempts = 0 AND clearout_list_id IS NULL))",
                (now, now, job_id))
            if cur.rowcount == 0:
                con.execute("UPDATE verification_jobs SET cancel_requested = 1, updated_at = ? "
                            "WHERE id = ? AND state IN ('uploading', 'verifying', 'downloading')",
                            (now, job_id))
        return self.get_job(job_id)

    def release_job_leases(self, owner: str) -> None:
        """A worker stopping cleanly hands its jobs over at once instead of at lease expiry."""
        with self._tx() as con:
            con.execute("UPDATE verification_jobs SET lease_owner = NULL, lease_until = NULL "
                        "WHERE lease_owner = ?", (owner,))

    def fail_stale_jobs(self, state: str, *, updated_before: str, error: str) -> int:
        """Fail jobs stuck in `state` since before `updated_before` (ISO UTC): nothing will finish them."""
        now = utc_now()
        with self._tx() as con:
            cur = con.execute("UPDATE verification_jobs SET state = 'failed', error = ?, finished_at = ?, "
                              "updated_at = ? WHERE state = ? AND updated_at < ?",
                              (error, now, now, state, updated_before))
        return cur.rowcount

    def unfinished_job_count(self, mode: str) -> int:
        return self._one(
            "SELECT COUNT(*) FROM verification_jobs j JOIN lists l ON l.id = j.list_id "
            "WHERE l.mode = ? AND j.state NOT IN ('done', 'failed', 'cancelled')", (mode,))[0]

    def reserved_credits(self, mode: str) -> int:
        """Credits that started jobs will still spend: those not yet handed to Clearout."""
        return self._one(
            "SELECT COALESCE(SUM(j.to_verify), 0) FROM verification_jobs j JOIN lists l ON l.id = j.list_id "
            "WHERE l.mode = ? AND (j.state IN ('preparing', 'queued') OR "
            "(j.state = 'uploading' AND j.clearout_list_id IS NULL))", (mode,))[0]

    # ---- verification cache ---------------------------------------------------------------
    def upsert_cache(self, verdicts: pd.DataFrame, *, verified_on: str | None = None,
                     job_id: int | None = None) -> int:
        """Store verdicts keyed by normalised email (column `email` + the 15 Clearout columns).

        `verified_on` (ISO UTC) defaults to now; it drives the freshness window, independently of
        Clearout's own "Verified At" column which can be missing.
        """
        # In key order: B-tree inserts into the big WITHOUT ROWID table then touch each page once
        # (~2.5x faster for a million rows than random order).
        frame = C.conform_clearout_columns(verdicts, keep=("email",)).sort_values("email", kind="stable")
        verified_on = verified_on or utc_now()
        values = [frame["email"].astype(object).where(frame["email"].notna(), None)]
        for name in _CACHE_COLUMNS.values():
            col = frame[name]
            if name == C.VERIFIED_AT:  # epoch ms: formatting a million timestamps costs seconds
                col = pd.Series(col.array.asi8, index=col.index).where(col.notna(), None)
            values.append(col.astype(object).where(col.notna(), None))
        rows = zip(*values, [verified_on] * len(frame), [job_id] * len(frame))
        placeholders = ", ".join("?" * (len(_CACHE_COLUMNS) + 3))
        with self._tx() as con:
            con.executemany(
                f"INSERT OR REPLACE INTO verification_cache (email, {', '.join(_CACHE_COLUMNS)}, "
                f"verified_on, job_id) VALUES ({placeholders})", rows)
        return len(frame)

    def cached_verdicts(self, emails: Iterable[str] | None = None, *,
                        fresh_since: str | None = None, include_unknown: bool = True) -> pd.DataFrame:
        """Cached verdicts as a frame (`email`, the 15 columns, `verified_on`).

        `emails` limits the answer to those addresses (joined through a temporary table, which
        stays fast for a million addresses); `fresh_since` (ISO UTC) drops older verdicts.
        """
        where, args = ["1 = 1"], []
        if fresh_since:
            where.append("c.verified_on >= ?")
            args.append(fresh_since)
        if not include_unknown:
            where.append("c.status <> ?")
            args.append(C.UNKNOWN)
        select = f"SELECT c.email, {', '.join('c.' + k for k in _CACHE_COLUMNS)}, c.verified_on " \
                 f"FROM verification_cache c"
        con = self._connection()
        scan_filter = None
        if emails is not None:
            emails = emails if isinstance(emails, (list, tuple, pd.Series)) else list(emails)
            if 4 * len(emails) >= self.cache_size():
                # Asking for much of the cache: scanning it beats filling the temporary table
                # (about 8 s per million inserts); a set is built once, checked per row in C.
                scan_filter = set(emails)
        # A deferred transaction: one consistent snapshot, and the temporary table's inserts are
        # committed once instead of once per row (autocommit). Temp tables never lock the database.
        con.execute("BEGIN")
        try:
            if emails is not None and scan_filter is None:
                con.execute("CREATE TEMP TABLE IF NOT EXISTS wanted_emails (email TEXT PRIMARY KEY) "
                            "WITHOUT ROWID")
                con.execute("DELETE FROM wanted_emails")
                con.executemany("INSERT OR IGNORE INTO wanted_emails VALUES (?)", ((e,) for e in emails))
                select += " JOIN wanted_emails w ON w.email = c.email"
            cursor = con.cursor()
            cursor.row_factory = None  # plain tuples: sqlite3.Row objects cost ~1 GB per million rows
            cursor.execute(f"{select} WHERE {' AND '.join(where)}", args)
            chunks = []
            while rows := cursor.fetchmany(_READ_CHUNK):
                if scan_filter is not None:
                    rows = [row for row in rows if row[0] in scan_filter]
                    if not rows:
                        continue
                chunks.append(_cache_chunk(rows))
            if emails is not None and scan_filter is None:
                con.execute("DELETE FROM wanted_emails")
        finally:
            con.execute("COMMIT")
        return pd.concat(chunks, ignore_index=True) if chunks else _cache_chunk([])

    def fresh_cached_emails(self, emails: Sequence[str] | None = None, *, fresh_since: str) -> list[str]:
        """Addresses with a reusable verdict: verified at or after `fresh_since` and not Unknown.

        Returns only addresses (no verdict columns), which is what planning a run needs. With
        `emails`, the answer is limited to them: a scan of the fresh part of the cache when the
        cache is not much bigger than the question (~0.1 s per 100k rows), else a temp-table join.
        """
        fresh = "c.verified_on >= ? AND c.status <> ?"
        con = self._connection()
        cursor = con.cursor()
        cursor.row_factory = None
        if emails is None or self.cache_size() <= 4 * len(emails):
            cursor.execute(f"SELECT c.email FROM verification_cache c WHERE {fresh}", (fresh_since, C.UNKNOWN))
            found = [row[0] for row in cursor.fetchall()]
            if emails is None or not found:
                return found
            # Arrow's hash lookup, not a Python set: a million addresses in ~0.05 s.
            found_array = pa.array(found, pa.string())
            keep = pc.is_in(found_array, value_set=pa.array(emails, pa.string()))
            return found_array.filter(keep).to_pylist()
        con.execute("BEGIN")
        try:
            con.execute("CREATE TEMP TABLE IF NOT EXISTS wanted_emails (email TEXT PRIMARY KEY) WITHOUT ROWID")
            con.execute("DELETE FROM wanted_emails")
            con.executemany("INSERT OR IGNORE INTO wanted_emails VALUES (?)", ((e,) for e in emails))
            cursor.execute(f"SELECT c.email FROM wanted_emails w JOIN verification_cache c ON c.email = w.email "
                           f"WHERE {fresh}", (fresh_since, C.UNKNOWN))
            found = [row[0] for row in cursor.fetchall()]
            con.execute("DELETE FROM wanted_emails")
        finally:
            con.execute("COMMIT")
        return found

    def cache_size(self) -> int:
        return self._one("SELECT COUNT(*) FROM verification_cache")[0]

    # ---- export runs ----------------------------------------------------------------------
    _RUN_FIELDS = ("state", "planned_records", "batches_total", "processed", "unprocessed",
                   "counts_json", "error", "lease_owner", "lease_until", "started_at", "finished_at")

    def create_export_run(self, *, kind: str, list_id: int | None, job_id: int | None,
                          connection: Connection, list_name: str, actions: list[str],
                          policy: dict[str, Any], method: str, actor: str,
                          parent_run_id: int | None = None, tag: str = "",
                          counts: dict[str, Any] | None = None) -> ExportRun:
        with self._tx() as con:
            cur = con.execute(
                """INSERT INTO export_runs (kind, parent_run_id, list_id, job_id, connection_id,
                       account_id, region, list_name, connection_name, actions_json, policy_json,
                       method, mode, tag, actor, state, counts_json, created_at)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'planned', ?, ?)""",
                (kind, parent_run_id, list_id, job_id, connection.id, connection.account_id,
                 connection.region, list_name, connection.name, json.dumps(actions),
                 json.dumps(policy), method, connection.mode, tag, actor, json.dumps(counts or {}),
                 utc_now()))
        return self.get_export_run(cur.lastrowid)

    def update_export_run(self, run_id: int, **changes: Any) -> ExportRun:
        if "counts" in changes:
            changes["counts_json"] = json.dumps(changes.pop("counts"))
        self._update("export_runs", "id", run_id, changes, self._RUN_FIELDS)
        return self.get_export_run(run_id)

    def get_export_run(self, run_id: int) -> ExportRun | None:
        return _from_row(ExportRun, self._one("SELECT * FROM export_runs WHERE id = ?", (run_id,)))

    def list_export_runs(self, *, states: Sequence[str] | None = None,
                         parent_run_id: int | None = None, mode: str | None = None,
                         tag: str | None = None, kinds: Sequence[str] | None = None) -> list[ExportRun]:
        sql, args = "SELECT * FROM export_runs WHERE 1 = 1", []
        for column, value in (("mode", mode), ("tag", tag)):
            if value is not None:
                sql += f" AND {column} = ?"
                args.append(value)
        if kinds:
            sql += f" AND kind IN ({','.join('?' * len(kinds))})"
            args += list(kinds)
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args += list(states)
        if parent_run_id is not None:
            sql += " AND parent_run_id = ?"
            args.append(parent_run_id)
        return [_from_row(ExportRun, r) for r in self._all(sql + " ORDER BY id DESC", args)]

    def add_export_changes(self, run_id: int, changes: pd.DataFrame, *, batch_size: int) -> int:
        """Record the planned per-profile changes of a run and create its batches.

        `changes` columns: key_type, key_value, email, unsubscribe (bool), prior_msg_email
        (bool or NA), properties_json (str or NA). Row order decides batches of `batch_size`;
        a batch is a contiguous range of row_no (which `export_batch_rows` relies on).
        """
        n = len(changes)
        counts = [min(batch_size, n - first) for first in range(0, n, batch_size)]

        def col(part: pd.DataFrame, name: str, as_int: bool = False) -> list[Any]:
            values = pa.array(part[name], from_pandas=True)  # NA, NaN and None become null -> None
            return (values.cast(pa.int64()) if as_int else values).to_pylist()

        with self._tx() as con:
            # In slices: Python objects for a million rows at once would cost several hundred MB.
            # One transaction, rows in primary-key order: a million rows take ~2.5 s, mostly SQLite's.
            for start in range(0, n, _WRITE_CHUNK):
                part = changes.iloc[start:start + _WRITE_CHUNK]
                row_no = np.arange(start, start + len(part))
                con.executemany(
                    """INSERT INTO export_changes (run_id, row_no, batch_no, key_type, key_value, email,
                           unsubscribe, prior_msg_email, properties_json) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    zip(itertools.repeat(run_id), row_no.tolist(), (row_no // batch_size).tolist(),
                        col(part, "key_type"), col(part, "key_value"), col(part, "email"),
                        col(part, "unsubscribe", as_int=True), col(part, "prior_msg_email", as_int=True),
                        col(part, "properties_json")))
            con.executemany("INSERT INTO export_batches (run_id, batch_no, state, first_row, records) "
                            "VALUES (?, ?, 'pending', ?, ?)",
                            [(run_id, b, b * batch_size, c) for b, c in enumerate(counts)])
            con.execute("UPDATE export_runs SET planned_records = ?, batches_total = ? WHERE id = ?",
                        (n, len(counts), run_id))
        return n

    def export_changes(self, run_id: int, *, batch_no: int | None = None,
                       outcomes: Sequence[str] | None = None, limit: int | None = None) -> pd.DataFrame:
        sql = ("SELECT c.row_no, c.batch_no, c.key_type, c.key_value, c.email, c.unsubscribe, "
               f"c.prior_msg_email, c.properties_json, {_OUTCOME} AS outcome, c.error_code, c.error "
               f"{_CHANGES_WITH_BATCH} WHERE c.run_id = ?")
        args: list[Any] = [run_id]
        if batch_no is not None:  # a batch is a row_no range: a primary-key range scan
            batch = "FROM export_batches WHERE run_id = ? AND batch_no = ?)"
            sql += f" AND c.row_no >= (SELECT first_row {batch} AND c.row_no < (SELECT first_row + records {batch}"
            args += [run_id, batch_no, run_id, batch_no]
        if outcomes:
            sql += f" AND {_OUTCOME} IN ({','.join('?' * len(outcomes))})"
            args += list(outcomes)
        sql += " ORDER BY c.row_no"
        if limit:
            sql += f" LIMIT {int(limit)}"
        return pd.read_sql_query(sql, self._connection(), params=args)

    def export_batches(self, run_id: int, *, states: Sequence[str] | None = None) -> list[ExportBatch]:
        sql, args = "SELECT * FROM export_batches WHERE run_id = ?", [run_id]
        if states:
            sql += f" AND state IN ({','.join('?' * len(states))})"
            args += list(states)
        return [_from_row(ExportBatch, r) for r in self._all(sql + " ORDER BY batch_no", args)]

    def finish_export_batch(self, run_id: int, batch_no: int, *, state: str, processed: int,
                            unprocessed: Sequence[tuple[int, int | None, str]] = (),
                            error: str | None = None, audit: dict[str, Any] | None = None,
                            skipped: Sequence[tuple[int, str]] = ()) -> None:
        """Record one batch's outcome, its records' outcomes and the audit entry atomically.

        `unprocessed` holds (row_no, code, error) for records the CRM refused and `skipped`
        (row_no, why) for records deliberately not sent; every other record of a 'done' batch is
        'ok'. Doing it in one transaction is what lets a restart trust that a 'done' batch was
        sent and recorded, and never send it again.

        'ok' is not written row by row: a pending record of a done batch reads as 'ok' (see
        `_OUTCOME`). Rewriting a thousand rows per batch cost more than the rest of the batch's
        bookkeeping together, and an export keeps 15 calls in flight.
        """
        self.finish_export_batches(run_id, [dict(batch_no=batch_no, state=state, processed=processed,
                                                 unprocessed=unprocessed, error=error, audit=audit,
                                                 skipped=skipped)])

    def finish_export_batches(self, run_id: int, batches: Sequence[dict[str, Any]]) -> None:
        """`finish_export_batch` for several batches in one transaction (each dict holds its arguments)."""
        now = utc_now()
        with self._tx() as con:
            for batch in batches:
                self._finish_batch(con, run_id, now=now, **batch)

    def _finish_batch(self, con: sqlite3.Connection, run_id: int, *, batch_no: int, state: str, processed: int,
                      now: str, unprocessed: Sequence[tuple[int, int | None, str]] = (),
                      error: str | None = None, audit: dict[str, Any] | None = None,
                      skipped: Sequence[tuple[int, str]] = ()) -> None:
        con.execute("""UPDATE export_batches SET state = ?, processed = ?, unprocessed = ?,
                       attempts = attempts + 1, error = ?, finished_at = ?
                       WHERE run_id = ? AND batch_no = ?""",
                    (state, processed, len(unprocessed), error, now, run_id, batch_no))
        if state == "done":
            con.executemany("UPDATE export_changes SET outcome = 'unprocessed', error_code = ?, error = ? "
                            "WHERE run_id = ? AND row_no = ?",
                            [(code, text, run_id, row_no) for row_no, code, text in unprocessed])
            con.executemany("UPDATE export_changes SET outcome = 'skipped', error = ? "
                            "WHERE run_id = ? AND row_no = ?",
                            [(why, run_id, row_no) for row_no, why in skipped])
        if audit is not None:
            self._insert_audit(con, run_id=run_id, batch_no=batch_no, **audit)

    def set_change_outcomes(self, run_id: int, row_nos: Sequence[int], outcome: str,
                            error: str | None = None) -> None:
        with self._tx() as con:
            con.executemany("UPDATE export_changes SET outcome = ?, error = ? WHERE run_id = ? AND row_no = ?",
                            [(outcome, error, run_id, r) for r in row_nos])

    def export_batch_rows(self, run_id: int, batch_no: int) -> list[tuple[Any, ...]]:
        """One batch's changes as plain tuples (row_no, key_type, key_value, unsubscribe,
        properties_json), in row order: what the apply runner sends, and no more (each column read
        costs the runner, which reads 150 batches a second)."""
        con = self._connection()
        batch = con.execute("SELECT first_row, records FROM export_batches WHERE run_id = ? AND batch_no = ?",
                            (run_id, batch_no)).fetchone()
        if batch is None:
            return []
        cursor = con.cursor()
        cursor.row_factory = None  # plain tuples: the runner reads a thousand rows per batch
        # A primary-key range scan: five times faster than looking rows up by batch_no.
        return cursor.execute(
            "SELECT row_no, key_type, key_value, unsubscribe, properties_json "
            "FROM export_changes WHERE run_id = ? AND row_no >= ? AND row_no < ? ORDER BY row_no",
            (run_id, batch["first_row"], batch["first_row"] + batch["records"])).fetchall()

    def export_progress(self, run_id: int) -> dict[str, int]:
        """Batches and records of a run so far: batches_done/_failed/_total, processed, unprocessed."""
        rows = self._all("SELECT state, COUNT(*) AS n, SUM(processed) AS p, SUM(unprocessed) AS u "
                         "FROM export_batches WHERE run_id = ? GROUP BY state", (run_id,))
        by_state = {r["state"]: r for r in rows}
        done = by_state.get("done")
        return {"batches_total": sum(r["n"] for r in rows),
                "batches_done": done["n"] if done else 0,
                "batches_failed": by_state["failed"]["n"] if "failed" in by_state else 0,
                "processed": sum(r["p"] or 0 for r in rows),
                "unprocessed": sum(r["u"] or 0 for r in rows)}

    def export_change_sample(self, run_id: int, size: int, *, outcome: str) -> pd.DataFrame:
        """A random sample of a run's changes with one outcome, unsubscribes first (the read-back
        check answers "are the undeliverable ones unsubscribed?")."""
        return pd.read_sql_query(
            "SELECT c.row_no, c.key_type, c.key_value, c.email, c.unsubscribe, c.prior_msg_email, "
            f"c.properties_json {_CHANGES_WITH_BATCH} WHERE c.run_id = ? AND {_OUTCOME} = ? "
            "ORDER BY c.unsubscribe DESC, RANDOM() LIMIT ?", self._connection(),
            params=[run_id, outcome, int(size)])

    def export_outcome_counts(self, run_id: int) -> dict[str, int]:
        """How many of a run's changes are pending, ok, unprocessed or skipped."""
        rows = self._all(f"SELECT {_OUTCOME} AS outcome, COUNT(*) AS n {_CHANGES_WITH_BATCH} "
                         "WHERE c.run_id = ? GROUP BY 1", (run_id,))
        return {r["outcome"]: r["n"] for r in rows}

    def set_change_priors(self, run_id: int, priors: Sequence[tuple[int, bool | None]]) -> None:
        """Record the MSG-email value a profile had before the run, read just before sending."""
        with self._tx() as con:
            con.executemany("UPDATE export_changes SET prior_msg_email = ? WHERE run_id = ? AND row_no = ?",
                            [(None if v is None else int(v), run_id, r) for r, v in priors])

    def claim_export_run(self, owner: str, *, lease_seconds: float, mode: str) -> ExportRun | None:
        """Lease the run this worker should apply now, or None.

        One run at a time per mode: CleverTap allows 15 concurrent uploads per account and a run
        uses them all. A run leased by another owner whose lease has not expired blocks the rest.
        """
        now = time.time()
        with self._tx() as con:
            rows = con.execute("SELECT id, lease_owner, lease_until FROM export_runs "
                               "WHERE state = 'running' AND mode = ? ORDER BY id", (mode,)).fetchall()
            if any(r["lease_owner"] not in (None, owner) and (r["lease_until"] or 0) >= now for r in rows):
                return None
            if not rows:
                return None
            run_id = rows[0]["id"]
            con.execute("UPDATE export_runs SET lease_owner = ?, lease_until = ? WHERE id = ?",
                        (owner, now + lease_seconds, run_id))
        return self.get_export_run(run_id)

    def renew_export_lease(self, run_id: int, owner: str, *, lease_seconds: float | None) -> bool:
        """Extend (or with None release) this owner's lease; False if another owner holds it."""
        with self._tx() as con:
            cur = con.execute(
                "UPDATE export_runs SET lease_owner = ?, lease_until = ? WHERE id = ? AND "
                "(lease_owner IS NULL OR lease_owner = ?)",
                (owner if lease_seconds is not None else None,
                 time.time() + lease_seconds if lease_seconds is not None else None, run_id, owner))
        return cur.rowcount == 1

    # ---- audit log ------------------------------------------------------------------------
    @staticmethod
    def _insert_audit(con: sqlite3.Connection, *, actor: str, account_id: str, region: str,
                      endpoint: str, records: int, outcome: str, processed: int = 0,
                      unprocessed: int = 0, run_id: int | None = None, batch_no: int | None = None,
                      detail: str | None = None) -> None:
        con.execute("""INSERT INTO audit_log (at, actor, account_id, region, endpoint, run_id, batch_no,
                           records, processed, unprocessed, outcome, detail)
                       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                    (utc_now(), actor, account_id, region, endpoint, run_id, batch_no, records,
                     processed, unprocessed, outcome, detail))

    def audit(self, **entry: Any) -> None:
        """Append one entry to the audit log of CRM writes (see `_insert_audit` for fields)."""
        with self._tx() as con:
            self._insert_audit(con, **entry)

    def audit_log(self, *, run_id: int | None = None, limit: int = 1000) -> list[AuditEntry]:
        sql, args = "SELECT * FROM audit_log", []
        if run_id is not None:
            sql += " WHERE run_id = ?"
            args.append(run_id)
        rows = self._all(sql + f" ORDER BY id DESC LIMIT {int(limit)}", args)
        return [_from_row(AuditEntry, r) for r in rows]


_READ_CHUNK = 100_000
_WRITE_CHUNK = 50_000

# A change's outcome as read: a record still 'pending' in a batch recorded as done was sent and
# accepted (finish_export_batch writes only the exceptions: unprocessed and skipped records).
_OUTCOME = "CASE WHEN c.outcome = 'pending' AND b.state = 'done' THEN 'ok' ELSE c.outcome END"
_CHANGES_WITH_BATCH = ("FROM export_changes c JOIN export_batches b "
                       "ON b.run_id = c.run_id AND b.batch_no = c.batch_no")


def _cache_chunk(rows: list[tuple]) -> pd.DataFrame:
    """Turn raw cache rows into the declared dtypes chunk by chunk, which keeps peak memory low."""
    names = ["email", *_CACHE_COLUMNS.values(), "verified_on"]
    raw = pd.DataFrame.from_records(rows, columns=names) if rows else \
        pd.DataFrame({n: pd.Series(dtype="string") for n in names})
    raw[C.VERIFIED_AT] = pd.to_datetime(pd.to_numeric(raw[C.VERIFIED_AT]), unit="ms", utc=True)
    frame = C.conform_clearout_columns(raw, keep=("email",))
    frame["email"] = frame["email"].astype("string[pyarrow]")
    frame["verified_on"] = raw["verified_on"].astype("string[pyarrow]").to_numpy()
    return frame


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (executescript would commit our transaction)."""
    return [s.strip() for s in script.split(";") if s.strip()]
