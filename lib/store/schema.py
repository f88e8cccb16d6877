"""The schema: each entry of MIGRATIONS moves the database from version i to i+1.

Never edit a released entry; append a new one. `PRAGMA user_version` holds the version.
"""
from __future__ import annotations

import sqlite3

from lib import columns as C

CACHE_COLUMNS: dict[str, str] = {  # SQL column -> Clearout column
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
    # v3: the worker process: its heartbeat, leases on pulls, requests pages make of it (tasks), and
    # the Clearout balance it keeps fresh for the pages
    """
    CREATE TABLE workers (
        owner TEXT PRIMARY KEY,
        mode TEXT NOT NULL,
        started_at TEXT NOT NULL,
        heartbeat_at REAL NOT NULL,
        stopped_at TEXT
    );
    ALTER TABLE lists ADD COLUMN lease_owner TEXT;
    ALTER TABLE lists ADD COLUMN lease_until REAL;
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        mode TEXT NOT NULL CHECK (mode IN ('sandbox', 'live')),
        args_json TEXT NOT NULL DEFAULT '{}',
        dedupe_key TEXT,
        state TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
        result_json TEXT,
        error TEXT,
        requested_by TEXT NOT NULL DEFAULT '',
        lease_owner TEXT,
        lease_until REAL,
        created_at TEXT NOT NULL,
        finished_at TEXT
    );
    CREATE UNIQUE INDEX tasks_one_open ON tasks(dedupe_key)
        WHERE dedupe_key IS NOT NULL AND state IN ('queued', 'running');
    CREATE INDEX tasks_state ON tasks(state);
    CREATE TABLE balances (
        mode TEXT PRIMARY KEY,
        available INTEGER,
        error TEXT,
        fetched_at REAL,
        wanted_at REAL
    );
    """,
    # v4: exactly once. Triggers, not unique indexes, so that duplicates a database may already hold
    # (the races these close) do not stop the upgrade; under SQLite's one writer at a time the check
    # and the insert are one step, across threads and processes.
    """
    ALTER TABLE verification_jobs ADD COLUMN requested_by TEXT NOT NULL DEFAULT '';
    ALTER TABLE verification_jobs ADD COLUMN upload_started_at TEXT;
    ALTER TABLE verification_jobs ADD COLUMN upload_bytes INTEGER;
    ALTER TABLE verification_jobs ADD COLUMN attention TEXT;
    ALTER TABLE verification_jobs ADD COLUMN attach_list_id TEXT;
    ALTER TABLE verification_jobs ADD COLUMN reupload_confirmed_by TEXT;
    CREATE TRIGGER verification_jobs_one_active_per_list BEFORE INSERT ON verification_jobs
    WHEN EXISTS (SELECT 1 FROM verification_jobs WHERE list_id = NEW.list_id
                 AND state IN ('preparing', 'queued', 'uploading', 'verifying', 'downloading'))
    BEGIN SELECT RAISE(ABORT, 'one active verification per list'); END;
    CREATE TRIGGER export_runs_one_run_per_plan BEFORE INSERT ON export_runs
    WHEN NEW.kind = 'export' AND EXISTS (SELECT 1 FROM export_runs WHERE kind = 'export' AND tag = NEW.tag)
    BEGIN SELECT RAISE(ABORT, 'one run per plan'); END;
    CREATE TRIGGER export_runs_one_undo_per_run BEFORE INSERT ON export_runs
    WHEN NEW.kind = 'undo' AND EXISTS (SELECT 1 FROM export_runs WHERE kind = 'undo'
                                       AND parent_run_id = NEW.parent_run_id AND state <> 'failed')
    BEGIN SELECT RAISE(ABORT, 'one undo per run'); END;
    CREATE TRIGGER export_runs_one_active_per_list_project BEFORE INSERT ON export_runs
    WHEN NEW.kind = 'export' AND EXISTS (SELECT 1 FROM export_runs WHERE kind = 'export'
                                         AND list_id = NEW.list_id AND connection_id = NEW.connection_id
                                         AND state IN ('planned', 'running'))
    BEGIN SELECT RAISE(ABORT, 'one active run per list and project'); END
    """,
    # v5: the named audit: who did what and when, for every action a person takes (audit_log stays the
    # record of CRM writes per batch)
    """
    CREATE TABLE actions (
        id INTEGER PRIMARY KEY,
        at TEXT NOT NULL,
        actor_email TEXT NOT NULL,
        actor_name TEXT NOT NULL DEFAULT '',
        actor_role TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL DEFAULT '',
        detail TEXT NOT NULL DEFAULT '',
        mode TEXT
    );
    CREATE INDEX actions_at ON actions(at)
    """,
    # v6: a list above the part size goes to Clearout as parts. The parent job waits in 'parts' while
    # its children (one per part, `part_no`; a retried part gets a new child) take the usual path.
    # The state CHECK grows, so the table is rebuilt (SQLite cannot alter a CHECK); nothing references
    # it, so dropping the old one cascades nowhere.
    """
    CREATE TABLE verification_jobs_v6 (
        id INTEGER PRIMARY KEY,
        list_id INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,
        state TEXT NOT NULL CHECK (state IN ('preparing', 'queued', 'uploading', 'verifying',
                                             'downloading', 'parts', 'done', 'failed', 'cancelled')),
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
        finished_at TEXT,
        requested_by TEXT NOT NULL DEFAULT '',
        upload_started_at TEXT,
        upload_bytes INTEGER,
        attention TEXT,
        attach_list_id TEXT,
        reupload_confirmed_by TEXT,
        parent_job_id INTEGER,
        part_no INTEGER,
        parts INTEGER NOT NULL DEFAULT 0
    );
    INSERT INTO verification_jobs_v6 (id, list_id, state, clearout_list_id, upload_name, upload_attempts,
        unique_emails, cached, syntax_invalid, to_verify, credits_spent, percent, error, cancel_requested,
        lease_owner, lease_until, created_at, started_at, updated_at, finished_at, requested_by,
        upload_started_at, upload_bytes, attention, attach_list_id, reupload_confirmed_by)
    SELECT id, list_id, state, clearout_list_id, upload_name, upload_attempts, unique_emails, cached,
        syntax_invalid, to_verify, credits_spent, percent, error, cancel_requested, lease_owner, lease_until,
        created_at, started_at, updated_at, finished_at, requested_by, upload_started_at, upload_bytes,
        attention, attach_list_id, reupload_confirmed_by FROM verification_jobs;
    DROP TABLE verification_jobs;
    ALTER TABLE verification_jobs_v6 RENAME TO verification_jobs;
    CREATE INDEX verification_jobs_state ON verification_jobs(state);
    CREATE INDEX verification_jobs_list ON verification_jobs(list_id);
    CREATE INDEX verification_jobs_parent ON verification_jobs(parent_job_id);
    CREATE TRIGGER verification_jobs_one_active_per_list BEFORE INSERT ON verification_jobs
    WHEN NEW.parent_job_id IS NULL AND EXISTS (
        SELECT 1 FROM verification_jobs WHERE list_id = NEW.list_id AND parent_job_id IS NULL
        AND state IN ('preparing', 'queued', 'uploading', 'verifying', 'downloading', 'parts'))
    BEGIN SELECT RAISE(ABORT, 'one active verification per list'); END
    """,
    # v7: the funnel's "distinct addresses" of a list (well-formed or not: what gets a verdict), so
    # Lists, Verify and Results show one number. NULL for lists made before: counted on first view.
    """
    ALTER TABLE lists ADD COLUMN distinct_addresses INTEGER
    """,
    # v8: what long work is doing now (lib.activity: a job's, run's or task's step, progress, waits and
    # retries, for the pages), and where an export change's state before the run came from (`list`,
    # `read` from CleverTap, `no_profile`: an address CleverTap has no profile for, so no state to read).
    """
    CREATE TABLE activity (
        subject TEXT PRIMARY KEY,
        step TEXT,
        done INTEGER,
        total INTEGER,
        wait_until REAL,
        wait_reason TEXT,
        retries INTEGER NOT NULL DEFAULT 0,
        last_retry TEXT,
        updated_at REAL NOT NULL
    );
    ALTER TABLE export_changes ADD COLUMN prior_source TEXT
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


def statements(script: str) -> list[str]:
    """Split a migration script into statements (executescript would commit our transaction).

    A trigger's body holds semicolons of its own: a piece is a statement once SQLite says it is
    complete.
    """
    found, pending = [], ""
    for piece in script.split(";"):
        pending += piece + ";"
        if sqlite3.complete_statement(pending):
            if pending.strip(" \n;"):
                found.append(pending.strip().rstrip(";").strip())
            pending = ""
    if pending.strip(" \n;"):
        found.append(pending.strip().rstrip(";").strip())
    return found
