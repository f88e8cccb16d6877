"""The verification worker: takes queued jobs through Clearout, in the worker process.

State lives in the store (`verification_jobs`), step by step, so a browser refresh or an app
restart resumes where it was. Each `run_once()` leases the jobs it may advance (at most three
active across the app: Clearout verifies three lists at a time per account) and moves each one
step: upload → poll progress → download → done. The Clearout list id is stored the moment the
upload returns, so a job is never uploaded twice by us; a job found 'uploading' with an attempt
but no list id (the app died mid-upload) is re-sent under Clearout's own duplicate-file guard.
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pandas as pd

from lib.clearout import (MAX_RUNNING_LISTS, ClearoutClient, ClearoutConcurrencyError, ClearoutConnectionError,
                          ClearoutError, ClearoutListUnavailableError, ClearoutNotCancellableError,
                          ClearoutRateLimitError, ClearoutRequestError, ClearoutServerError)
from lib.columns import ClearoutColumnsError
from lib import activity
from lib.errors import UserError
from lib.progress import StoreReporter, job_subject
from lib.store import Store, VerificationJob, utc_now
from lib.verification.plan import member_mask, read_upload_file, upload_path
from lib.verification.start import PART_ROWS, prepare_job
from lib.verification.verdicts import credits_spent, finish_verdicts, parts_of, write_result

log = logging.getLogger(__name__)

POLL_SECONDS = 2.0           # progress poll per active job; the client waits out 429s on its own
LEASE_SECONDS = 90.0         # a lease of a dead process on this host is taken over at once; elsewhere, after this
MAX_TRANSIENT_FAILURES = 5   # consecutive network/server failures polling one job before it fails
TRANSIENT_BACKOFF_SECONDS = 15.0
MAX_SALVAGE_TRIES = 10        # after a cancel: tries to fetch the partial result (paid for)
SALVAGE_RETRY_SECONDS = 3.0
BUSY_BACKOFF_SECONDS = 30.0   # Clearout refused an upload with 1001 (three lists running)
CACHE_SLICE = 100_000
TRANSIENT_ERRORS = (ClearoutConnectionError, ClearoutServerError, ClearoutRateLimitError)

TOKEN_MISSING = "Jobs are waiting: enter your Clearout token on Connect to resume."
# What a job's step does, as its row says it while the job is at it (lib.progress).
STEP_WORDS = {"uploading": "Uploading the addresses to Clearout", "verifying": "Clearout is verifying",
              "downloading": "Downloading the result from Clearout"}
# A job's `attention`: an upload left and no answer was recorded; a person decides what happens next.
UPLOAD_UNCERTAIN = "upload_uncertain"
# A job sent in parts: a part failed; a person retries it alone (or cancels the rest).
PART_FAILED = "part_failed"


class VerificationWorker:
    """Advances the verification jobs of one mode by one step per round (`run_once`).

    Args:
        client_factory: the shared ClearoutClient of the app's token (not closed here), or raises a
            UserError when the app holds no token (jobs then wait).
        owner: this process (lib.processes), named in the leases of the jobs it advances.
        stop: set when the process stops; a round ends after the job step in progress.
        clock: monotonic seconds, for poll pacing (injectable for tests).
    """

    name = "verification"

    def __init__(self, store: Store, client_factory: Callable[[], ClearoutClient], *, mode: str, owner: str,
                 stop: threading.Event | None = None, clock: Callable[[], float] = time.monotonic,
                 poll_seconds: float = POLL_SECONDS, lease_seconds: float = LEASE_SECONDS,
                 max_active: int = MAX_RUNNING_LISTS, cache_days: int = 30, part_rows: int = PART_ROWS) -> None:
        self.store = store
        self.client_factory = client_factory
        self.mode = mode
        self.owner = owner
        self.stop = stop or threading.Event()
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.max_active = max_active
        self.cache_days = cache_days
        self.part_rows = part_rows
        self.waiting_reason: str | None = None  # why jobs cannot move (no token)
        self._next_poll: dict[int, float] = {}
        self._transient: dict[int, int] = {}
        self._reporters: dict[int, StoreReporter] = {}

    def release(self) -> None:
        """At a clean stop: hand the jobs over at once instead of at lease expiry."""
        self.store.release_job_leases(self.owner)

    def run_once(self) -> bool:
        """Prepare one new job, then advance every job this worker may move by one step; True while
        jobs are in flight."""
        busy = self._prepare_next()
        if not self.store.unfinished_job_count(self.mode):
            self.waiting_reason = None
            return busy
        try:
            client = self.client_factory()
        except UserError:
            self.waiting_reason = TOKEN_MISSING
            return True
        self.waiting_reason = None
        jobs = self.store.claim_jobs(self.owner, lease_seconds=self.lease_seconds, max_active=self.max_active,
                                     mode=self.mode)
        for job in jobs:
            if self.stop.is_set():
                break
            self._advance(client, job)
        for parent in self.store.list_jobs(states=["parts"], mode=self.mode):
            if self.stop.is_set():
                break
            self._advance_parts(parent)
        return True

    def _prepare_next(self) -> bool:
        """Write the upload file of the oldest job waiting for one (lib.verification.start.prepare_job)."""
        job = self.store.claim_preparing_job(self.owner, lease_seconds=self.lease_seconds, mode=self.mode)
        if job is None:
            return False
        try:
            prepare_job(self.store, job, cache_days=self.cache_days, part_rows=self.part_rows)
        except UserError as exc:
            self.store.transition_job(job.id, ("preparing",), state="failed", error=exc.message,
                                      finished_at=utc_now())
        except Exception:
            log.exception("preparing verification job %s failed", job.id)
            self.store.transition_job(job.id, ("preparing",), state="failed", finished_at=utc_now(),
                                      error="Preparing the upload failed on an unexpected error (see the worker "
                                            "log); nothing was sent to Clearout. Start the verification again.")
        return True

    def _advance(self, client: ClearoutClient, job: VerificationJob) -> None:
        """One step of a job, its retries and rate-limit waits told to the pages (lib.progress)."""
        reporter = self._reporters.get(job.id)
        if reporter is None:
            reporter = self._reporters[job.id] = StoreReporter(self.store, job_subject(job.id))
        with activity.reporting(reporter):
            self._step(client, job)

    def _step(self, client: ClearoutClient, job: VerificationJob) -> None:
        activity.step(STEP_WORDS.get(job.state, ""))
        try:
            if job.cancel_requested:
                self._cancel(client, job)
            elif job.to_verify == 0:
                self._finish(job, spent=0)
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
        if job.clearout_list_id:  # stored, then the worker died before moving on
            self.store.transition_job(job.id, ("uploading",), state="verifying")
            return
        if job.attention:  # a person decides: attach the list Clearout may hold, or upload again
            if job.attach_list_id:
                self._attach(client, job, job.attach_list_id)
            elif job.reupload_confirmed_by:
                self._send_upload(client, job, again=True)
            return
        if job.upload_started_at:
            # An upload left and its answer was never recorded (the worker died, or the call broke
            # after sending): Clearout may hold the list and may have charged it. Never again on our
            # own: credits are money.
            self.store.transition_job(job.id, ("uploading",), attention=UPLOAD_UNCERTAIN, error=None)
            return
        if self.clock() >= self._next_poll.get(job.id, 0.0):
            self._send_upload(client, job, again=False)

    def _send_upload(self, client: ClearoutClient, job: VerificationJob, *, again: bool) -> None:
        path = upload_path(self.store, job)
        if not path.exists():
            self._fail(job, "The upload file of this job is missing; nothing was charged. Start the "
                            "verification again.")
            return
        # Recorded before sending: from now on a restart cannot tell whether Clearout took the file.
        if not self.store.begin_upload(job.id, size=path.stat().st_size):
            return  # cancelled in the meantime
        try:
            # A confirmed upload again must pass Clearout's duplicate-file guard, which would refuse
            # the same name and size: the person has accepted paying twice.
            list_id = client.bulk_upload(path, job.upload_name or path.name, ignore_duplicate_file=again)
        except (ClearoutConnectionError, ClearoutServerError) as exc:
            if isinstance(exc, ClearoutServerError) and (exc.status or 0) >= 500:
                self._not_taken(job, f"Clearout took nothing; uploading again in {TRANSIENT_BACKOFF_SECONDS:.0f} s: "
                                     f"{exc.message}", TRANSIENT_BACKOFF_SECONDS)
                return
            # The file may have reached Clearout (a timeout after sending, or an answer without a
            # list id): a person decides.
            self.store.transition_job(job.id, ("uploading",), attention=UPLOAD_UNCERTAIN, error=exc.message)
            return
        except (ClearoutConcurrencyError, ClearoutRateLimitError) as exc:
            # Refused outright (three lists run at Clearout, some started elsewhere; or the rate
            # limit): nothing was taken; try again after a while.
            self._not_taken(job, f"Waiting {BUSY_BACKOFF_SECONDS:.0f} s, then uploading again: {exc.message}",
                            BUSY_BACKOFF_SECONDS)
            return
        except ClearoutError as exc:
            self._fail(job, _clearout_message(job, exc))  # refused (credits, token, file): nothing charged
            return
        # Before anything else: from here on, a restart polls this list and never uploads again.
        self.store.update_job(job.id, clearout_list_id=list_id, state="verifying", percent=0.0, error=None,
                              attention=None, reupload_confirmed_by=None, attach_list_id=None)
        self._next_poll[job.id] = self.clock() + self.poll_seconds

    def _not_taken(self, job: VerificationJob, note: str, backoff: float) -> None:
        """Clearout answered and took nothing: the upload may be sent again automatically."""
        self.store.transition_job(job.id, ("uploading",), upload_started_at=None, error=note)
        self._next_poll[job.id] = self.clock() + backoff

    def _attach(self, client: ClearoutClient, job: VerificationJob, list_id: str) -> None:
        """Use a list id a person found on Clearout's dashboard, once Clearout confirms it knows it."""
        try:
            progress = client.bulk_progress(list_id)
        except (ClearoutListUnavailableError, ClearoutRequestError) as exc:
            self.store.transition_job(job.id, ("uploading",), attach_list_id=None,
                                      error=f"Clearout does not know list {list_id} for this token ({exc.message}): "
                                            "check the id on app.clearout.io → Email Verifier.")
            return
        self.store.transition_job(job.id, ("uploading",), clearout_list_id=list_id, attention=None,
                                  attach_list_id=None, error=None,
                                  state="downloading" if progress.completed else "verifying",
                                  percent=100.0 if progress.completed else min(progress.percent, 99.0))
        self._next_poll[job.id] = self.clock()

    def _poll(self, client: ClearoutClient, job: VerificationJob) -> None:
        if self.clock() < self._next_poll.get(job.id, 0.0):
            return
        self._next_poll[job.id] = self.clock() + self.poll_seconds
        progress = client.bulk_progress(_list_id(job))
        if progress.completed:
            self.store.transition_job(job.id, ("verifying",), state="downloading", percent=100.0, error=None)
        else:
            self.store.transition_job(job.id, ("verifying",), percent=min(progress.percent, 99.0), error=None)

    def _download(self, client: ClearoutClient, job: VerificationJob) -> None:
        result = client.download_result(_list_id(job))
        uploaded = read_upload_file(upload_path(self.store, job))
        result = result[member_mask(result["email"], uploaded).to_numpy()]
        self._cache(result, job.id)
        write_result(self.store, job, result)
        if job.is_part:  # its verdicts are written with the other parts' (`_advance_parts`)
            self.store.transition_job(job.id, VerificationJob.ACTIVE_STATES, state="done", percent=100.0,
                                      credits_spent=credits_spent(result), error=None, finished_at=utc_now())
            self._forget(job.id)
            return
        self._finish(job, spent=credits_spent(result))

    def _cache(self, result: pd.DataFrame, job_id: int) -> None:
        """Into the verification cache in slices: a million rows at once hold ~1 GB of Python rows."""
        result = result.sort_values("email", kind="stable")
        for start in range(0, len(result), CACHE_SLICE):
            self.store.upsert_cache(result.iloc[start:start + CACHE_SLICE], job_id=job_id)

    def _finish(self, job: VerificationJob, *, spent: int) -> None:
        finish_verdicts(self.store, job)
        self.store.transition_job(job.id, (*VerificationJob.ACTIVE_STATES, "queued"), state="done",
                                  percent=100.0, credits_spent=spent, error=None, finished_at=utc_now())
        self._forget(job.id)

    def _advance_parts(self, job: VerificationJob) -> None:
        """A job sent in parts: once every part is done, write its verdicts from all of them; after a
        cancel, end it when every part has ended; meanwhile keep its progress and failed parts current."""
        parts = parts_of(self.store, job)
        spent = sum(attempt.credits_spent or 0 for attempt in self.store.list_jobs(parts_of=job.id))
        if job.cancel_requested:
            if all(part.is_final for part in parts):
                done = sum(1 for part in parts if part.state == "done")
                self.store.transition_job(job.id, ("parts",), state="cancelled", credits_spent=spent,
                                          finished_at=utc_now(), attention=None,
                                          error=f"Cancelled: {done} of {len(parts)} parts were verified before the "
                                                f"cancel ({spent:,} credits); their verdicts are kept for reuse.")
                self._forget(job.id)
            return
        if parts and all(part.state == "done" for part in parts):
            try:
                finish_verdicts(self.store, job)
            except Exception:
                log.exception("writing the verdicts of job %s failed", job.id)
                self.store.transition_job(job.id, ("parts",), state="failed", finished_at=utc_now(),
                                          credits_spent=spent,
                                          error="Every part was verified, but writing the verdicts failed (see the "
                                                "worker log). The verdicts are in the cache: verifying again costs "
                                                "nothing.")
            else:
                self.store.transition_job(job.id, ("parts",), state="done", percent=100.0, credits_spent=spent,
                                          attention=None, error=None, finished_at=utc_now())
            self._forget(job.id)
            return
        weight = sum(part.to_verify for part in parts) or 1
        percent = sum(part.to_verify * _part_percent(part) for part in parts) / weight
        failed = [part for part in parts if part.state in ("failed", "cancelled")]
        error = None
        if failed:
            first = failed[0]
            error = (f"{len(failed)} of {len(parts)} parts failed (part {first.part_no}: "
                     f"{first.error or 'stopped'}). Retry the failed parts alone, or cancel the rest.")
        changes: dict[str, object] = {}
        if abs(percent - job.percent) >= 0.1:
            changes["percent"] = min(percent, 99.0)
        if (job.attention == PART_FAILED) != bool(failed) or job.error != error:
            changes.update(attention=PART_FAILED if failed else None, error=error)
        if changes:
            self.store.transition_job(job.id, ("parts",), **changes)

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
        elif not job.clearout_list_id and job.upload_started_at:
            self._end_cancelled(job, f"Cancelled while uploading: if {job.upload_name} reached Clearout, "
                                     "cancel it on app.clearout.io (Email Verifier).")
        else:
            self._end_cancelled(job, None)

    def _salvage(self, client: ClearoutClient, job: VerificationJob) -> None:
        if self.clock() < self._next_poll.get(job.id, 0.0):
            return
        try:
            result = client.download_result(_list_id(job))
        except (ClearoutError, ClearoutColumnsError) as exc:
            tries = self._transient.get(job.id, 0) + 1
            self._transient[job.id] = tries
            if tries < MAX_SALVAGE_TRIES:
                self._next_poll[job.id] = self.clock() + SALVAGE_RETRY_SECONDS
                return
            self._end_cancelled(job, "Cancelled. Clearout charges the rows it verified before the cancel; "
                                     f"their result was not available here ({exc}): see app.clearout.io.")
            return
        uploaded = read_upload_file(upload_path(self.store, job))
        result = result[member_mask(result["email"], uploaded).to_numpy()]
        self._cache(result, job.id)  # Unknown ("Request cancelled") is never reused
        spent = credits_spent(result)
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
                                  error=f"Trying again in {TRANSIENT_BACKOFF_SECONDS:.0f} s (failure {count} of "
                                        f"{MAX_TRANSIENT_FAILURES} before the job stops): {exc}")

    def _fail(self, job: VerificationJob, message: str) -> None:
        self.store.transition_job(job.id, (*VerificationJob.ACTIVE_STATES, "queued"), state="failed",
                                  error=message, finished_at=utc_now())
        self._forget(job.id)

    def _forget(self, job_id: int) -> None:
        """A job ended: forget its pacing, and have the balance read again (credits may have been spent)."""
        self._next_poll.pop(job_id, None)
        self._transient.pop(job_id, None)
        self._reporters.pop(job_id, None)
        self.store.want_balance(self.mode)


def _part_percent(part: VerificationJob) -> float:
    return {"done": 100.0, "downloading": 100.0, "verifying": part.percent}.get(part.state, 0.0)


def _list_id(job: VerificationJob) -> str:
    """The Clearout list id of a job past its upload (its states guarantee one)."""
    if not job.clearout_list_id:
        raise ClearoutListUnavailableError(f"Job {job.id} has no Clearout list id: start the verification again.")
    return job.clearout_list_id


def _clearout_message(job: VerificationJob, exc: ClearoutError) -> str:
    if isinstance(exc, ClearoutListUnavailableError) and job.clearout_list_id:
        return (f"Clearout no longer has list {job.clearout_list_id} (removed, or the token belongs to "
                f"another account): start the verification again. ({exc})")
    return str(exc)
