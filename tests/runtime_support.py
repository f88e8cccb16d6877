"""A Runtime for lib tests: an isolated data dir and .env, clients pointed at a sandbox."""
from __future__ import annotations

import socket
from pathlib import Path


from lib.runtime import Runtime, start_runtime
from lib.settings import load_settings


def make_runtime(tmp_path: Path, sandbox: object | None = None, **environ: str) -> Runtime:
    """Live mode against `sandbox` (its per-region bases), or sandbox mode when `sandbox` is None."""
    env = {"DATA_DIR": str(tmp_path / "data"), "SANDBOX_PROFILES": "2000"}
    if sandbox is not None:
        env.update(APP_MODE="live", CLEVERTAP_API_BASE=sandbox.clevertap_base_template,
                   CLEAROUT_API_BASE=sandbox.clearout_base)
    env.update(environ)
    return start_runtime(load_settings(tmp_path / ".env", environ=env))


def closed_port_url() -> str:
    """A base URL on which nothing listens (a port just released by the OS)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"
