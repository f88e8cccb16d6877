"""Helpers for AppTest page tests: an isolated app environment and the rendered text of a page."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PAGES = ["pages/home.py", "pages/connect.py", "pages/lists.py", "pages/verify.py",
         "pages/results.py", "pages/export.py", "pages/history.py"]


def isolate_app(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **environ: str) -> None:
    """Point the app at a private data dir and .env, with only `environ` configured."""
    import streamlit as st

    for name in ("APP_MODE", "CLEVERTAP_ACCOUNT_ID", "CLEVERTAP_PASSCODE", "CLEVERTAP_REGION",
                 "CLEVERTAP_ACCOUNT_NAME", "CLEVERTAP_API_BASE", "CLEAROUT_API_TOKEN", "CLEAROUT_API_BASE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("ENV_FILE", str(tmp_path / ".env"))
    monkeypatch.setenv("SANDBOX_PROFILES", "2000")
    for name, value in environ.items():
        monkeypatch.setenv(name, value)
    st.cache_resource.clear()
    st.cache_data.clear()


def release_app() -> None:
    """Stop whatever the cached Runtime started (sandbox server, workers)."""
    import streamlit as st

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


def page_errors(at: AppTest) -> list[str]:
    return [str(e.value) for e in at.exception] + [e.value for e in at.error]


@pytest.fixture
def app_runtime_cleanup() -> Iterator[None]:
    yield
    release_app()
