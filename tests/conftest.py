"""Shared fixtures: a sandbox over real HTTP on 127.0.0.1, and an isolated data directory."""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterator

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def sandbox() -> Iterator["Sandbox"]:
    """One shared sandbox for read-mostly tests. Tests that mutate state use `make_sandbox`."""
    from lib.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(seed=7, profiles=2_000)) as server:
        yield server


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., "Sandbox"]]:
    """Factory for a private sandbox with custom knobs; every one started is stopped afterwards."""
    from lib.sandbox import Sandbox, SandboxConfig

    started: list[Sandbox] = []

    def _make(**knobs) -> Sandbox:
        knobs.setdefault("seed", 7)
        knobs.setdefault("profiles", 2_000)
        server = Sandbox(SandboxConfig(**knobs)).start()
        started.append(server)
        return server

    yield _make
    for server in started:
        server.stop()
