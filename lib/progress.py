"""Long work's activity kept in the store for the pages: the worker's reporter, and the line pages show.

The worker runs a job's, run's or task's work inside `track(store, subject)`; what lib.activity hears
there (steps, waits for a rate limit, retries) goes to the store's `activity` row of that subject.
Pages read it while they poll and say it with `activity_line`: "Reading the current state from
CleverTap: 240 of 568 · waiting for CleverTap's rate limit: next try in 12 s · 2 retries (last: ...)".
"""
from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from lib import activity
from lib.store import Activity, Store

log = logging.getLogger(__name__)

STEP_EVERY_S = 0.5  # progress within a step is written at most this often (a step's first and last always)


def job_subject(job_id: int) -> str:
    return f"job:{job_id}"


def run_subject(run_id: int) -> str:
    return f"run:{run_id}"


def task_subject(task_id: int) -> str:
    return f"task:{task_id}"


def list_subject(list_id: int) -> str:
    """An audience pull into a list."""
    return f"list:{list_id}"


class StoreReporter:
    """A lib.activity reporter that keeps what it hears in the store row of one subject.

    Shared by the threads of one piece of work (a run's senders, a read's pool): writes are
    serialised and progress is thinned to one write per STEP_EVERY_S. A failure to write is logged,
    never raised: reporting must not stop the work it reports on.
    """

    def __init__(self, store: Store, subject: str) -> None:
        self.store = store
        self.subject = subject
        self._lock = threading.Lock()
        self._last_step: tuple[str, float] = ("", 0.0)

    def step(self, text: str, done: int | None = None, total: int | None = None) -> None:
        now = time.monotonic()
        with self._lock:
            last_text, last_at = self._last_step
            edge = text != last_text or done in (0, total) or done is None
            if not edge and now - last_at < STEP_EVERY_S:
                return
            self._last_step = (text, now)
        self._write(step=text, done=done, total=total)

    def waiting(self, api: str, seconds: float, why: str) -> None:
        self._write(wait_until=time.time() + seconds, wait_reason=f"waiting for {api}'s {why}")

    def retrying(self, api: str, retry: int, retries: int, why: str, delay: float) -> None:
        text = f"{api} answered {why}: retry {retry} of {retries}"
        try:
            self.store.record_retry(self.subject, text, wait_until=time.time() + delay if delay > 0 else None)
        except Exception:
            log.warning("could not record a retry of %s", self.subject, exc_info=True)

    def _write(self, **fields: object) -> None:
        try:
            self.store.record_activity(self.subject, **fields)
        except Exception:
            log.warning("could not record the activity of %s", self.subject, exc_info=True)


@contextmanager
def track(store: Store, subject: str, *, fresh: bool = False) -> Iterator[StoreReporter]:
    """Report the work done inside this block on `subject` (`fresh`: forget what an earlier attempt did)."""
    if fresh:
        store.clear_activity(subject)
    reporter = StoreReporter(store, subject)
    with activity.reporting(reporter):
        yield reporter


def activity_line(found: Activity | None, *, now: float | None = None) -> str | None:
    """What a piece of work is doing, in one line for a page, or None when nothing was reported."""
    if found is None:
        return None
    now = time.time() if now is None else now
    parts = []
    if found.step:
        progress = (f": {found.done:,} of {found.total:,}" if found.done is not None and found.total
                    else f": {found.done:,}" if found.done is not None else "")
        parts.append(found.step + progress)
    if found.wait_until is not None and found.wait_until > now:
        seconds = max(1, round(found.wait_until - now))
        parts.append(f"{found.wait_reason or 'waiting'}: next try in {seconds} s")
    if found.retries:
        parts.append(f"{found.retries} {'retry' if found.retries == 1 else 'retries'} so far"
                     + (f" (last: {found.last_retry})" if found.last_retry else ""))
    return " · ".join(parts) or None
