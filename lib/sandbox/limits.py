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
    """A fixed 60-second window counted per token, as Clearout's x-ratelimit-* headers describe it."""

    WINDOW_S = 60.0

    def __init__(self, limit: int, clock: Callable[[], float]) -> None:
        self.limit = limit
        self._clock = clock
        self._window_start = -math.inf
        self._count = 0
        self._lock = threading.Lock()
        self.rejected = 0

    def hit(self) -> tuple[bool, dict[str, str], float]:
        """Count one request. Returns (allowed, x-ratelimit headers, window end epoch)."""
        with self._lock:
            now = self._clock()
            if now - self._window_start >= self.WINDOW_S:
                self._window_start, self._count = now, 0
            allowed = self._count < self.limit
            if allowed:
                self._count += 1
            else:
                self.rejected += 1
            return allowed, self._headers(now), self._window_start + self.WINDOW_S

    def peek(self) -> dict[str, str]:
        """Headers for a response that does not count (e.g. a request with a bad token)."""
        with self._lock:
            return self._headers(self._clock())

    def _headers(self, now: float) -> dict[str, str]:
        if now - self._window_start >= self.WINDOW_S:
            remaining, reset = self.limit, self.WINDOW_S
        else:
            remaining = max(0, self.limit - self._count)
            reset = self._window_start + self.WINDOW_S - now
        return {"x-ratelimit-limit": str(self.limit), "x-ratelimit-remaining": str(remaining),
                "x-ratelimit-reset": str(max(1, math.ceil(reset)))}


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
