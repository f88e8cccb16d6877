"""The store's records: frozen dataclasses read from its rows, and the store's own error."""
from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, fields
from datetime import datetime, UTC
from typing import Any, TypeVar

from lib.errors import UserError

T = TypeVar("T")


def utc_now() -> str:
    """Timestamps are ISO 8601 UTC strings: sortable, readable in the database, unambiguous."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def from_row(cls: type[T], row: sqlite3.Row | None) -> T | None:
    """The record of `cls` a row holds (columns the record does not declare are ignored)."""
    if row is None:
        return None
    keys = row.keys()
    return cls(**{f.name: row[f.name] for f in fields(cls) if f.name in keys})  # type: ignore[arg-type]


def must_exist(record: T | None, message: str) -> T:
    """The record, which a caller needs to exist; StoreError (with `message`) when it does not."""
    if record is None:
        raise StoreError(message)
    return record


def from_rows(cls: type[T], rows: list[sqlite3.Row]) -> list[T]:
    return [record for record in (from_row(cls, row) for row in rows) if record is not None]

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
        loaded: list[dict[str, Any]] = json.loads(self.filters_json)
        return loaded


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
    distinct_addresses: int | None = None  # distinct normalised addresses, syntax errors included (lib.funnel)


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
    requested_by: str = ""
    upload_started_at: str | None = None  # an upload was sent then: it may have reached Clearout
    upload_bytes: int | None = None
    attention: str | None = None  # why a person must decide before this job moves (see lib.verification)
    attach_list_id: str | None = None  # a Clearout list id a person gave, for the worker to check and use
    reupload_confirmed_by: str | None = None  # who confirmed uploading again, credits at risk named
    parent_job_id: int | None = None  # set on a part: the job of the whole list
    part_no: int | None = None  # 1-based; a retried part is a new job with the same number
    parts: int = 0  # on a parent: how many parts its addresses were cut into

    ACTIVE_STATES = ("uploading", "verifying", "downloading")
    FINAL_STATES = ("done", "failed", "cancelled")
    UNFINISHED_STATES = ("preparing", "queued", "uploading", "verifying", "downloading", "parts")

    @property
    def is_part(self) -> bool:
        return self.parent_job_id is not None

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
        loaded: list[str] = json.loads(self.actions_json)
        return loaded

    @property
    def policy(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.policy_json)
        return loaded

    @property
    def counts(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.counts_json)
        return loaded


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


@dataclass(frozen=True)
class Action:
    """One thing a person did (lib.actions names them), with who and when."""
    id: int
    at: str
    actor_email: str
    actor_name: str
    actor_role: str
    action: str
    target: str
    detail: str
    mode: str | None


@dataclass(frozen=True)
class WorkerBeat:
    owner: str  # host:pid:start (lib.processes)
    mode: str
    started_at: str
    heartbeat_at: float  # epoch seconds
    stopped_at: str | None


@dataclass(frozen=True)
class Task:
    """A request a page made of the worker process (count an audience, preview an undo, ...)."""
    id: int
    kind: str
    mode: str
    args_json: str
    dedupe_key: str | None
    state: str  # queued | running | done | failed
    result_json: str | None
    error: str | None
    requested_by: str
    lease_owner: str | None
    lease_until: float | None
    created_at: str
    finished_at: str | None

    OPEN_STATES = ("queued", "running")

    @property
    def args(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.args_json)
        return loaded

    @property
    def result(self) -> dict[str, Any] | None:
        if self.result_json is None:
            return None
        loaded: dict[str, Any] = json.loads(self.result_json)
        return loaded

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES


@dataclass(frozen=True)
class BalanceRecord:
    mode: str
    available: int | None
    error: str | None
    fetched_at: float | None  # epoch seconds of the last answer (or failure)
    wanted_at: float | None   # a page asked for a fresh figure at this time


class StoreError(UserError):
    """The store cannot do what was asked (a missing record, a name already taken)."""


class ActiveJobExists(StoreError):
    """A verification of this list is in flight already: `job` (None if it ended meanwhile)."""

    def __init__(self, job: VerificationJob | None) -> None:
        when = f" since {job.created_at.replace('T', ' ')[11:16]} UTC" if job else ""
        who = f", started by {job.requested_by}" if job and job.requested_by else ""
        super().__init__(f"This list is already being verified{when}{who}: follow it below. Verifying it twice "
                         "would pay for the same addresses twice.")
        self.job = job


class DuplicateRun(StoreError):
    """An export run the store refuses: its plan was applied, its run undone, or its list is sending."""


@dataclass(frozen=True)
class Activity:
    """What a job's, run's or task's work is doing now (lib.activity), as the worker last wrote it."""
    subject: str              # "job:12", "run:5", "task:9"
    step: str | None          # what it does now, in words
    done: int | None          # progress within the step
    total: int | None
    wait_until: float | None  # epoch seconds: the next call waits until then (rate limit, backoff)
    wait_reason: str | None
    retries: int              # calls retried so far
    last_retry: str | None    # the latest, in words
    updated_at: float
