"""Export runs: start a planned export, apply it batch by batch in a worker, read back, retry, undo.

The store holds a run's state batch by batch: `start_run` records every planned change and creates
the batches; the runner sends pending batches (≤1000 records, at most 15 in flight) and records
each answered batch, its records' outcomes and an audit entry in the store, a few batches per
transaction (see `RunApplier._send`). A restart therefore resumes with the batches not yet recorded
and never resends a recorded one. A batch that was in flight, or answered but not yet recorded, when
the process died is sent again: re-sending the same profile values is harmless.

Undo re-subscribes only profiles that the run changed from subscribed (their previous MSG-email was
true, from the list or read just before sending) and that are still as the run left them, checked
with /1/profile.json just before each undo batch is sent:

* unsubscribed before the run (previous value false): never touched;
* previous value unknown (a big CSV list; see PRIOR_LOOKUP_MAX): never touched, and said so;
* subscribed again since (by the user, a form, an import): left alone;
* unsubscribed by a later export of ours: the stamp (STAMP_PROPERTY) names the other run, left alone.

What we cannot tell apart: an unsubscribe by CleverTap itself or an ESP (a bounce, an unsubscribe
link) after our run leaves our stamp in place, so it looks like ours and undo re-subscribes it. Undo
soon after the run to keep that window small. Lists without identities use the address-level
Subscribe API, which cannot stamp anything: undo there can only check that the address is still
unsubscribed. Appended properties are not undone: CleverTap's /1/upload cannot delete a property
and we do not read the values they replaced; they describe the address and are overwritten by the
next Append.
"""
from __future__ import annotations

import getpass
import json
import logging
import queue
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import pandas as pd

from lib import http
from lib.clevertap import BatchOutcome, CleverTapClient, CleverTapError, Profile, subscribe_body
from lib.export_plan import (BATCH_SIZE, KEY_EMAIL, KEY_IDENTITY, METHOD_SUBSCRIBE, METHOD_UPLOAD,
                             STAMP_PROPERTY, ExportOptions, ExportPlan, PlanError, build_plan,
                             changes_table, confirmation_phrase, load_verified_rows, resubscribe_data,
                             upload_body)
from lib.runtime import MissingSecretError
from lib.store import Connection, ExportRun, ListRecord, Store, utc_now

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 15          # CleverTap: 15 concurrent uploads per account, 429 above [UUP]
READ_CONCURRENCY = 3        # UNCONFIRMED limit of /1/profile.json; the old global figure [ERR]
PRIOR_LOOKUP_MAX = 1_000    # read MSG-email before sending for at most this many unknown profiles
READ_BACK_SAMPLE = 20
READ_BACK_RETRY_S = 2.0     # UNCONFIRMED how soon an upload is readable: one more look after this
UNDO_PREVIEW_MAX = 200      # an undo dry run checks the current state of up to this many profiles
LEASE_SECONDS = 30.0
RECORD_EVERY_S = 0.1        # answered batches wait at most this long to be recorded together
SUBSCRIBE_STATUS, RESUBSCRIBE_STATUS = "Unsubscribe", "Resubscribe"

SKIP_NOT_FOUND = "not found in CleverTap"
SKIP_SUBSCRIBED = "subscribed again since the run: left alone"
SKIP_OTHER = "unsubscribed again by another run since (the stamp names it): left alone"


class ExportError(Exception):
    """An export cannot start or continue as asked; the message says what to do."""


class GuardrailError(ExportError):
    """The plan unsubscribes more than the guardrail allows and was not confirmed."""


def default_actor() -> str:
    """Who is exporting, for the history: the OS user running the app."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def dashboard_help(region: str, *, undo: bool = False) -> str:
    """Where a person checks the result in CleverTap's own dashboard."""
    host = f"{region.lower()}.dashboard.clevertap.com"
    shows = "no longer shows Email as *Unsubscribed*" if undo else "shows Email as *Unsubscribed*"
    return (f"To see it in the CleverTap dashboard ({host}): open a profile and look at **Communication "
            f"preferences**, which {shows}; or **Segments → Find People → Reachability → Unsubscribed "
            "email** for everyone at once.")


# ---- planning -------------------------------------------------------------------------------------

def verified_lists(store: Store, mode: str) -> list[ListRecord]:
    """Ready lists of this mode with a finished verification: what can be exported."""
    return [r for r in store.list_lists(mode, states=["ready"])
            if r.email_column and store.latest_done_job(r.id) is not None]


def plan_export(store: Store, list_id: int, options: ExportOptions, *, guardrail_pct: float) -> ExportPlan:
    """The dry run of exporting a verified list with `options` (reads the list and its verdicts).

    Raises:
        PlanError: the list does not exist, has no email column or no finished verification.
    """
    record = store.get_list(list_id)
    job = store.latest_done_job(list_id) if record is not None else None
    if record is None or job is None or not record.email_column:
        raise PlanError("This list has no finished verification: verify it on Verify first.")
    merged = load_verified_rows(store.list_path(list_id), store.job_verdicts_path(job.id),
                                email_column=record.email_column,
                                key_columns=(record.identity_column, record.object_id_column,
                                             record.msg_email_column))
    return build_plan(merged, list_id=list_id, job_id=job.id, list_name=record.name,
                      email_column=record.email_column, identity_column=record.identity_column,
                      object_id_column=record.object_id_column, msg_email_column=record.msg_email_column,
                      options=options, guardrail_pct=guardrail_pct)


# ---- starting runs --------------------------------------------------------------------------------

def start_run(store: Store, plan: ExportPlan, connection: Connection, *, actor: str,
              confirmation: str = "", batch_size: int = BATCH_SIZE) -> ExportRun:
    """Record a dry-run plan as a run and hand it to the worker (state 'running').

    Raises:
        GuardrailError: over the guardrail and `confirmation` is not `confirmation_phrase(plan)`.
        ExportError: the plan has errors, sends nothing, was applied already, or the list and the
            project are of different modes.
    """
    if plan.errors:
        raise ExportError(plan.errors[0])
    if plan.summary.changes == 0:
        raise ExportError("Nothing to send: no profile matches these choices.")
    if plan.summary.over_guardrail and confirmation.strip() != confirmation_phrase(plan):
        raise GuardrailError(f"This plan unsubscribes {plan.summary.unsubscribe_pct:.1f}% of the list, over "
                             f"the {plan.summary.guardrail_pct:g}% guardrail: type "
                             f"“{confirmation_phrase(plan)}” to confirm.")
    record = store.get_list(plan.list_id)
    if record is not None and record.mode != connection.mode:
        raise ExportError(f"This list belongs to {record.mode} mode and {connection.name} to "
                          f"{connection.mode} mode: choose a project of the same mode.")
    applied = store.list_export_runs(tag=plan.tag, kinds=["export"])
    if applied:
        raise ExportError(f"This dry run was already applied as run {applied[-1].id}: make a new dry run.")
    counts = {"plan": {k: v for k, v in asdict(plan.summary).items() if k != "by_rule"},
              "by_rule": plan.summary.by_rule}
    policy = {**plan.policy, "subscribe_status": SUBSCRIBE_STATUS}
    run = store.create_export_run(kind="export", list_id=plan.list_id, job_id=plan.job_id, connection=connection,
                                  list_name=plan.list_name, actions=plan.actions, policy=policy,
                                  method=plan.method, actor=actor or default_actor(), tag=plan.tag, counts=counts)
    return _hand_over(store, run, plan.changes, batch_size)


def _hand_over(store: Store, run: ExportRun, changes: pd.DataFrame, batch_size: int = BATCH_SIZE) -> ExportRun:
    if not 1 <= batch_size <= BATCH_SIZE:
        raise ValueError(f"batch_size must be between 1 and {BATCH_SIZE}")
    try:
        store.add_export_changes(run.id, changes, batch_size=batch_size)
    except BaseException:
        store.update_export_run(run.id, state="failed", error="The plan could not be recorded; nothing was sent.")
        raise
    return store.update_export_run(run.id, state="running", started_at=utc_now())


def start_retry(store: Store, run_id: int, *, actor: str, batch_size: int = BATCH_SIZE) -> ExportRun:
    """A 'retry' run that sends again the records CleverTap left unprocessed in run `run_id`.

    It carries the parent's tag and policy, so a retried unsubscribe is stamped like the others
    and undone with them.
    """
    parent = _finished_run(store, run_id)
    rows = store.export_changes(run_id, outcomes=["unprocessed"])
    if rows.empty:
        raise ExportError(f"Run {run_id} has no unprocessed records to retry.")
    connection = _connection_of(store, parent)
    run = store.create_export_run(
        kind="retry", parent_run_id=parent.id, list_id=parent.list_id, job_id=parent.job_id,
        connection=connection, list_name=parent.list_name, actions=parent.actions, policy=parent.policy,
        method=parent.method, actor=actor or default_actor(), tag=parent.tag,
        counts={"retry_of": parent.id})
    return _hand_over(store, run, rows, batch_size)


def resume_run(store: Store, run_id: int) -> ExportRun:
    """Send the rest of a failed or stopped run (finished batches are not sent again)."""
    run = store.get_export_run(run_id)
    if run is None or run.state not in ("failed", "cancelled"):
        raise ExportError(f"Run {run_id} is not stopped or failed: nothing to resume.")
    return store.update_export_run(run_id, state="running", error=None, finished_at=None)


def stop_run(store: Store, run_id: int) -> ExportRun:
    """Ask the worker to stop after the batches in flight; the run can be resumed later."""
    run = store.get_export_run(run_id)
    if run is None or run.state not in ExportRun.ACTIVE_STATES:
        raise ExportError(f"Run {run_id} is not running.")
    return store.update_export_run(run_id, state="cancelled", finished_at=utc_now())


def _finished_run(store: Store, run_id: int) -> ExportRun:
    run = store.get_export_run(run_id)
    if run is None:
        raise ExportError(f"There is no run {run_id}.")
    if run.state in ExportRun.ACTIVE_STATES:
        raise ExportError(f"Run {run_id} is still running: wait until it ends.")
    return run


def _connection_of(store: Store, run: ExportRun) -> Connection:
    connection = store.get_connection(run.connection_id) if run.connection_id else None
    if connection is None:
        raise ExportError(f"The CleverTap project of run {run.id} ({run.connection_name}, {run.account_id}) "
                          "is no longer connected: connect it again on Connect.")
    return connection


# ---- reading profiles -----------------------------------------------------------------------------

def read_profile(client: CleverTapClient, key_type: str, key_value: str) -> Profile | None:
    """The profile a change addresses, by the same key the change was sent with."""
    if key_type == KEY_IDENTITY:
        return client.get_profile(identity=key_value)
    if key_type == KEY_EMAIL:
        return client.get_profile(email=key_value)
    return client.get_profile(object_id=key_value)


def read_profiles(client: CleverTapClient, keys: Sequence[tuple[str, str]]) -> list[Profile | None]:
    """Profiles for (key_type, key_value) pairs, READ_CONCURRENCY at a time, in order."""
    if not keys:
        return []
    with ThreadPoolExecutor(max_workers=READ_CONCURRENCY, thread_name_prefix="clevertap-read") as pool:
        return list(pool.map(lambda key: read_profile(client, *key), keys))


def undo_decision(profile: Profile | None, *, method: str, tag: str) -> str | None:
    """None when an undo may re-subscribe this profile now, else why it is left alone."""
    if profile is None:
        return SKIP_NOT_FOUND
    if profile.msg_email is not False:
        return SKIP_SUBSCRIBED
    if method == METHOD_UPLOAD and profile.properties.get(STAMP_PROPERTY) != tag:
        return SKIP_OTHER
    return None


# ---- the runner -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Batch:
    """A pending batch as read from the store: its encoded payload, or for a runner that checks
    profiles first (undo), which decides what to send only just before sending, its rows."""
    batch_no: int
    row_nos: tuple[int, ...]
    rows: list[tuple[Any, ...]] | None  # Store.export_batch_rows, kept only when checking first
    body: bytes
    count: int


@dataclass(frozen=True)
class _BatchResult:
    batch_no: int
    row_nos: tuple[int, ...]  # rows sent, in payload order
    skipped: tuple[tuple[int, str], ...]
    outcome: BatchOutcome | None
    error: str | None


class RunApplier:
    """Sends one run's pending batches with a bounded window and records each in the store.

    `stop` ends the run early (after the batches in flight are recorded; the run stays 'running'
    so a later worker resumes it). `on_batch(batch_no)` is called after each batch is recorded.
    """

    def __init__(self, store: Store, run_id: int, client: CleverTapClient, *, concurrency: int = MAX_IN_FLIGHT,
                 stop: threading.Event | None = None, owner: str | None = None,
                 on_batch: Callable[[int], None] | None = None, read_back_sample: int = READ_BACK_SAMPLE) -> None:
        self.store = store
        self.run = store.get_export_run(run_id)
        if self.run is None:
            raise ExportError(f"There is no run {run_id}.")
        self.client = client
        self.checks_first = bool(self.run.policy.get("check_before_write"))
        # Undo batches read every profile first: their pace is the read limit, not the upload one.
        self.concurrency = 1 if self.checks_first else max(1, min(MAX_IN_FLIGHT, concurrency))
        self.stop = stop or threading.Event()
        self._halt = threading.Event()
        self.owner = owner
        self.on_batch = on_batch
        self.read_back_sample = read_back_sample
        self._status = self.run.policy.get("subscribe_status", SUBSCRIBE_STATUS)
        self._endpoint = "/1/subscribe" if self.run.method == METHOD_SUBSCRIBE else "/1/upload"

    def apply(self) -> ExportRun:
        """Send what is left of the run; returns the run as the store then has it."""
        if self.run.kind == "export":
            self._read_priors()
        pending = [b.batch_no for b in self.store.export_batches(self.run.id, states=("pending", "failed"))]
        failure = self._send(pending)
        run = self.store.get_export_run(self.run.id)
        if failure is not None:
            return self.store.update_export_run(self.run.id, state="failed", error=failure, finished_at=utc_now())
        if self.stop.is_set() or run.state != "running":
            return run
        if self.read_back_sample:
            # Before 'done', so a finished run always shows its check (pages stop polling at 'done').
            try:
                record_read_back(self.store, run, self.client, sample=self.read_back_sample)
            except CleverTapError as exc:
                log.warning("read-back of run %s failed: %s", run.id, exc.message)
        progress = self.store.export_progress(self.run.id)
        return self.store.update_export_run(self.run.id, state="done", error=None, finished_at=utc_now(),
                                            processed=progress["processed"], unprocessed=progress["unprocessed"])

    # -- prior state -------------------------------------------------------------------------------
    def _read_priors(self) -> None:
        """Read MSG-email before the first batch for unsubscribes whose previous value is unknown.

        Only before anything is sent (a later read would see our own write), and only for up to
        PRIOR_LOOKUP_MAX profiles; above that the previous value stays unknown and undo leaves
        those profiles alone.
        """
        counts = self.run.counts
        if counts.get("prior_lookup") or self.store.export_progress(self.run.id)["batches_done"]:
            return
        plan = counts.get("plan", {})
        unknown = plan.get("to_unsubscribe", 0) - plan.get("prior_known", 0)
        if unknown <= 0:
            state = "not needed"
        elif unknown > PRIOR_LOOKUP_MAX:
            state = f"skipped: {unknown:,} profiles is more than {PRIOR_LOOKUP_MAX:,}"
        else:
            changes = self.store.export_changes(self.run.id)
            todo = changes[changes["unsubscribe"].astype(bool) & changes["prior_msg_email"].isna()]
            profiles = read_profiles(self.client, list(zip(todo["key_type"], todo["key_value"])))
            self.store.set_change_priors(self.run.id, [
                (int(r), None if p is None else p.msg_email) for r, p in zip(todo["row_no"], profiles)])
            state = f"read {len(todo):,} from CleverTap"
        self.run = self.store.update_export_run(self.run.id, counts={**counts, "prior_lookup": state})

    # -- sending -----------------------------------------------------------------------------------
    def _send(self, pending: list[int]) -> str | None:
        """Send `pending` batches with `concurrency` calls in flight; the first error message, if any.

        This thread reads and encodes the batches and hands them to `concurrency` sending threads,
        keeping one more per sender queued, so a sender whose call returns starts the next one at
        once: the slots stay busy and a sender's own work is the HTTP call alone. Queued batches
        are not in flight (only `concurrency` threads send); after a failure or a stop they return
        unsent and stay pending.

        Answered batches are recorded together, one transaction per `concurrency` answers or per
        RECORD_EVERY_S, whichever comes first (at once after a failure, a stop or the last answer):
        a transaction per batch cost more than the rest of the runner's bookkeeping. A batch is
        recorded only after CleverTap answered it, so a recorded batch is never sent again. The
        crash window: batches answered in the last RECORD_EVERY_S before the process dies are not
        recorded and are sent again on resume, which re-sends the same values (harmless; an undo
        batch re-reads its profiles first). Nothing answered is recorded as anything else.
        """
        failure: str | None = None
        batches = iter(pending)
        answered: queue.SimpleQueue[Future[_BatchResult | None]] = queue.SimpleQueue()
        outstanding = 0
        unrecorded: list[_BatchResult] = []
        oldest = 0.0
        next_check = time.monotonic() + 0.5
        self._halt.clear()
        try:
            with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="export-batch") as pool:
                while True:
                    while failure is None and not self.stop.is_set() and outstanding < 2 * self.concurrency:
                        batch_no = next(batches, None)
                        if batch_no is None:
                            break
                        pool.submit(self._send_batch, self._prepare(batch_no)).add_done_callback(answered.put)
                        outstanding += 1
                    if not outstanding:
                        self._record(unrecorded)
                        return failure
                    # Woken at least twice a second: the lease is renewed and a stop is seen even
                    # while slow batches (an undo reads every profile first) are in flight.
                    wait_s = max(0.0, oldest + RECORD_EVERY_S - time.monotonic()) if unrecorded else 0.5
                    futures = _take(answered, min(wait_s, 0.5))
                    outstanding -= len(futures)
                    for result in (future.result() for future in futures):
                        if result is None:
                            continue
                        if not unrecorded:
                            oldest = time.monotonic()
                        unrecorded.append(result)
                        if result.error is not None:
                            failure = failure or result.error
                            self._halt.set()
                    if unrecorded and (failure is not None or self.stop.is_set() or not outstanding
                                       or len(unrecorded) >= self.concurrency
                                       or time.monotonic() >= oldest + RECORD_EVERY_S):
                        recording, unrecorded = unrecorded, []
                        self._record(recording)
                    if time.monotonic() >= next_check:
                        next_check = time.monotonic() + 0.5
                        self._check_still_wanted()
        finally:
            self._halt.set()  # whatever ends the loop (even an exception), queued batches stay unsent

    def _record(self, results: list[_BatchResult]) -> None:
        """Record answered batches in one transaction, then tell `on_batch` about each."""
        if not results:
            return
        self.store.finish_export_batches(self.run.id, [self._finish_args(r) for r in results])
        if self.on_batch is not None:
            for result in results:
                self.on_batch(result.batch_no)

    def _check_still_wanted(self) -> None:
        """Stop when the run was stopped from a page, or another worker took it over."""
        if self.store.get_export_run(self.run.id).state != "running":
            self.stop.set()
        elif self.owner is not None and not self.store.renew_export_lease(self.run.id, self.owner,
                                                                          lease_seconds=LEASE_SECONDS):
            self.stop.set()

    def _prepare(self, batch_no: int) -> _Batch:
        rows = self.store.export_batch_rows(self.run.id, batch_no)
        row_nos = tuple(r[0] for r in rows)
        if self.checks_first:
            return _Batch(batch_no, row_nos, rows, b"", 0)
        return _Batch(batch_no, row_nos, None, *self._encode(rows))

    def _encode(self, rows: list[tuple[Any, ...]]) -> tuple[bytes, int]:
        if self.run.method == METHOD_SUBSCRIBE:
            return subscribe_body([r[2] for r in rows], self._status), len(rows)
        return upload_body((r[1:] for r in rows), self.run.tag)  # (key_type, key_value, unsubscribe, properties)

    def _send_batch(self, batch: _Batch) -> _BatchResult | None:
        if self._halt.is_set() or self.stop.is_set():
            return None  # queued behind a failure or a stop: not sent, stays pending
        batch_no, row_nos, body, count = batch.batch_no, batch.row_nos, batch.body, batch.count
        skipped: list[tuple[int, str]] = []
        try:
            if batch.rows is not None:
                rows = batch.rows
                profiles = read_profiles(self.client, [(r[1], r[2]) for r in rows])
                decisions = [undo_decision(p, method=self.run.method, tag=self.run.policy.get("undo_tag", ""))
                             for p in profiles]
                skipped = [(r[0], why) for r, why in zip(rows, decisions) if why is not None]
                rows = [r for r, why in zip(rows, decisions) if why is None]
                row_nos = tuple(r[0] for r in rows)
                body, count = self._encode(rows) if rows else (b"", 0)
            if not row_nos:
                outcome = BatchOutcome(index=batch_no, start=0, sent=0, processed=0, unprocessed=(), status="success")
            elif self.run.method == METHOD_SUBSCRIBE:
                outcome = self.client.subscribe_encoded(body, count, index=batch_no)
            else:
                outcome = self.client.upload_encoded(body, count, index=batch_no)
        except CleverTapError as exc:
            return _BatchResult(batch_no, row_nos, tuple(skipped), None, exc.message)
        return _BatchResult(batch_no, row_nos, tuple(skipped), outcome, None)

    def _finish_args(self, result: _BatchResult) -> dict[str, Any]:
        """The arguments of `Store.finish_export_batch` for one sent batch."""
        audit = {"actor": self.run.actor, "account_id": self.run.account_id, "region": self.run.region,
                 "endpoint": self._endpoint, "records": len(result.row_nos)}
        if result.outcome is None:
            return dict(batch_no=result.batch_no, state="failed", processed=0, error=result.error,
                        audit={**audit, "outcome": "error", "detail": result.error})
        outcome = result.outcome
        unprocessed = [(result.row_nos[u.record_index], u.code, u.error) for u in outcome.unprocessed
                       if u.record_index is not None and 0 <= u.record_index < len(result.row_nos)]
        detail = f"{self.run.kind} run {self.run.id}, batch {result.batch_no}"
        if result.skipped:
            detail += f", {len(result.skipped)} left alone after checking"
        return dict(batch_no=result.batch_no, state="done", processed=outcome.processed, unprocessed=unprocessed,
                    skipped=result.skipped,
                    audit={**audit, "processed": outcome.processed, "unprocessed": len(outcome.unprocessed),
                           "outcome": outcome.status or "success", "detail": detail} if result.row_nos else None)


def _take(answered: queue.SimpleQueue[Any], timeout: float) -> list[Any]:
    """Everything in `answered` now, waiting up to `timeout` for the first item."""
    try:
        items = [answered.get(timeout=timeout) if timeout > 0 else answered.get_nowait()]
    except queue.Empty:
        return []
    while True:
        try:
            items.append(answered.get_nowait())
        except queue.Empty:
            return items


# ---- the worker -----------------------------------------------------------------------------------

class ExportWorker:
    """One thread per process applying 'running' runs of one mode, one at a time, from the store."""

    def __init__(self, store: Store, client_for: Callable[[ExportRun], CleverTapClient], *, mode: str,
                 poll_seconds: float = 1.0, concurrency: int = MAX_IN_FLIGHT) -> None:
        self.store = store
        self.client_for = client_for
        self.mode = mode
        self.poll_seconds = poll_seconds
        self.concurrency = concurrency
        self.owner = f"export-{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> ExportWorker:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="export-worker", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                worked = self.run_once()
            except Exception:  # noqa: BLE001 - a worker must outlive one bad run; the log has the trace
                log.exception("export worker: unexpected error")
                worked = False
            if not worked:
                self._stop.wait(self.poll_seconds)

    def run_once(self) -> bool:
        """Apply the next running run, if any; True when one was worked on."""
        run = self.store.claim_export_run(self.owner, lease_seconds=LEASE_SECONDS, mode=self.mode)
        if run is None:
            return False
        try:
            client = self.client_for(run)
        except (MissingSecretError, ExportError) as exc:
            waiting = f"Waiting: {exc} The run resumes by itself then."
            if run.error != waiting:
                self.store.update_export_run(run.id, error=waiting)
            self.store.renew_export_lease(run.id, self.owner, lease_seconds=None)
            return False
        try:
            if run.error:
                self.store.update_export_run(run.id, error=None)
            RunApplier(self.store, run.id, client, concurrency=self.concurrency, stop=self._stop,
                       owner=self.owner).apply()
        except Exception:
            log.exception("export run %s failed", run.id)
            self.store.update_export_run(run.id, state="failed", finished_at=utc_now(),
                                         error="The export stopped on an unexpected error (see the server "
                                               "log). Finished batches are recorded: resume to send the rest.")
        finally:
            client.close()
            self.store.renew_export_lease(run.id, self.owner, lease_seconds=None)
        return True


def start_export_worker(runtime: Any) -> ExportWorker:
    """Start this process's export worker (called once by lib.runtime._start_workers)."""
    store = runtime.store

    def client_for(run: ExportRun) -> CleverTapClient:
        return runtime.clevertap_client(_connection_of(store, run))

    worker = ExportWorker(store, client_for, mode=runtime.mode).start()
    runtime.services["export"] = worker
    return worker


# ---- read-back ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ReadBack:
    key_type: str
    key_value: str
    expected: str
    found: str
    confirmed: bool


def _expected(run: ExportRun, unsubscribe: bool, properties_json: str | None) -> dict[str, Any]:
    want: dict[str, Any] = {}
    if run.kind == "undo" or run.policy.get("subscribe_status") == RESUBSCRIBE_STATUS:
        want["MSG-email"] = True
    elif unsubscribe:
        want["MSG-email"] = False
        if run.method == METHOD_UPLOAD:
            want[STAMP_PROPERTY] = run.tag
    if properties_json and run.method == METHOD_UPLOAD:
        want.update(json.loads(properties_json))
    return want


def _same(found: Any, wanted: Any) -> bool:
    if isinstance(wanted, str) and wanted.startswith("$D_") and not isinstance(found, str):
        return str(found) == wanted[3:]  # a date may come back as epoch seconds
    return found == wanted


def _check(profile: Profile | None, want: dict[str, Any]) -> tuple[str, bool]:
    if profile is None:
        return SKIP_NOT_FOUND, False
    found = {k: profile.msg_email if k == "MSG-email" else profile.properties.get(k) for k in want}
    ok = all(_same(found[k], v) for k, v in want.items())
    text = ", ".join(f"{k}={json.dumps(found[k])}" for k in want if not _same(found[k], want[k]))
    return ("as planned" if ok else text), ok


def read_back(store: Store, run: ExportRun, client: CleverTapClient, *, sample: int = READ_BACK_SAMPLE
              ) -> list[ReadBack]:
    """Read a random sample of the run's sent changes with /1/profile.json and compare."""
    rows = store.export_change_sample(run.id, sample, outcome="ok")
    wants = [_expected(run, bool(u), p) for u, p in zip(rows["unsubscribe"], rows["properties_json"].astype(object)
                                                       .where(rows["properties_json"].notna(), None))]
    keys = list(zip(rows["key_type"], rows["key_value"]))
    checks = [_check(p, w) for p, w in zip(read_profiles(client, keys), wants)]
    missing = [i for i, (_, ok) in enumerate(checks) if not ok]
    if missing:  # a write may take a moment to become readable
        http.sleep(READ_BACK_RETRY_S)
        again = read_profiles(client, [keys[i] for i in missing])
        for i, profile in zip(missing, again):
            checks[i] = _check(profile, wants[i])
    return [ReadBack(k, v, ", ".join(f"{a}={json.dumps(b)}" for a, b in w.items()), found, ok)
            for (k, v), w, (found, ok) in zip(keys, wants, checks)]


def record_read_back(store: Store, run: ExportRun, client: CleverTapClient, *,
                     sample: int = READ_BACK_SAMPLE) -> list[ReadBack]:
    """`read_back`, kept with the run (counts_json) for the pages."""
    checks = read_back(store, run, client, sample=sample)
    run = store.get_export_run(run.id)
    store.update_export_run(run.id, counts={**run.counts, "read_back": {
        "at": utc_now(), "rows": [asdict(c) for c in checks]}})
    return checks


def refresh_read_back(runtime: Any, run_id: int) -> list[ReadBack]:
    """Read back a finished run's sample again, now (the History and Export "check again" button).

    Raises:
        MissingSecretError: the passcode is not held by this server.
        ExportError: the run's project is no longer connected.
        CleverTapError: CleverTap could not be read.
    """
    run = _finished_run(runtime.store, run_id)
    with runtime.clevertap_client(_connection_of(runtime.store, run)) as client:
        return record_read_back(runtime.store, run, client)


def missing_passcode(runtime: Any, connection: Connection) -> str | None:
    """Why a run to this project would wait (the server does not hold its passcode), or None."""
    try:
        runtime.clevertap_client(connection).close()
    except MissingSecretError as exc:
        return str(exc)
    return None


def latest_run(store: Store, mode: str) -> ExportRun | None:
    """The run to show on Export: one still sending, else the most recent."""
    runs = store.list_export_runs(mode=mode)
    active = [r for r in runs if r.state in ExportRun.ACTIVE_STATES]
    return active[-1] if active else (runs[0] if runs else None)


def client_for_run(runtime: Any, run_id: int) -> CleverTapClient:
    """A client for the project of a run (the undo dry run reads current states with it)."""
    return runtime.clevertap_client(_connection_of(runtime.store, runtime.store.get_export_run(run_id)))


# ---- undo -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class UndoPlan:
    run: ExportRun
    candidates: pd.DataFrame   # changes to flip back if still as the run left them
    counts: dict[str, int]     # what is excluded and why, and what a preview found
    preview: pd.DataFrame      # key, value, decision: the current state of up to UNDO_PREVIEW_MAX candidates
    checked_all: bool          # the preview covered every candidate

    @property
    def will_resubscribe(self) -> int:
        """Exact when `checked_all`; otherwise the number of candidates (each is checked before writing)."""
        if self.checked_all:
            return int((self.preview["Decision"] == "re-subscribe").sum())
        return len(self.candidates)


def plan_undo(store: Store, run_id: int, client: CleverTapClient | None, *,
              preview_max: int = UNDO_PREVIEW_MAX) -> UndoPlan:
    """The dry run of undoing an export run's unsubscribes (and those of its retries).

    With a client, the current state of up to `preview_max` candidates is read, so small undos
    are exact before anything is written.
    """
    run = _finished_run(store, run_id)
    if run.kind != "export":
        raise ExportError("Only export runs can be undone (a retry is undone with the run it retried).")
    if "unsubscribe" not in run.actions:
        raise ExportError(f"Run {run_id} only appended properties: there is nothing to undo "
                          "(CleverTap cannot delete properties; the next Append overwrites them).")
    undos = [u for u in store.list_export_runs(parent_run_id=run.id, kinds=["undo"]) if u.state != "failed"]
    if undos:
        raise ExportError(f"Run {run_id} is already undone by run {undos[0].id}.")
    frames = [store.export_changes(r.id) for r in store.list_export_runs(tag=run.tag, kinds=["export", "retry"])]
    changes = pd.concat(frames, ignore_index=True) if frames else store.export_changes(run.id)
    unsub = changes[changes["unsubscribe"].astype(bool)]
    sent = unsub[unsub["outcome"] == "ok"]
    prior = sent["prior_msg_email"]
    candidates = sent[prior == 1].drop_duplicates(["key_type", "key_value"])
    # Matching profiles the list already showed unsubscribed were never sent: left alone too.
    never_sent = int(run.counts.get("plan", {}).get("already_unsubscribed", 0))
    counts = {"unsubscribed_by_run": len(sent), "not_sent": len(unsub.drop_duplicates(["key_type", "key_value"]))
              - len(sent), "were_unsubscribed_before": int((prior == 0).sum()) + never_sent,
              "prior_unknown": int(prior.isna().sum()), "candidates": len(candidates)}
    preview = pd.DataFrame({"Key": pd.Series(dtype=str), "Value": pd.Series(dtype=str),
                            "Decision": pd.Series(dtype=str)})
    if client is not None and len(candidates):
        head = candidates.head(preview_max)
        profiles = read_profiles(client, list(zip(head["key_type"], head["key_value"])))
        decisions = [undo_decision(p, method=run.method, tag=run.tag) or "re-subscribe" for p in profiles]
        preview = pd.DataFrame({"Key": head["key_type"].to_numpy(), "Value": head["key_value"].to_numpy(),
                                "Decision": decisions})
    return UndoPlan(run=run, candidates=candidates.reset_index(drop=True), counts=counts, preview=preview,
                    checked_all=client is not None and len(preview) == len(candidates))


def start_undo(store: Store, plan: UndoPlan, *, actor: str, batch_size: int = BATCH_SIZE) -> ExportRun:
    """Record the undo as a run (kind 'undo') and hand it to the worker."""
    run = plan.run
    if plan.candidates.empty:
        raise ExportError("Nothing to undo: no profile was changed from subscribed by this run.")
    connection = _connection_of(store, run)
    properties = None if run.method == METHOD_SUBSCRIBE else json.dumps(resubscribe_data(run.tag))
    changes = pd.DataFrame({
        "key_type": plan.candidates["key_type"], "key_value": plan.candidates["key_value"],
        "email": plan.candidates["email"], "unsubscribe": False,
        "prior_msg_email": False,  # the state this undo finds, if the profile is still as the run left it
        "properties_json": properties})
    undo = store.create_export_run(
        kind="undo", parent_run_id=run.id, list_id=run.list_id, job_id=run.job_id, connection=connection,
        list_name=run.list_name, actions=["resubscribe"],
        policy={"undo_of": run.id, "undo_tag": run.tag, "check_before_write": True,
                "subscribe_status": RESUBSCRIBE_STATUS, "stamp_property": run.policy.get("stamp_property")},
        method=run.method, actor=actor or default_actor(), tag=run.tag + "-undo", counts={"undo": plan.counts})
    return _hand_over(store, undo, changes, batch_size)


# ---- what the pages show --------------------------------------------------------------------------

@dataclass(frozen=True)
class RunStatus:
    run: ExportRun
    batches_done: int
    batches_total: int
    processed: int
    unprocessed: int
    skipped: int

    @property
    def fraction(self) -> float:
        return self.batches_done / self.batches_total if self.batches_total else 0.0

    @property
    def waiting(self) -> str | None:
        """Why a running run does not progress (a passcode the server lost after a restart)."""
        return self.run.error if self.run.state == "running" and self.run.error else None

    @property
    def reading_back(self) -> bool:
        """Every batch is sent and the run is reading a sample back from CleverTap."""
        return self.run.state == "running" and self.batches_total > 0 and self.batches_done == self.batches_total

    @property
    def line(self) -> str:
        return (f"{self.batches_done:,} of {self.batches_total:,} batches · {self.processed:,} processed · "
                f"{self.unprocessed:,} unprocessed" + (f" · {self.skipped:,} left alone" if self.skipped else ""))


def run_status(store: Store, run_id: int) -> RunStatus:
    progress = store.export_progress(run_id)
    outcomes = store.export_outcome_counts(run_id)
    return RunStatus(run=store.get_export_run(run_id), batches_done=progress["batches_done"],
                     batches_total=progress["batches_total"], processed=progress["processed"],
                     unprocessed=progress["unprocessed"], skipped=outcomes.get("skipped", 0))


def latest_active_run(store: Store, mode: str) -> ExportRun | None:
    runs = store.list_export_runs(mode=mode, states=list(ExportRun.ACTIVE_STATES))
    return runs[-1] if runs else None


KIND_WORDS = {"export": "Export", "retry": "Retry", "undo": "Undo"}


def runs_table(runs: Sequence[ExportRun]) -> pd.DataFrame:
    """One row per run for the History page."""
    return pd.DataFrame({
        "Run": [r.id for r in runs],
        "Kind": [KIND_WORDS[r.kind] + (f" of {r.parent_run_id}" if r.parent_run_id else "") for r in runs],
        "When (UTC)": [r.created_at.replace("T", " ")[:19] for r in runs],
        "Who": [r.actor for r in runs],
        "List": [r.list_name for r in runs],
        "Project": [f"{r.connection_name} ({r.account_id}, {r.region})" for r in runs],
        "Actions": [", ".join(r.actions) for r in runs],
        "Policy": [", ".join(r.policy.get("rules") or []) or "-" for r in runs],
        "State": [r.state for r in runs],
        "Records": [r.planned_records for r in runs],
        "Processed": [r.processed for r in runs],
        "Unprocessed": [r.unprocessed for r in runs],
        "Tag": [r.tag for r in runs],
    })


def batches_table(store: Store, run_id: int) -> pd.DataFrame:
    batches = store.export_batches(run_id)
    return pd.DataFrame({"Batch": [b.batch_no + 1 for b in batches], "State": [b.state for b in batches],
                         "Records": [b.records for b in batches], "Processed": [b.processed for b in batches],
                         "Unprocessed": [b.unprocessed for b in batches], "Attempts": [b.attempts for b in batches],
                         "Error": [b.error or "" for b in batches],
                         "Finished (UTC)": [(b.finished_at or "").replace("T", " ")[:19] for b in batches]})


def run_changes(store: Store, run_id: int, *, outcomes: Sequence[str] | None = None,
                limit: int | None = None) -> pd.DataFrame:
    """A run's changes in words with their outcome (the table and download of History)."""
    changes = store.export_changes(run_id, outcomes=outcomes, limit=limit)
    table = changes_table(changes).drop(columns=["Rule", "Clearout status", "Clearout reason"])
    if store.get_export_run(run_id).kind == "undo":
        table["Action"] = "Re-subscribe"
    table["Outcome"] = changes["outcome"]
    table["Why"] = changes["error"].fillna("")
    return table


def audit_table(store: Store, *, run_id: int | None = None, limit: int = 500) -> pd.DataFrame:
    entries = store.audit_log(run_id=run_id, limit=limit)
    return pd.DataFrame({"When (UTC)": [e.at.replace("T", " ")[:19] for e in entries],
                         "Who": [e.actor for e in entries], "Project": [f"{e.account_id} ({e.region})" for e in entries],
                         "Endpoint": [e.endpoint for e in entries], "Run": [e.run_id for e in entries],
                         "Batch": [None if e.batch_no is None else e.batch_no + 1 for e in entries],
                         "Records": [e.records for e in entries], "Processed": [e.processed for e in entries],
                         "Unprocessed": [e.unprocessed for e in entries], "Outcome": [e.outcome for e in entries],
                         "Detail": [e.detail or "" for e in entries]})


def read_back_table(run: ExportRun) -> pd.DataFrame | None:
    rows = run.counts.get("read_back", {}).get("rows")
    if not rows:
        return None
    return pd.DataFrame({"Key": [r["key_type"] for r in rows], "Value": [r["key_value"] for r in rows],
                         "Expected": [r["expected"] for r in rows], "Found": [r["found"] for r in rows],
                         "Confirmed": [r["confirmed"] for r in rows]})
