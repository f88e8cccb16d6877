"""Verification jobs: the worker thread that takes queued jobs through Clearout, and job views.

State lives in the store (`verification_jobs`), step by step, so a browser refresh or an app
restart resumes where it was. Each `run_once()` leases the jobs it may advance (at most three
active across the app: Clearout verifies three lists at a time per account) and moves each one
step: upload → poll progress → download → done. The Clearout list id is stored the moment the
upload returns, so a job is never uploaded twice by us; a job found 'uploading' with an attempt
but no list id (the app died mid-upload) is re-sent under Clearout's own duplicate-file guard.
"""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable

import pandas as pd

from lib import verification
from lib.clearout import (ClearoutAuthError, ClearoutClient, ClearoutConcurrencyError, ClearoutConnectionError,
                          ClearoutCreditsError,
                          ClearoutError, ClearoutListUnavailableError, ClearoutNotCancellableError,
                          ClearoutRateLimitError, ClearoutServerError)
from lib.columns import ClearoutColumnsError
from lib.runtime import MissingSecretError
from lib.store import Store, VerificationJob, utc_now

if TYPE_CHECKING:
    from lib.runtime import Runtime

log = logging.getLogger(__name__)

MAX_ACTIVE = 3               # Clearout runs at most three bulk lists per account at once (code 1001)
POLL_SECONDS = 2.0           # progress poll per active job; the client waits out 429s on its own
LEASE_SECONDS = 90.0         # after a hard crash, another process takes the jobs over after this
TICK_SECONDS = 0.5           # the thread's pace while jobs are in flight
IDLE_SECONDS = 1.0           # and while nothing is (a new job starts within a second)
MAX_UPLOAD_ATTEMPTS = 3
MAX_TRANSIENT_FAILURES = 5   # consecutive network/server failures polling one job before it fails
TRANSIENT_BACKOFF_SECONDS = 15.0
MAX_SALVAGE_TRIES = 10        # after a cancel: tries to fetch the partial result (paid for)
SALVAGE_RETRY_SECONDS = 3.0
BUSY_BACKOFF_SECONDS = 30.0   # Clearout refused an upload with 1001 (three lists running)
CACHE_SLICE = 100_000
PREPARING_GRACE = timedelta(minutes=10)  # writing upload.csv takes seconds; older means a crash
TRANSIENT_ERRORS = (ClearoutConnectionError, ClearoutServerError, ClearoutRateLimitError)

TOKEN_MISSING = "Jobs are waiting: enter your Clearout token on Connect to resume."


class VerificationWorker:
    """Advances verification jobs of one mode; start()/stop() a thread, or call run_once() in tests.

    Args:
        client_factory: returns a ClearoutClient, or raises MissingSecretError (jobs then wait).
        clock: monotonic seconds, for poll pacing (injectable for tests).
    """

    def __init__(self, store: Store, client_factory: Callable[[], ClearoutClient], *, mode: str,
                 clock: Callable[[], float] = time.monotonic,
                 poll_seconds: float = POLL_SECONDS, lease_seconds: float = LEASE_SECONDS,
                 max_active: int = MAX_ACTIVE, owner: str | None = None) -> None:
        self.store = store
        self.client_factory = client_factory
        self.mode = mode
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.max_active = max_active
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.waiting_reason: str | None = None  # why jobs cannot move (no token), for the pages
        self._next_poll: dict[int, float] = {}
        self._transient: dict[int, int] = {}
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # ---- thread ---------------------------------------------------------------------------
    def start(self) -> VerificationWorker:
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="verification-worker", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the thread (after the step in progress) and hand its jobs over at once."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        self.store.release_job_leases(self.owner)

    def wake(self) -> None:
        """Run the next round now (a job was just started)."""
        self._wake.set()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                busy = self.run_once()
            except Exception:  # the thread must outlive any one bad round; the job states say what happened
                log.exception("verification worker round failed")
                busy = False
            self._wake.wait(TICK_SECONDS if busy else IDLE_SECONDS)
            self._wake.clear()
        self.store.close()

    # ---- one round ------------------------------------------------------------------------
    def run_once(self) -> bool:
        """Advance every job this worker may move by one step; True while jobs are in flight."""
        self.store.fail_stale_jobs(
            "preparing", updated_before=(datetime.now(timezone.utc) - PREPARING_GRACE).isoformat(timespec="seconds"),
            error="The app stopped while preparing this job; nothing was sent to Clearout. Start it again.")
        if not self.store.unfinished_job_count(self.mode):
            self.waiting_reason = None
            return False
        try:
            client = self.client_factory()
        except MissingSecretError:
            self.waiting_reason = TOKEN_MISSING
            return True
        self.waiting_reason = None
        try:
            jobs = self.store.claim_jobs(self.owner, lease_seconds=self.lease_seconds,
                                         max_active=self.max_active, mode=self.mode)
            for job in jobs:
                if self._stop.is_set():
                    break
                self._advance(client, job)
        finally:
            client.close()
        return True

    def _advance(self, client: ClearoutClient, job: VerificationJob) -> None:
        try:
            if job.cancel_requested:
                self._cancel(client, job)
            elif job.to_verify == 0:
                self._finish(job, new_verdicts=None)
            elif job.state == "uploading":
                self._upload(client, job)
            elif job.state == "verifying":
                self._poll(client, job)
            elif job.state == "downloading":
                self._download(client, job)
        except TRANSIENT_ERRORS as exc:
            self._transient_failure(job, exc)
        except ClearoutError as exc:
            self._fail(job, _clearout_message(job, exc))
        except ClearoutColumnsError as exc:
            self._fail(job, f"The Clearout result file is not as expected ({exc}): download it from "
                            "app.clearout.io to check it, then verify the list again.")
        except Exception:
            log.exception("verification job %s failed unexpectedly", job.id)
            self._fail(job, "Verification stopped on an unexpected error (see the server log): "
                            "start the verification again.")
        else:
            self._transient.pop(job.id, None)

    def _upload(self, client: ClearoutClient, job: VerificationJob) -> None:
        if job.clearout_list_id:  # stored, then the app died before moving on
            self.store.transition_job(job.id, ("uploading",), state="verifying")
            return
        path = self.store.job_dir(job.id) / verification.UPLOAD_FILE
        if not path.exists():
            self._fail(job, "The upload file of this job is missing; nothing was charged. Start the "
                            "verification again.")
            return
        if job.upload_attempts >= MAX_UPLOAD_ATTEMPTS:
            self._fail(job, f"Uploading to Clearout failed {job.upload_attempts} times. Check the Clearout "
                            f"dashboard (app.clearout.io) for a list named {job.upload_name}; if it is not "
                            "there, start the verification again.")
            return
        if self.clock() < self._next_poll.get(job.id, 0.0):
            return
        resumed = job.upload_attempts > 0
        if not self.store.begin_upload(job.id):
            return  # cancelled in the meantime
        try:
            # The same name on every attempt, duplicates refused: if an earlier attempt reached
            # Clearout before the app lost its answer, Clearout refuses this copy and we stop.
            list_id = client.bulk_upload(path, job.upload_name or path.name, ignore_duplicate_file=False)
        except ClearoutConcurrencyError as exc:
            # Refused outright (the account runs three lists, some started outside this app): the
            # attempt did not happen, so it does not count; try again after a while.
            self.store.update_job(job.id, upload_attempts=job.upload_attempts, error=f"Waiting: {exc}")
            self._next_poll[job.id] = self.clock() + BUSY_BACKOFF_SECONDS
            return
        except ClearoutError as exc:
            if resumed and not isinstance(exc, (*TRANSIENT_ERRORS, ClearoutAuthError, ClearoutCreditsError)):
                self._fail(job, f"Clearout refused to take {job.upload_name} again: an earlier upload was "
                                "probably accepted before the app stopped. Check the Clearout dashboard "
                                "(app.clearout.io → Email Verifier) for that list and its result; start a "
                                f"new verification here only if it is not there. ({exc})")
                return
            raise
        # Before anything else: from here on, a restart polls this list and never re-uploads.
        self.store.update_job(job.id, clearout_list_id=list_id, state="verifying", percent=0.0, error=None)
        self._next_poll[job.id] = self.clock() + self.poll_seconds

    def _poll(self, client: ClearoutClient, job: VerificationJob) -> None:
        if self.clock() < self._next_poll.get(job.id, 0.0):
            return
        self._next_poll[job.id] = self.clock() + self.poll_seconds
        progress = client.bulk_progress(job.clearout_list_id)
        if progress.completed:
            self.store.transition_job(job.id, ("verifying",), state="downloading", percent=100.0, error=None)
        else:
            self.store.transition_job(job.id, ("verifying",), percent=min(progress.percent, 99.0), error=None)

    def _download(self, client: ClearoutClient, job: VerificationJob) -> None:
        result = client.download_result(job.clearout_list_id)
        uploaded = verification.read_upload_file(self.store.job_dir(job.id) / verification.UPLOAD_FILE)
        result = result[verification.member_mask(result["email"], uploaded).to_numpy()]
        self._cache(result, job.id)
        self._finish(job, new_verdicts=result)

    def _cache(self, result: pd.DataFrame, job_id: int) -> None:
        """Into the verification cache in slices: a million rows at once hold ~1 GB of Python rows."""
        result = result.sort_values("email", kind="stable")
        for start in range(0, len(result), CACHE_SLICE):
            self.store.upsert_cache(result.iloc[start:start + CACHE_SLICE], job_id=job_id)

    def _finish(self, job: VerificationJob, *, new_verdicts: pd.DataFrame | None) -> None:
        verification.write_job_verdicts(self.store, job, new_verdicts)
        spent = 0 if new_verdicts is None else verification.credits_spent(new_verdicts)
        self.store.transition_job(job.id, (*VerificationJob.ACTIVE_STATES, "queued"), state="done",
                                  percent=100.0, credits_spent=spent, error=None, finished_at=utc_now())
        self._forget(job.id)

    def _cancel(self, client: ClearoutClient, job: VerificationJob) -> None:
        """Stop at Clearout, then keep what was paid for: the rows verified before the cancel."""
        if job.clearout_list_id and job.state == "verifying":
            try:
                client.cancel(job.clearout_list_id)
            except (ClearoutNotCancellableError, ClearoutListUnavailableError):
                pass  # already finished (or gone) at Clearout: its result is still worth fetching
            except ClearoutError as exc:
                self._end_cancelled(job, f"Clearout did not confirm the cancel ({exc}): check the list "
                                         "on app.clearout.io.")
                return
            # 'downloading' + cancel_requested: fetch the partial result on the next rounds.
            self.store.transition_job(job.id, ("verifying",), state="downloading")
            self._next_poll[job.id] = self.clock() + self.poll_seconds
        elif job.clearout_list_id and job.state == "downloading":
            self._salvage(client, job)
        elif not job.clearout_list_id and job.upload_attempts:
            self._end_cancelled(job, f"Cancelled while uploading: if {job.upload_name} reached Clearout, "
                                     "cancel it on app.clearout.io.")
        else:
            self._end_cancelled(job, None)

    def _salvage(self, client: ClearoutClient, job: VerificationJob) -> None:
        if self.clock() < self._next_poll.get(job.id, 0.0):
            return
        try:
            result = client.download_result(job.clearout_list_id)
        except (ClearoutError, ClearoutColumnsError) as exc:
            tries = self._transient.get(job.id, 0) + 1
            self._transient[job.id] = tries
            if tries < MAX_SALVAGE_TRIES:
                self._next_poll[job.id] = self.clock() + SALVAGE_RETRY_SECONDS
                return
            self._end_cancelled(job, "Cancelled. Clearout charges the rows it verified before the cancel; "
                                     f"their result was not available here ({exc}): see app.clearout.io.")
            return
        uploaded = verification.read_upload_file(self.store.job_dir(job.id) / verification.UPLOAD_FILE)
        result = result[verification.member_mask(result["email"], uploaded).to_numpy()]
        self._cache(result, job.id)  # Unknown ("Request cancelled") is never reused
        spent = verification.credits_spent(result)
        self._end_cancelled(job, f"Cancelled: {spent:,} credits went on addresses verified before the "
                                 "cancel; their verdicts are kept for reuse. The rest were free.", spent)

    def _end_cancelled(self, job: VerificationJob, note: str | None, spent: int | None = None) -> None:
        self.store.transition_job(job.id, VerificationJob.ACTIVE_STATES, state="cancelled", error=note,
                                  credits_spent=spent, finished_at=utc_now())
        self._forget(job.id)

    def _transient_failure(self, job: VerificationJob, exc: ClearoutError) -> None:
        count = self._transient.get(job.id, 0) + 1
        self._transient[job.id] = count
        if count >= MAX_TRANSIENT_FAILURES:
            self._fail(job, _clearout_message(job, exc))
            return
        self._next_poll[job.id] = self.clock() + TRANSIENT_BACKOFF_SECONDS
        self.store.transition_job(job.id, VerificationJob.ACTIVE_STATES,
                                  error=f"Retrying: {exc}")

    def _fail(self, job: VerificationJob, message: str) -> None:
        self.store.transition_job(job.id, (*VerificationJob.ACTIVE_STATES, "queued"), state="failed",
                                  error=message, finished_at=utc_now())
        self._forget(job.id)

    def _forget(self, job_id: int) -> None:
        self._next_poll.pop(job_id, None)
        self._transient.pop(job_id, None)


def _clearout_message(job: VerificationJob, exc: ClearoutError) -> str:
    if isinstance(exc, ClearoutListUnavailableError) and job.clearout_list_id:
        return (f"Clearout no longer has list {job.clearout_list_id} (removed, or the token belongs to "
                f"another account): start the verification again. ({exc})")
    return str(exc)


# ---- process wiring ---------------------------------------------------------------------------
SERVICE = "verification"


def start_worker(runtime: "Runtime") -> VerificationWorker:
    """The process's one worker (lib/runtime.py starts it); it resumes whatever is in flight."""
    worker = VerificationWorker(runtime.store, runtime.clearout_client, mode=runtime.mode)
    runtime.services[SERVICE] = worker
    return worker.start()


def worker_of(runtime: "Runtime") -> VerificationWorker | None:
    return runtime.services.get(SERVICE)


def start(runtime: "Runtime", list_id: int) -> VerificationJob:
    """Start verifying a list: plan, check the balance (only if something is to be bought), queue.

    Raises:
        verification.VerificationError (incl. InsufficientCreditsError), ClearoutError.
    """
    def balance() -> int:
        try:
            client = runtime.clearout_client()
        except MissingSecretError:
            raise verification.VerificationError(
                "No Clearout token in this app yet: enter your Clearout token on Connect, then start again.") from None
        with client:
            return client.get_credits().available

    job = verification.start_verification(runtime.store, list_id, cache_days=runtime.settings.verify_cache_days,
                                          available_credits=balance, mode=runtime.mode)
    worker = worker_of(runtime)
    if worker is not None:
        worker.wake()
    return job


@dataclass(frozen=True)
class Balance:
    available: int | None  # None when it could not be read
    message: str | None    # why not, in words a user can act on


def read_balance(runtime: "Runtime") -> Balance:
    """The Clearout credit balance, or why it cannot be shown (no token, Clearout unreachable)."""
    try:
        client = runtime.clearout_client()
    except MissingSecretError as exc:
        return Balance(None, str(exc))
    with client:
        client.max_retries = 1  # a page waits on this: fail fast, it is read again on the next visit
        try:
            return Balance(client.get_credits().available, None)
        except ClearoutError as exc:
            return Balance(None, str(exc))


# ---- views for the pages ----------------------------------------------------------------------
STATE_LABELS = {
    "preparing": "Preparing", "queued": "Queued", "uploading": "Uploading", "verifying": "Verifying",
    "downloading": "Downloading results", "done": "Done", "failed": "Failed", "cancelled": "Cancelled",
}


@dataclass(frozen=True)
class JobView:
    job: VerificationJob
    list_name: str
    label: str         # "Verifying · 42%"
    detail: str        # what it costs and saves, or why it failed
    progress: float    # 0..1, for a progress bar
    cancellable: bool


def _credits(count: int) -> str:
    return f"{count:,} credit{'' if count == 1 else 's'}"


def describe(job: VerificationJob, list_name: str) -> JobView:
    """How a job reads on a page: its state in words, credits spent and saved, its error."""
    label = STATE_LABELS.get(job.state, job.state)
    if job.state == "verifying":
        label += f" · {job.percent:.0f}%"
    if job.cancel_requested and not job.is_final:
        label += " · cancelling"
    saved = (f"{_credits(job.cached + job.syntax_invalid)} saved (cache {job.cached:,}, "
             f"syntax check {job.syntax_invalid:,})")
    if job.state == "done":
        detail = f"{_credits(job.credits_spent or 0)} spent · {saved}"
    elif job.is_final:
        detail = job.error or "Stopped before finishing; rows Clearout did not verify are not charged."
    else:
        detail = f"{job.to_verify:,} addresses to verify (at most {_credits(job.to_verify)}) · {saved}"
        if job.error:
            detail += f" · {job.error}"
    progress = {"done": 1.0, "downloading": 1.0, "verifying": job.percent / 100}.get(job.state, 0.0)
    if job.cancel_requested:
        progress = min(progress, job.percent / 100)
    return JobView(job=job, list_name=list_name, label=label, detail=detail, progress=progress,
                   cancellable=not job.is_final and not job.cancel_requested)


def job_views(store: Store, mode: str, *, limit: int = 20, unfinished_only: bool = False) -> list[JobView]:
    """The latest jobs of a mode, newest first, ready to render."""
    states = verification.UNFINISHED_STATES if unfinished_only else None
    jobs = store.list_jobs(mode=mode, states=states, limit=limit)
    names = {record.id: record.name for record in store.list_lists(mode)}
    return [describe(job, names.get(job.list_id, f"list {job.list_id}")) for job in jobs]


def cancel(store: Store, job_id: int) -> VerificationJob | None:
    """Cancel a job: queued ones stop at once, running ones when the worker has told Clearout."""
    return store.cancel_job(job_id)


def waiting_reason(runtime: "Runtime") -> str | None:
    """Why jobs are not moving (no Clearout token in this process), or None."""
    if runtime.store.unfinished_job_count(runtime.mode) and not runtime.vault.clearout_token():
        return TOKEN_MISSING
    return None
