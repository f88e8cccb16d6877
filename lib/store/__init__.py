"""The durable store: SQLite in DATA_DIR, and the files beside it. The only package that speaks SQL.

Row data is too big for SQLite rows: a list's rows live in `lists/<id>.parquet`, a verification
job's files in `jobs/<id>/`; export plans are rows of `export_changes`. Secrets never enter the
store: connections keep only non-secret fields.

`Store` is the one facade; each aggregate lives in its own module (connections, lists, jobs, cache,
exports, audit, actions, tasks, balances, workers, activity) on top of `db.Database` (connections per
thread, transactions, migrations).
"""
from __future__ import annotations

from lib.store.actions import ActionsStore
from lib.store.activity import ActivityStore
from lib.store.audit import AuditStore
from lib.store.balances import BalancesStore
from lib.store.cache import CacheStore
from lib.store.connections import ConnectionsStore
from lib.store.exports import ExportsStore
from lib.store.jobs import JobsStore
from lib.store.lists import ListsStore, free_name
from lib.store.records import (Action, ActiveJobExists, Activity, Audience, AuditEntry, BalanceRecord, Connection,
                               DuplicateRun, ExportBatch, ExportRun, ListRecord, StoreError, Task, VerificationJob,
                               WorkerBeat, utc_now)
from lib.store.tasks import TasksStore
from lib.store.workers import WorkersStore

__all__ = ["Action", "ActiveJobExists", "Activity", "Audience", "AuditEntry", "BalanceRecord", "Connection",
           "DuplicateRun", "ExportBatch", "ExportRun", "ListRecord", "Store", "StoreError", "Task", "VerificationJob",
           "WorkerBeat", "free_name", "utc_now"]


class Store(ConnectionsStore, ListsStore, JobsStore, CacheStore, ExportsStore, AuditStore, ActionsStore, TasksStore,
            BalancesStore, WorkersStore, ActivityStore):
    """All durable state of the app. Safe to share between threads; one per process."""
