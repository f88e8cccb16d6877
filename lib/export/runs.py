"""Export runs: record a dry run's plan as a run for the worker, retry, resume, stop.

A run's state lives in the store batch by batch: `start_run` records every planned change and
creates the batches (row ranges of at most MAX_UPLOAD_BATCH records); the worker process applies
them (lib/export/applier.py). Pages only record requests here and show progress from the store.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq

from lib import actions
from lib.access import OPERATOR, User, require
from lib.clevertap import MAX_UPLOAD_BATCH
from lib.errors import UserError
from lib.export.plan import UNKNOWN_PRIOR_CHOICES, ExportPlan, confirmation_phrase
from lib.store import Connection, ExportRun, Store, utc_now

SUBSCRIBE_STATUS, RESUBSCRIBE_STATUS = "Unsubscribe", "Resubscribe"


class ExportError(UserError):
    """An export cannot start or continue as asked; the message says what to do."""


class GuardrailError(ExportError):
    """The plan unsubscribes more than the guardrail allows and was not confirmed."""


class PriorChoiceNeeded(ExportError):
    """Some states before cannot be known and no choice was made for what undo does with them."""


RECORD_HERE_MAX = 200_000  # changes recorded at once by Apply (~0.6 s); more are recorded by the worker


def start_run(store: Store, plan: ExportPlan, connection: Connection, *, user: User,
              confirmation: str = "", unknown_prior: str | None = None,
              batch_size: int = MAX_UPLOAD_BATCH) -> ExportRun:
    """Record a dry-run plan as a run and hand it to the worker (state 'running'); the run names `user`.

    Args:
        unknown_prior: what undo does with unsubscribes whose state before cannot be known
            (lib.export.plan.UNKNOWN_PRIOR_CHOICES); required when `plan.needs_prior_choice`, and kept
            with the run's policy with who chose it and when.

    Raises:
        NotAllowed: `user` is not an operator.
        GuardrailError: over the guardrail and `confirmation` is not `confirmation_phrase(plan)`.
        PriorChoiceNeeded: the plan needs `unknown_prior` and it was not given.
        ExportError: the plan has errors, sends nothing, or the list and the project are of
            different modes.
        DuplicateRun: the plan was applied already, or this list is being sent to this project now
            (the store checks it in the same step as the insert: two people applying together get
            one run between them).
    """
    require(user, OPERATOR, "Applying an export to CleverTap")
    if plan.errors:
        raise ExportError(plan.errors[0])
    if plan.summary.changes == 0:
        raise ExportError("Nothing to send: no profile matches these choices.")
    if plan.summary.over_guardrail and confirmation.strip() != confirmation_phrase(plan):
        raise GuardrailError(f"This plan unsubscribes {plan.summary.unsubscribe_pct:.1f}% of the list, over "
                             f"the {plan.summary.guardrail_pct:g}% guardrail: type "
                             f"“{confirmation_phrase(plan)}” to confirm.")
    if plan.needs_prior_choice and unknown_prior not in UNKNOWN_PRIOR_CHOICES:
        raise PriorChoiceNeeded("Choose what undo does with the addresses whose state before cannot be known "
                                "(see the dry run): leave them unsubscribed, or re-subscribe them too.")
    record = store.get_list(plan.list_id)
    if record is not None and record.mode != connection.mode:
        raise ExportError(f"This list belongs to {record.mode} mode and {connection.name} to "
                          f"{connection.mode} mode: choose a project of the same mode.")
    counts: dict[str, Any] = {"plan": {k: v for k, v in asdict(plan.summary).items() if k != "by_rule"},
                              "by_rule": plan.summary.by_rule}
    deferred = bool(plan.changes_files) and plan.summary.changes > RECORD_HERE_MAX
    if deferred:
        # The worker records a big plan (ten million changes take half a minute): the run waits in
        # 'planned' until then, and the one-active-run rule already counts it.
        counts.update(plan_files=[str(path) for path in plan.changes_files], batch_size=batch_size)
    policy = {**plan.policy, "subscribe_status": SUBSCRIBE_STATUS}
    if plan.needs_prior_choice:
        policy.update(unknown_prior=unknown_prior, unknown_prior_chosen_by=user.email,
                      unknown_prior_chosen_at=utc_now())
    run = store.create_export_run(kind="export", list_id=plan.list_id, job_id=plan.job_id, connection=connection,
                                  list_name=plan.list_name, actions=plan.actions, policy=policy,
                                  method=plan.method, actor=user.email, tag=plan.tag, counts=counts,
                                  runs_seen=plan.runs_seen)
    if not deferred:
        run = hand_over(store, run, plan.change_batches(), batch_size)
    actions.record(store, user, "export_applied", target=f"run {run.id}: {plan.list_name} → {connection.name}",
                   detail=f"{', '.join(plan.actions)}; {plan.summary.changes:,} profiles", mode=connection.mode)
    return run


def record_planned(store: Store, run: ExportRun) -> ExportRun:
    """In the worker: record the changes of a run applied from a plan in files, then let it run.

    Raises:
        ExportError: the plan's files are gone (the run fails: nothing was sent).
    """
    files = [Path(path) for path in run.counts.get("plan_files", [])]
    if not all(path.exists() for path in files):
        store.update_export_run(run.id, state="failed", finished_at=utc_now(),
                                error="The dry run's files are gone (they are kept a day): nothing was sent. "
                                      "Make the dry run again and apply it.")
        raise ExportError(f"The plan files of run {run.id} are gone.")
    batches = (batch.to_pandas() for path in files for batch in pq.ParquetFile(path).iter_batches(batch_size=100_000))
    return hand_over(store, run, batches, int(run.counts.get("batch_size", MAX_UPLOAD_BATCH)))


def hand_over(store: Store, run: ExportRun, changes: Iterable[pd.DataFrame],
              batch_size: int = MAX_UPLOAD_BATCH) -> ExportRun:
    """Record a run's changes (a chunk at a time: a ten-million-profile plan never sits in memory),
    then hand the run to the worker."""
    if not 1 <= batch_size <= MAX_UPLOAD_BATCH:
        raise ValueError(f"batch_size must be between 1 and {MAX_UPLOAD_BATCH}")
    try:
        store.add_export_changes(run.id, changes, batch_size=batch_size)
    except BaseException:
        store.update_export_run(run.id, state="failed", error="The plan could not be recorded; nothing was sent.")
        raise
    return store.update_export_run(run.id, state="running", started_at=utc_now())


def start_retry(store: Store, run_id: int, *, user: User, batch_size: int = MAX_UPLOAD_BATCH) -> ExportRun:
    """A 'retry' run that sends again the records CleverTap left unprocessed in run `run_id`.

    It carries the parent's tag and policy, so a retried unsubscribe is stamped like the others
    and undone with them.
    """
    require(user, OPERATOR, "Retrying an export")
    parent = finished_run(store, run_id)
    rows = store.export_changes(run_id, outcomes=["unprocessed"])
    if rows.empty:
        raise ExportError(f"Run {run_id} has no unprocessed records to retry.")
    connection = connection_of(store, parent)
    run = store.create_export_run(
        kind="retry", parent_run_id=parent.id, list_id=parent.list_id, job_id=parent.job_id,
        connection=connection, list_name=parent.list_name, actions=parent.actions, policy=parent.policy,
        method=parent.method, actor=user.email, tag=parent.tag,
        counts={"retry_of": parent.id})
    run = hand_over(store, run, [rows], batch_size)
    actions.record(store, user, "export_retried", target=f"run {run.id}: retry of run {parent.id}",
                   detail=f"{len(rows):,} records", mode=parent.mode)
    return run


def resume_run(store: Store, run_id: int, *, user: User) -> ExportRun:
    """Send the rest of a failed or stopped run (finished batches are not sent again)."""
    require(user, OPERATOR, "Resuming an export")
    run = store.get_export_run(run_id)
    if run is None or run.state not in ("failed", "cancelled"):
        raise ExportError(f"Run {run_id} is not stopped or failed: nothing to resume.")
    resumed = store.update_export_run(run_id, state="running", error=None, finished_at=None)
    actions.record(store, user, "export_resumed", target=f"run {run_id}: {run.list_name}", mode=run.mode)
    return resumed


def stop_run(store: Store, run_id: int, *, user: User) -> ExportRun:
    """Ask the worker to stop after the batches in flight; the run can be resumed later."""
    require(user, OPERATOR, "Stopping an export")
    run = store.get_export_run(run_id)
    if run is None or run.state not in ExportRun.ACTIVE_STATES:
        raise ExportError(f"Run {run_id} is not running.")
    stopped = store.update_export_run(run_id, state="cancelled", finished_at=utc_now())
    actions.record(store, user, "export_stopped", target=f"run {run_id}: {run.list_name}", mode=run.mode)
    return stopped


def finished_run(store: Store, run_id: int) -> ExportRun:
    run = store.get_export_run(run_id)
    if run is None:
        raise ExportError(f"There is no run {run_id}.")
    if run.state in ExportRun.ACTIVE_STATES:
        raise ExportError(f"Run {run_id} is still running: wait until it ends.")
    return run


def connection_of(store: Store, run: ExportRun) -> Connection:
    connection = store.get_connection(run.connection_id) if run.connection_id else None
    if connection is None:
        raise ExportError(f"The CleverTap project of run {run.id} ({run.connection_name}, {run.account_id}) "
                          "is no longer connected: connect it again on Connect.")
    return connection


def latest_run(store: Store, mode: str) -> ExportRun | None:
    """The run to show on Export: one still sending, else the most recent."""
    runs = store.list_export_runs(mode=mode)
    active = [r for r in runs if r.state in ExportRun.ACTIVE_STATES]
    return active[-1] if active else (runs[0] if runs else None)


def latest_active_run(store: Store, mode: str) -> ExportRun | None:
    runs = store.list_export_runs(mode=mode, states=list(ExportRun.ACTIVE_STATES))
    return runs[-1] if runs else None
