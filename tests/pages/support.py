"""Helpers for AppTest page tests: an isolated app environment and the rendered text of a page."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent.parent / "app.py")
PAGES = ["pages/home.py", "pages/connect.py", "pages/lists.py", "pages/verify.py",
         "pages/results.py", "pages/export.py", "pages/history.py"]


def isolate_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sandbox: Any = None, **environ: str) -> None:
    """Point the app at a private data dir and .env, with only `environ` configured; in sandbox mode at
    `sandbox` (a test's own, whose server-side state it can read), else at one the app starts itself."""
    import streamlit as st

    for name in ("APP_MODE", "CLEVERTAP_ACCOUNT_ID", "CLEVERTAP_PASSCODE", "CLEVERTAP_REGION",
                 "CLEVERTAP_ACCOUNT_NAME", "CLEVERTAP_API_BASE", "CLEAROUT_API_TOKEN", "CLEAROUT_API_BASE",
                 "SANDBOX_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ENV_FILE", str(tmp_path / ".env"))
    monkeypatch.setenv("SANDBOX_PROFILES", "2000")
    if sandbox is not None:
        monkeypatch.setenv("SANDBOX_URL", sandbox.base_url)
        monkeypatch.setenv("SANDBOX_SEED", str(sandbox.config.seed))
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    st.cache_resource.clear()
    st.cache_data.clear()


def release_app() -> None:
    """Stop the workers started for the app and what the cached Runtime started (sandbox server)."""
    import streamlit as st

    stop_workers()
    st.cache_resource.clear()  # calls Runtime.close through on_release
    st.cache_data.clear()


def app_test() -> AppTest:
    return AppTest.from_file(APP, default_timeout=30)


def rendered_text(at: AppTest) -> str:
    """Every string the page sent to the browser (all element protos), for leak checks."""
    parts: list[str] = []

    def walk(node: Any) -> None:
        proto = getattr(node, "proto", None)
        if proto is not None:
            parts.append(str(proto))
        for child in getattr(node, "children", {}).values():
            walk(child)

    walk(at._tree)
    return "\n".join(parts)


def plain(markdown: str) -> str:
    """Markdown as a person reads it, for the backslash escapes of lib.ui.escape_md (user and lib text
    is escaped wherever Streamlit renders Markdown): `clearout\\.io` reads `clearout.io`."""
    return re.sub(r"\\(.)", r"\1", markdown)


def page_errors(at: AppTest) -> list[str]:
    return [str(e.value) for e in at.exception] + [e.value for e in at.error]


@pytest.fixture
def app_runtime_cleanup() -> Iterator[None]:
    yield
    release_app()


_workers: list[Any] = []


def start_worker() -> Any:
    """The worker process's loops, in threads of this process, over the app's runtime (ui.runtime()):
    what `python -m lib.worker` does beside a real server. Stopped by release_app()."""
    from lib import ui
    from lib.worker.process import WorkerProcess

    worker = WorkerProcess(ui.runtime()).start()
    _workers.append(worker)
    return worker


def stop_workers() -> None:
    while _workers:
        _workers.pop().shutdown(timeout=10, close_runtime=False)


def open_page(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, page: str = "pages/home.py", *, sandbox: Any = None,
              worker: bool = True, **environ: str) -> AppTest:
    """The app on `page` in an isolated environment, with the worker's loops running (unless `worker`
    is False), and no exception on the page."""
    isolate_app(monkeypatch, tmp_path, sandbox, **environ)
    at = app_test().run()
    if worker:
        start_worker()
    if page != "pages/home.py":
        at.switch_page(page)
    at.run()
    assert not at.exception, page_errors(at)
    return at


def wait_for(condition: Any, timeout: float = 30.0, what: str = "the worker") -> None:
    """Poll `condition()` until it is true (work done by the worker's threads)."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} did not get there in {timeout:.0f} s"
        time.sleep(0.05)


def balance_read() -> bool:
    """The worker has answered the page's question for the balance (with a figure or an error)."""
    from lib import ui

    rt = ui.runtime()
    record = rt.store.balance(rt.mode)
    return record is not None and record.fetched_at is not None
