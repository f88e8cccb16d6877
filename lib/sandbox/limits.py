"""What throttles the sandbox: per-API concurrency (CleverTap), a per-minute window (Clearout), faults."""
from __future__ import annotations

import math
import random
import threading
import time
from collections.abc import Callable


class ConcurrencyLimiter:
    """At most `limit` requests in flight; the next one is refused, never queued (CleverTap's 429)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0
        self.max_in_flight = 0
        self.rejected = 0
        self._lock = threading.Lock()

    def try_acquire(self) -> bool:
        with self._lock:
            if self.in_flight >= self.limit:
                self.rejected += 1
                return False
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return True

    def release(self) -> None:
        with self._lock:
            self.in_flight -= 1

    def reset_stats(self) -> None:
        with self._lock:
            self.max_in_flight = self.in_flight
            self.rejected = 0


class RpmLimiter:
    """A fixed window (60 s, as Clearout's x-ratelimit-* headers describe it) counted per token."""

    def __init__(self, limit: int, clock: Callable[[], float], window_s: float = 60.0) -> None:
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._window_start = -math.inf
        self._count = 0
        self._lock = threading.Lock()
        self.rejected = 0

    def hit(self) -> tuple[bool, dict[str, str], float]:
        """Count one request. Returns (allowed, x-ratelimit headers, window end epoch)."""
        with self._lock:
            now = self._clock()
            if now - self._window_start >= self.window_s:
                self._window_start, self._count = now, 0
            allowed = self._count < self.limit
            if allowed:
                self._count += 1
            else:
                self.rejected += 1
            return allowed, self._headers(now), self._window_start + self.window_s

    def peek(self) -> dict[str, str]:
        """Headers for a response that does not count (e.g. a request with a bad token)."""
        with self._lock:
            return self._headers(self._clock())

    def _headers(self, now: float) -> dict[str, str]:
        if now - self._window_start >= self.window_s:
            remaining, reset = self.limit, self.window_s
        else:
            remaining = max(0, self.limit - self._count)
            reset = self._window_start + self.window_s - now
        return {"x-ratelimit-limit": str(self.limit), "x-ratelimit-remaining": str(remaining),
                "x-ratelimit-reset": str(max(1, math.ceil(reset)))}


class WaitWindows:
    """The waits the sandbox announced, per API and caller key, and the calls that arrived inside one.

    A wait is announced by a Clearout 429 (until its per-minute window ends) or by any answer with
    Retry-After (seconds, from the moment it leaves). A later request with the same key (Clearout
    token, CleverTap account id) that arrives after the announcement and before the wait is over
    counts in `calls`: a caller sharing one rate-limit budget across its workers keeps it at zero.
    Times are time.monotonic() seconds, the clock of a request's arrival; the advanceable Clock
    (expiry only) plays no part. Overlapping windows of one key are merged.
    """

    APIS = ("clearout", "clevertap")
    _KEEP_S = 600.0  # an ended window is kept this long, for requests that arrived in it and wait for a lock

    def __init__(self) -> None:
        self._windows: dict[tuple[str, str], list[list[float]]] = {}
        self._lock = threading.Lock()
        self.calls = dict.fromkeys(self.APIS, 0)
        self.announced = dict.fromkeys(self.APIS, 0)

    def announce(self, api: str, key: str, start: float, end: float) -> None:
        if end <= start:
            return
        with self._lock:
            self.announced[api] = self.announced.get(api, 0) + 1
            windows = self._windows.setdefault((api, key), [])
            windows[:] = [w for w in windows if w[1] > start - self._KEEP_S]
            if windows and start <= windows[-1][1] and end >= windows[-1][0]:
                windows[-1][0] = min(windows[-1][0], start)
                windows[-1][1] = max(windows[-1][1], end)
            else:
                windows.append([start, end])

    def arrived(self, api: str, key: str, at: float) -> bool:
        """Count a request that arrived at `at` if that is inside a window announced for its key."""
        with self._lock:
            inside = any(start <= at < end for start, end in self._windows.get((api, key), ()))
            if inside:
                self.calls[api] = self.calls.get(api, 0) + 1
            return inside

    def reset(self) -> None:
        """Forget the counts and the windows announced so far (reset_stats: a fresh start)."""
        with self._lock:
            self._windows.clear()
            self.calls = dict.fromkeys(self.APIS, 0)
            self.announced = dict.fromkeys(self.APIS, 0)


class FaultInjector:
    """Seeded: the same seed and request order give the same faults."""

    KINDS = (500, 503, 429)

    def __init__(self, rate: float, seed: int) -> None:
        self.rate = rate
        self._rng = random.Random(f"faults:{seed}")
        self._lock = threading.Lock()
        self.injected = 0

    def draw(self) -> int | None:
        """The HTTP status of the fault to inject for this request, or None."""
        if self.rate <= 0.0:
            return None
        with self._lock:
            if self._rng.random() >= self.rate:
                return None
            self.injected += 1
            return self.KINDS[self._rng.randrange(len(self.KINDS))]


class Clock:
    """Wall-clock time plus an offset the tests can advance (cursor, URL and result expiry)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        self.offset += seconds


class Counters:
    """Named integer counters for sb.stats(); thread-safe, resettable."""

    def __init__(self) -> None:
        self._values: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0) + amount

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._values)

    def reset(self) -> None:
        with self._lock:
            self._values.clear()
