"""`python -m lib.serve`, the README's run command: it starts the sandbox, the worker and Streamlit,
starts the worker again when it dies, and stops everything on SIGTERM."""
from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from lib.processes import ProcessId
from lib.store import Store
from lib.worker.status import worker_status
from tests.e2e_support import app_server


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in Path(f"/proc/{pid}/stat").read_text().split(") ")[1][:1]


def wait_until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def test_serve_restarts_a_dead_worker_and_stops_everything(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with app_server(data_dir, tmp_path / "serve.log", SANDBOX_PROFILES="500") as server:
        store = Store(data_dir)
        wait_until(lambda: worker_status(store, "sandbox").alive, 30, "the worker never beat")
        first = ProcessId.parse(store.latest_worker("sandbox").owner)
        assert first is not None and alive(first.pid)
        children = [int(p) for p in Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
                    .read_text().split()]
        assert first.pid in children and len(children) == 3  # sandbox, worker, streamlit

        os.kill(first.pid, signal.SIGKILL)
        wait_until(lambda: store.latest_worker("sandbox").owner != str(first), 30, "the worker was not restarted")
        second = ProcessId.parse(store.latest_worker("sandbox").owner)
        assert second is not None and second.pid != first.pid and worker_status(store, "sandbox").alive
        assert "exited" in server.log() and "starting it again" in server.log()
        children = [int(p) for p in Path(f"/proc/{server.process.pid}/task/{server.process.pid}/children")
                    .read_text().split()]
        store.close()
    # app_server sent SIGTERM and waited: every child is gone with the supervisor.
    assert server.process.returncode is not None
    for pid in children:
        wait_until(lambda pid=pid: not alive(pid), 10, f"child {pid} outlived the supervisor")
