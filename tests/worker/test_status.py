"""lib/worker/status.py: what pages say about the worker process, from its heartbeat."""
from __future__ import annotations

import time

from lib.store import Store
from lib.worker.status import STALE_AFTER_S, worker_status


def test_never_started_stopped_and_stale_are_said_plainly(tmp_path) -> None:
    store = Store(tmp_path)
    never = worker_status(store, "sandbox")
    assert not never.alive and "./scripts/run-app.sh" in (never.message or "")
    store.beat("host:1:2", "sandbox")
    assert worker_status(store, "sandbox").alive and worker_status(store, "live").alive is False
    stale = worker_status(store, "sandbox", now=time.time() + STALE_AFTER_S + 1)
    assert not stale.alive and "last seen" in (stale.message or "") and "restarts it" in (stale.message or "")
    store.worker_stopped("host:1:2")
    assert not worker_status(store, "sandbox").alive
    store.beat("host:1:2", "sandbox")  # started again
    assert worker_status(store, "sandbox").alive
