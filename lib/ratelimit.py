"""One rate budget per Clearout token and per CleverTap account, shared by every thread and process.

Clearout counts requests per minute per token and says on every answer how many are left and when
the window resets (`x-ratelimit-*`); a 429 or 503 may say how long to wait (Retry-After). CleverTap
limits how many requests of one API run at once per account (uploads 15; reads UNCONFIRMED, 3, see
lib.clevertap) and answers 429 above. The budget of each lives in small files under
DATA_DIR/run/gates, so the worker's threads, the Streamlit process and any other process of the
installation respect one budget:

* a gate's window file holds the time until which it is closed (a wait the API announced, or a
  window with nothing left in it); no call leaves before that time;
* Clearout calls of one token go one at a time (an exclusive lock held for the call), so an answer
  that closes the window is recorded before the next call leaves: no call lands inside a window the
  app was told about;
* CleverTap calls of one account and API each hold one of N slot locks (N = that API's limit).

Locks are `fcntl.flock` on files: released by the kernel when a process dies, whatever it was
doing. File names are hashes of the token or account id: no secret is written.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from datetime import datetime, UTC
from pathlib import Path
from typing import Protocol

from lib import activity, http
from lib.errors import UserError

SLOT_POLL_S = 0.005  # how often a call waiting for a CleverTap slot looks again
BUSY_WAIT_S = 2.0    # a caller that may not wait on a rate limit still waits this long for the app's own calls

Report = Callable[[int | None, Mapping[str, str] | None], None]


class GateClosed(UserError):
    """The API asked to wait longer than this caller may (an interactive check): `until` (epoch); or,
    with `busy`, the app's own calls to it held the budget longer than this caller may wait."""

    def __init__(self, api: str, until: float, *, busy: bool = False) -> None:
        when = datetime.fromtimestamp(until, UTC).strftime("%H:%M:%S UTC")
        super().__init__(
            f"The app's other {api} calls (a verification, export, undo or pull) are using its request budget "
            "right now: try again in a moment." if busy else
            f"{api} asked the app to wait until {when} (its rate limit): try again then.")
        self.until = until
        self.busy = busy


class Gate(Protocol):
    def call(self) -> AbstractContextManager[Report]: ...


def announced_wait(status: int | None, headers: Mapping[str, str] | None, *,
                   hint: Callable[[Mapping[str, str]], float | None]) -> float | None:
    """Seconds an answer says to wait before the next call, or None.

    A 429 or 503 with a Retry-After or x-ratelimit-reset hint; or any answer that says nothing is
    left in the window (x-ratelimit-remaining 0), until the reset.
    """
    if headers is None:
        return None
    if status in (429, 503):
        return hint(headers)
    remaining = {k.lower(): v for k, v in headers.items()}.get("x-ratelimit-remaining")
    if remaining is not None and remaining.strip() == "0":
        return hint(headers)
    return None


class _Window:
    """The time until which a gate is closed, in a file (read and written under its lock)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def read(self) -> float:
        try:
            return float(self.path.read_text() or 0)
        except (OSError, ValueError):
            return 0.0

    def close_until(self, until: float) -> None:
        with _locked(self.path.with_suffix(".wlock")):
            if until > self.read():
                partial = self.path.with_suffix(".part")
                partial.write_text(f"{until:.3f}")
                os.replace(partial, self.path)


@contextmanager
def _locked(path: Path, *, blocking: bool = True) -> Iterator[int | None]:
    """An exclusive flock on `path`: yields the descriptor, or None when not blocking and taken."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        except BlockingIOError:
            yield None
            return
        yield fd
    finally:
        os.close(fd)  # closing releases the lock


class SerialGate:
    """Calls one at a time, none inside an announced window (Clearout, per token)."""

    def __init__(self, folder: Path, key: str, *, api: str, hint: Callable[[Mapping[str, str]], float | None],
                 max_wait: float | None, clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self._lock = folder / f"{key}.lock"
        self._window = _Window(folder / f"{key}.window")
        self._api, self._hint, self._max_wait, self._clock, self._sleep = api, hint, max_wait, clock, sleep

    @contextmanager
    def call(self) -> Iterator[Report]:
        with self._lock_held():
            wait = self._window.read() - self._clock()
            if wait > 0:
                if self._max_wait is not None and wait > self._max_wait:
                    raise GateClosed(self._api, self._window.read())
                activity.waiting(self._api, wait, "rate limit")
                self._sleep(wait)

            def report(status: int | None, headers: Mapping[str, str] | None) -> None:
                seconds = announced_wait(status, headers, hint=self._hint)
                if seconds is not None:
                    self._window.close_until(self._clock() + seconds)

            yield report

    @contextmanager
    def _lock_held(self) -> Iterator[None]:
        """The token's lock. A caller that may not wait (`max_wait`) waits at most BUSY_WAIT_S for
        another call of the app to finish, which may itself be sleeping out a long window."""
        if self._max_wait is None:
            with _locked(self._lock):
                yield
            return
        deadline = time.monotonic() + max(self._max_wait, BUSY_WAIT_S)
        while True:
            with _locked(self._lock, blocking=False) as fd:
                if fd is not None:
                    yield
                    return
            if time.monotonic() >= deadline:
                raise GateClosed(self._api, self._clock(), busy=True)
            time.sleep(SLOT_POLL_S * 10)


class SlotGate:
    """At most `slots` calls at once, none inside an announced window (CleverTap, per account and API)."""

    def __init__(self, folder: Path, key: str, slots: int, *, api: str,
                 hint: Callable[[Mapping[str, str]], float | None], max_wait: float | None,
                 clock: Callable[[], float], sleep: Callable[[float], None]) -> None:
        self._slots = [folder / f"{key}.slot{i}" for i in range(slots)]
        self._window = _Window(folder / f"{key}.window")
        self._api, self._hint, self._max_wait, self._clock, self._sleep = api, hint, max_wait, clock, sleep
        self._next = 0
        self._next_lock = threading.Lock()

    @contextmanager
    def call(self) -> Iterator[Report]:
        begin = self._clock()
        while (wait := self._window.read() - self._clock()) > 0:
            if self._max_wait is not None and self._clock() - begin + wait > self._max_wait:
                raise GateClosed(self._api, self._window.read())
            activity.waiting(self._api, wait, "rate limit")
            self._sleep(wait)
        with self._next_lock:  # threads start at different slots instead of all trying slot 0 first
            first = self._next = (self._next + 1) % len(self._slots)
        while True:
            for i in range(len(self._slots)):
                with _locked(self._slots[(first + i) % len(self._slots)], blocking=False) as fd:
                    if fd is None:
                        continue

                    def report(status: int | None, headers: Mapping[str, str] | None) -> None:
                        seconds = announced_wait(status, headers, hint=self._hint)
                        if seconds is not None:
                            self._window.close_until(self._clock() + seconds)

                    yield report
                    return
            if self._max_wait is not None and self._clock() - begin > max(self._max_wait, BUSY_WAIT_S):
                raise GateClosed(self._api, self._clock(), busy=True)
            time.sleep(SLOT_POLL_S)


def _key(*parts: str) -> str:
    return hashlib.sha256(":".join(parts).encode()).hexdigest()[:24]


class Gates:
    """The gates of one installation (DATA_DIR/run/gates), handed to the API clients."""

    def __init__(self, folder: Path, *, clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] | None = None) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._clock = clock
        self._sleep = sleep

    def _hint(self, headers: Mapping[str, str]) -> float | None:
        return http.retry_after_seconds(headers, now=self._clock)

    def _sleeper(self) -> Callable[[float], None]:
        if self._sleep is not None:
            return self._sleep
        return lambda seconds: http.sleep(seconds)  # looked up at call time: tests patch lib.http.sleep

    def clearout(self, token: str, *, max_wait: float | None = None) -> SerialGate:
        return SerialGate(self.folder, "clearout-" + _key("clearout", token), api="Clearout", hint=self._hint,
                          max_wait=max_wait, clock=self._clock, sleep=self._sleeper())

    def clevertap(self, account_id: str, api: str, slots: int, *, max_wait: float | None = None) -> SlotGate:
        return SlotGate(self.folder, f"clevertap-{api}-" + _key("clevertap", account_id), slots, api="CleverTap",
                        hint=self._hint, max_wait=max_wait, clock=self._clock, sleep=self._sleeper())
