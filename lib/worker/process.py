"""The worker process: verification, pulls, exports, undo, read-back and the pages' small tasks.

`python -m lib.worker` runs it; the run script (`python -m lib.serve`) starts it beside Streamlit
and restarts it if it dies. It needs no browser: it takes its work from the store, names itself in
every lease it takes (host, pid, start time), and beats every HEARTBEAT_S so pages can tell it lives.
A worker started after another one died takes that one's leases over at once.
"""
from __future__ import annotations

import logging
import signal
import threading
from dataclasses import dataclass, field

from lib.export.worker import ExportWorker
from lib.processes import this_process
from lib.pulls import PullWorker
from lib.runtime import Runtime, start_runtime
from lib.settings import Settings
from lib.store import ExportRun, Store
from lib.verification.worker import VerificationWorker
from lib.worker.loop import Loop, LoopThread
from lib.worker.tasks import TaskWorker

log = logging.getLogger(__name__)

HEARTBEAT_S = 2.0
STOP_TIMEOUT_S = 30.0  # an export stops after the batches in flight; an upload may take longer


@dataclass
class Heartbeat:
    """Tells the pages this worker lives: a row in the store, renewed every HEARTBEAT_S."""

    store: Store
    mode: str
    owner: str
    name: str = "heartbeat"

    def run_once(self) -> bool:
        self.store.beat(self.owner, self.mode)
        return False

    def release(self) -> None:
        self.store.worker_stopped(self.owner)


@dataclass
class WorkerProcess:
    """Every loop of the worker in its own thread, over one runtime; `stop` ends them all."""

    runtime: Runtime
    stop: threading.Event = field(default_factory=threading.Event)
    owner: str = field(default_factory=lambda: str(this_process()))
    threads: list[LoopThread] = field(default_factory=list)

    def start(self) -> WorkerProcess:
        rt, store, mode, clients = self.runtime, self.runtime.store, self.runtime.mode, self.runtime.clients

        def run_client(run: ExportRun):  # type: ignore[no-untyped-def]
            from lib.export.runs import connection_of
            return clients.clevertap(connection_of(store, run))

        loops: list[tuple[Loop, float, float]] = [
            (VerificationWorker(store, clients.clearout, mode=mode, owner=self.owner, stop=self.stop,
                                cache_days=rt.settings.verify_cache_days, part_rows=rt.settings.verify_part_rows),
             0.5, 1.0),
            (ExportWorker(store, run_client, mode=mode, owner=self.owner, stop=self.stop), 0.0, 1.0),
            (PullWorker(store, clients.clevertap, mode=mode, owner=self.owner, stop=self.stop), 0.0, 1.0),
            (TaskWorker(store, clients, mode=mode, owner=self.owner, stop=self.stop), 0.0, 0.5),
        ]
        loops.append((Heartbeat(store, mode, self.owner), HEARTBEAT_S, HEARTBEAT_S))
        self.threads = [LoopThread(loop, self.stop, busy_pause=busy, idle_pause=idle, on_end=[store.close]).start()
                        for loop, busy, idle in loops]
        log.info("worker %s started (%s mode)", self.owner, rt.mode)
        return self

    def serve(self) -> None:
        """Wait until stopped (a signal sets `stop`), then stop every loop."""
        while not self.stop.wait(1.0):
            pass
        self.shutdown()

    def shutdown(self, timeout: float = STOP_TIMEOUT_S, *, close_runtime: bool = True) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout)
        if close_runtime:
            self.runtime.close()
        log.info("worker %s stopped", self.owner)


def run(settings: Settings) -> int:
    """Run a worker in this process until SIGTERM or SIGINT."""
    worker = WorkerProcess(start_runtime(settings, role="worker"))
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: worker.stop.set())
    worker.start().serve()
    return 0
