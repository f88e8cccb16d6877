"""Whether the worker process is alive, as pages tell it: from its heartbeat in the store."""
from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime, UTC

from lib.store import Store

STALE_AFTER_S = 10.0  # five missed heartbeats


@dataclass(frozen=True)
class WorkerStatus:
    alive: bool
    message: str | None  # what to tell the user when it is not


def worker_status(store: Store, mode: str, now: float | None = None) -> WorkerStatus:
    beat = store.latest_worker(mode)
    now = time.time() if now is None else now
    if beat is None:
        return WorkerStatus(False, "The worker process is not running, so verifications, audience pulls and "
                                   "exports wait. Start the app with ./scripts/run-app.sh, which runs it.")
    if beat.stopped_at is None and now - beat.heartbeat_at <= STALE_AFTER_S:
        return WorkerStatus(True, None)
    since = datetime.fromtimestamp(beat.heartbeat_at, UTC).strftime("%H:%M:%S UTC")
    return WorkerStatus(False, f"The worker process stopped (last seen {since}): verifications, audience pulls and "
                               "exports wait until it is back. The run script restarts it; if this stays, restart "
                               "the app with ./scripts/run-app.sh.")
