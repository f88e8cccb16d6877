"""Shared fixtures: a sandbox over real HTTP on 127.0.0.1, a scripted HTTP server, and retries
without waiting."""
from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any
from collections.abc import Callable, Iterator

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from lib.sandbox import Sandbox

ROOT = Path(__file__).resolve().parent.parent
# AppTest runs the app in this process: without sign-in it serves one local user only on a loopback
# address (lib.serving), which .streamlit/config.toml says when pytest runs from the repository root.
# Said here too, before Streamlit reads its config, so that the page tests do not depend on the cwd.
os.environ.setdefault("STREAMLIT_SERVER_ADDRESS", "127.0.0.1")


@pytest.fixture(scope="session")
def sandbox() -> Iterator[Sandbox]:
    """One shared sandbox for read-mostly tests. Tests that mutate state use `make_sandbox`."""
    from lib.sandbox import Sandbox, SandboxConfig

    with Sandbox(SandboxConfig(seed=7, profiles=2_000)) as server:
        yield server


@pytest.fixture
def make_sandbox() -> Iterator[Callable[..., Sandbox]]:
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


@pytest.fixture
def scripted() -> Iterator[Callable[..., Any]]:
    """`scripted([(status, headers, body), ...])` starts a server on 127.0.0.1, port 0 (tests/http_support.py)."""
    from tests.http_support import scripted_servers

    with scripted_servers() as start:
        yield start


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Retries and polls without waiting, jitter pinned to 1.0; returns the sleeps asked for."""
    from lib import http

    slept: list[float] = []
    monkeypatch.setattr(http, "sleep", slept.append)
    monkeypatch.setattr(http, "jitter", lambda: 1.0)
    return slept


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's Chromium driven by Playwright (`playwright install` cannot reach its server here)."""
    import os

    from tests.e2e_support import CHROMIUM, CHROMIUM_ARGS

    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: ./scripts/run-tests.sh installs it (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is missing: run ./scripts/run-tests.sh, which installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()
