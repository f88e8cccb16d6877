"""`python -m lib.serve [streamlit options]`: everything the app needs, started and stopped together.

In sandbox mode the sandbox server (`python -m lib.sandbox`, its state in DATA_DIR/sandbox), then
the worker process (`python -m lib.worker`), then Streamlit (`streamlit run asgi.py`: the pages of
app.py plus the download route, with the given options). A worker that dies is started again
(after a pause that grows while it keeps dying); so
is the sandbox, on the same port. When Streamlit ends, or on Ctrl-C / SIGTERM, everything stops.
Each child is asked by the kernel to stop if this process is killed outright (PR_SET_PDEATHSIG).

Before anything starts: on an address beyond this machine without sign-in, it refuses (lib.serving).
Streamlit's own upload cap follows UPLOAD_MAX_MB, so a file over it is refused before it is buffered.
"""
from __future__ import annotations

import ctypes
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from collections.abc import Callable, Sequence

from lib.errors import UserError
from lib.logs import configure_logging
from lib.serving import decide_for_command, streamlit_options
from lib.settings import Settings, load_settings

log = logging.getLogger("lib.serve")

ROOT = Path(__file__).resolve().parent.parent
SANDBOX_READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 20.0
MAX_RESTART_PAUSE_S = 30.0
STABLE_AFTER_S = 60.0  # a child that lived this long starts again at once if it dies


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies (Linux), so nothing is left behind."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except OSError:
            pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Child:
    """A supervised process: how to start it, and when it last (re)started."""
    name: str
    command: list[str]
    environ: dict[str, str]
    restart: bool
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    pause: float = 1.0
    after_start: Callable[[Child], None] | None = None
    stdout: int | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(self.command, cwd=ROOT, env=self.environ, preexec_fn=_die_with_parent,
                                        stdout=self.stdout)
        self.started_at = time.monotonic()
        log.info("started %s (pid %s)", self.name, self.process.pid)
        if self.after_start is not None:
            self.after_start(self)

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s did not stop within %.0f s: killing it", self.name, timeout)
            self.process.kill()
            self.process.wait(5)


def _wait_for_sandbox(child: Child) -> None:
    """Read the sandbox's one JSON line (it serves from then on)."""
    assert child.process is not None and child.process.stdout is not None
    deadline = time.monotonic() + SANDBOX_READY_TIMEOUT_S
    line = b""
    while time.monotonic() < deadline and not line:
        line = child.process.stdout.readline()
        if child.process.poll() is not None:
            break
    if not line:
        raise UserError("The sandbox server did not start (see its messages above).")
    log.info("sandbox serving at %s", json.loads(line)["clearout_base"].rsplit("/clearout", 1)[0])
    threading.Thread(target=child.process.stdout.read, daemon=True).start()  # drain what else it prints


def children(settings: Settings, streamlit_args: Sequence[str], environ: dict[str, str]) -> list[Child]:
    python = sys.executable
    env = dict(environ)
    found: list[Child] = []
    if settings.is_sandbox and not settings.sandbox_url:
        port = settings.sandbox_port or free_port()
        env["SANDBOX_URL"] = f"http://127.0.0.1:{port}"
        env["APP_MODE"] = "sandbox"
        found.append(Child("sandbox", [
            python, "-m", "lib.sandbox", "--port", str(port), "--state-dir", str(settings.data_dir / "sandbox"),
            "--seed", str(settings.sandbox_seed), "--profiles", str(settings.sandbox_profiles),
            "--latency-ms", str(settings.sandbox_latency_ms), "--fault-rate", str(settings.sandbox_fault_rate),
            "--bulk-seconds", str(settings.sandbox_bulk_seconds), "--rpm", str(settings.sandbox_rpm)], env,
            restart=True,
            after_start=_wait_for_sandbox, stdout=subprocess.PIPE))
    found.append(Child("worker", [python, "-m", "lib.worker"], env, restart=True))
    found.append(Child("streamlit", [python, "-m", "streamlit", "run", *streamlit_options_for(settings, streamlit_args),
                                     "asgi.py"], env, restart=False))
    return found


def streamlit_options_for(settings: Settings, given: Sequence[str]) -> list[str]:
    """The options Streamlit gets: the given ones, and the upload cap of UPLOAD_MAX_MB unless given.

    Streamlit refuses an upload over server.maxUploadSize by its Content-Length, and while it streams,
    before buffering it; the app's own check (lib.csv_import) stays for `streamlit run` without us.
    """
    options = list(given)
    if not streamlit_options(options, "server.maxUploadSize"):
        options += ["--server.maxUploadSize", str(max(1, settings.upload_max_mb))]
    return options


def supervise(started: list[Child], stop: threading.Event) -> int:
    """Watch the children until Streamlit ends or `stop` is set; restart the others when they die."""
    code = 0
    while not stop.is_set():
        for child in started:
            status = child.exited()
            if status is None:
                continue
            if not child.restart:
                log.info("%s ended (exit code %s): stopping everything", child.name, status)
                stop.set()
                code = status
                break
            lived = time.monotonic() - child.started_at
            child.pause = 1.0 if lived >= STABLE_AFTER_S else min(MAX_RESTART_PAUSE_S, child.pause * 2)
            log.warning("%s exited (code %s) after %.0f s: starting it again in %.0f s", child.name, status,
                        lived, child.pause)
            if stop.wait(child.pause):
                break
            child.start()
        stop.wait(0.5)
    for child in reversed(started):
        child.stop()
    return code


def main(argv: list[str]) -> int:
    configure_logging()
    try:
        settings = load_settings()
    except UserError as exc:
        log.error("%s", exc.message)
        return 2
    decision = decide_for_command(argv, allow_unauthenticated=settings.allow_unauthenticated_network, cwd=ROOT)
    if decision.serving == "refuse":
        log.error("%s", decision.message)
        return 2
    if decision.serving == "open":
        log.warning("%s", decision.message)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    started: list[Child] = []
    try:
        for child in children(settings, argv, dict(os.environ)):
            child.start()
            started.append(child)
    except UserError as exc:
        log.error("%s", exc.message)
        for child in reversed(started):
            child.stop()
        return 1
    return supervise(started, stop)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
