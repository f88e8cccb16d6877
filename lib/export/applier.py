"""Applying a run: its pending batches sent with a bounded window, each answer recorded in the store.

A restart resumes with the batches not yet recorded and never resends a recorded one; see
`RunApplier._send` for how much a crash can make it send twice.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from collections.abc import Callable

from lib import activity
from lib.clevertap import MAX_UPLOAD_CONCURRENCY, BatchOutcome, CleverTapClient, CleverTapError, subscribe_body
from lib.export.payloads import upload_body
from lib.export.plan import METHOD_SUBSCRIBE, PRIOR_LOOKUP_MAX
from lib.export.profiles import read_profiles
from lib.export.readback import READ_BACK_SAMPLE, record_read_back
from lib.export.runs import SUBSCRIBE_STATUS
from lib.export.undo import ASSUMED, undo_decision
from lib.progress import StoreReporter, run_subject
from lib.store import ExportRun, Store, utc_now

log = logging.getLogger(__name__)


LEASE_SECONDS = 30.0



@dataclass(frozen=True)
class _Batch:
    """A pending batch as read from the store: its encoded payload, or for a runner that checks
    profiles first (undo), which decides what to send only just before sending, its rows."""
    batch_no: int
    row_nos: tuple[int, ...]
    rows: list[tuple[Any, ...]] | None  # Store.export_batch_rows, kept only when checking first
    body: bytes
    count: int
    assumed: frozenset[int] = frozenset()  # rows whose state before was unknown, re-subscribed as chosen


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

    def __init__(self, store: Store, run_id: int, client: CleverTapClient, *, concurrency: int = MAX_UPLOAD_CONCURRENCY,
                 stop: threading.Event | None = None, owner: str | None = None,
                 on_batch: Callable[[int], None] | None = None, read_back_sample: int = READ_BACK_SAMPLE) -> None:
        self.store = store
        self.run = store.export_run(run_id)
        self.client = client
        self.checks_first = bool(self.run.policy.get("check_before_write"))
        # Undo batches read every profile first: their pace is the read limit, not the upload one.
        self.concurrency = 1 if self.checks_first else max(1, min(MAX_UPLOAD_CONCURRENCY, concurrency))
        self.stop = stop or threading.Event()
        self._halt = threading.Event()
        self._send_slots = threading.BoundedSemaphore(self.concurrency)
        self.owner = owner
        self.on_batch = on_batch
        self.read_back_sample = read_back_sample
        self._status = self.run.policy.get("subscribe_status", SUBSCRIBE_STATUS)
        self._endpoint = "/1/subscribe" if self.run.method == METHOD_SUBSCRIBE else "/1/upload"

    def apply(self) -> ExportRun:
        """Send what is left of the run; returns the run as the store then has it. What it does (reading
        state, sending, waits and retries) is kept for the pages (lib.progress, `run:<id>`)."""
        with activity.reporting(StoreReporter(self.store, run_subject(self.run.id))):
            return self._apply()

    def _apply(self) -> ExportRun:
        if self.run.kind == "export":
            self._read_priors()
        pending = [b.batch_no for b in self.store.export_batches(self.run.id, states=("pending", "failed"))]
        failure = self._send(pending)
        run = self.store.export_run(self.run.id)
        if failure is not None:
            return self.store.update_export_run(self.run.id, state="failed", error=failure, finished_at=utc_now())
        if self.stop.is_set() or run.state != "running":
            return run
        if self.read_back_sample:
            # Before 'done', so a finished run always shows its check (pages stop polling at 'done').
            activity.step("All sent: reading a sample back from CleverTap")
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
        PRIOR_LOOKUP_MAX profiles; above that, and for keys CleverTap has no profile for, the previous
        value stays unknown and undo does what the person chose before applying.
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
            profiles = read_profiles(self.client, list(zip(todo["key_type"], todo["key_value"])),
                                     step="Reading each profile's subscription state from CleverTap before sending")
            # No profile: CleverTap may still hold an address-level preference, but no API reads it, so
            # the state before stays unknown; undo then does what the person chose (lib.export.undo).
            self.store.set_change_priors(self.run.id, [
                (int(r), None if p is None else p.msg_email, "no_profile" if p is None else "read")
                for r, p in zip(todo["row_no"], profiles)])
            missing = sum(1 for p in profiles if p is None)
            state = f"read {len(todo):,} from CleverTap" + (f", {missing:,} with no profile" if missing else "")
            counts = {**counts, "prior_no_profile": missing}
        self.run = self.store.update_export_run(self.run.id, counts={**counts, "prior_lookup": state})

    # -- sending -----------------------------------------------------------------------------------
    def _send(self, pending: list[int]) -> str | None:
        """Send `pending` batches with `concurrency` calls in flight; the first error message, if any.

        This thread reads and encodes the batches and hands them to `concurrency` sending threads,
        keeping one more per sender queued, so a sender whose call returns starts the next one at
        once: the slots stay busy and a sender's own work is the HTTP call alone. Queued batches
        are not in flight; after a failure or a stop they return unsent and stay pending.

        The crash bound: a sender takes one of `concurrency` send slots just before its call, and the
        slot is freed only once this thread has recorded the answer. So at any moment at most
        `concurrency` (15) batches have been sent and not recorded, and a kill -9 makes the next
        worker send at most that many again (the same values: harmless; an undo batch re-reads its
        profiles first). Answers are recorded as soon as they arrive, all that arrived together in
        one transaction; a recorded batch is never sent again, and nothing answered is recorded as
        anything else.
        """
        failure: str | None = None
        batches = iter(pending)
        if pending:
            activity.step("Checking profiles, then sending batches" if self.checks_first else "Sending batches")
        answered: queue.SimpleQueue[Future[_BatchResult | None]] = queue.SimpleQueue()
        outstanding = 0
        next_check = time.monotonic() + 0.5
        self._halt.clear()
        self._send_slots = threading.BoundedSemaphore(self.concurrency)
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="export-batch") as pool:
            # Halted before the pool's exit waits for its threads: whatever ends this loop (even an
            # exception), queued batches give up their wait for a send slot and stay unsent.
            try:
                while True:
                    while failure is None and not self.stop.is_set() and outstanding < 2 * self.concurrency:
                        batch_no = next(batches, None)
                        if batch_no is None:
                            break
                        # carry: the sender's retries and waits are told to this run's activity
                        pool.submit(activity.carry(self._send_batch), self._prepare(batch_no)).add_done_callback(
                            answered.put)
                        outstanding += 1
                    if not outstanding:
                        return failure
                    # Woken at least twice a second: the lease is renewed and a stop is seen even
                    # while slow batches (an undo reads every profile first) are in flight.
                    futures = _take(answered, 0.5)
                    outstanding -= len(futures)
                    results = [r for r in (future.result() for future in futures) if r is not None]
                    for result in results:
                        if result.error is not None:
                            failure = failure or result.error
                            self._halt.set()
                    self._record(results)
                    for _ in results:
                        self._send_slots.release()  # recorded: the slot may carry the next batch
                    if time.monotonic() >= next_check:
                        next_check = time.monotonic() + 0.5
                        self._check_still_wanted()
            finally:
                self._halt.set()

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
        if self.store.export_run(self.run.id).state != "running":
            self.stop.set()
        elif self.owner is not None and not self.store.renew_export_lease(self.run.id, self.owner,
                                                                          lease_seconds=LEASE_SECONDS):
            self.stop.set()

    def _prepare(self, batch_no: int) -> _Batch:
        rows = self.store.export_batch_rows(self.run.id, batch_no)
        row_nos = tuple(r[0] for r in rows)
        if self.checks_first:
            sources = self.store.export_batch_sources(self.run.id, batch_no)
            assumed = frozenset(r for r, source in sources.items() if source == ASSUMED)
            return _Batch(batch_no, row_nos, rows, b"", 0, assumed)
        return _Batch(batch_no, row_nos, None, *self._encode(rows))

    def _encode(self, rows: list[tuple[Any, ...]]) -> tuple[bytes, int]:
        if self.run.method == METHOD_SUBSCRIBE:
            return subscribe_body([r[2] for r in rows], self._status), len(rows)
        return upload_body((r[1:] for r in rows), self.run.tag)  # (key_type, key_value, unsubscribe, properties)

    def _send_batch(self, batch: _Batch) -> _BatchResult | None:
        """Send one batch in a sender thread, holding a send slot until its answer is recorded."""
        while not self._send_slots.acquire(timeout=0.2):
            if self._halt.is_set() or self.stop.is_set():
                return None
        if self._halt.is_set() or self.stop.is_set():
            self._send_slots.release()
            return None  # queued behind a failure or a stop: not sent, stays pending
        batch_no, row_nos, body, count = batch.batch_no, batch.row_nos, batch.body, batch.count
        skipped: list[tuple[int, str]] = []
        try:
            if batch.rows is not None:
                rows = batch.rows
                profiles = read_profiles(self.client, [(r[1], r[2]) for r in rows],
                                         step=f"Batch {batch_no + 1}: checking each profile in CleverTap before "
                                              "re-subscribing")
                decisions = [undo_decision(p, method=self.run.method, tag=self.run.policy.get("undo_tag", ""),
                                           assumed=r[0] in batch.assumed) for r, p in zip(rows, profiles)]
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
