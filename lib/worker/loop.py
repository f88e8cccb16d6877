"""One shape for every worker: a `run_once()` round in a thread, paced, stopped the same way."""
from __future__ import annotations

import logging
import threading
from typing import Protocol
from collections.abc import Callable, Sequence

log = logging.getLogger(__name__)


class Loop(Protocol):
    """A worker: `run_once()` advances what it may and says whether more is in flight right now;
    `release()` hands over what it holds, called only once its thread has really ended."""

    name: str

    def run_once(self) -> bool: ...

    def release(self) -> None: ...


class LoopThread:
    """Runs a loop's rounds in a daemon thread: `busy_pause` between busy rounds, `idle_pause` otherwise.

    A round that raises is logged and the loop goes on: the states in the store say what happened.
    """

    def __init__(self, loop: Loop, stop: threading.Event, *, busy_pause: float = 0.5, idle_pause: float = 1.0,
                 on_end: Sequence[Callable[[], None]] = ()) -> None:
        self.loop = loop
        self.stop = stop
        self.busy_pause = busy_pause
        self.idle_pause = idle_pause
        self._thread = threading.Thread(target=self._run, name=f"worker-{loop.name}", daemon=True)
        self._on_end = on_end

    def start(self) -> LoopThread:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                busy = self.loop.run_once()
            except Exception:
                log.exception("%s worker: a round failed", self.loop.name)
                busy = False
            self.stop.wait(self.busy_pause if busy else self.idle_pause)
        for end in self._on_end:  # this thread's own resources, e.g. its database connection
            end()

    def join(self, timeout: float) -> bool:
        """Wait for the thread to end; hand over the loop's leases only if it did.

        A thread still inside a round after `timeout` keeps its leases: releasing them would let a
        new worker start the same work while this one still does it. They are freed when this
        process exits (a dead owner's lease is taken over at once) or when they expire.
        """
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("%s worker did not stop within %.0f s; its leases stay until this process exits",
                        self.loop.name, timeout)
            return False
        self.loop.release()
        return True
