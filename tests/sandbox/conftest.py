"""Thin HTTP helpers for the sandbox contract tests: every call goes over real HTTP."""
from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from typing import Any

import pytest
import requests

TIMEOUT = 15


class Api:
    """Authenticated calls to one sandbox's two APIs."""

    def __init__(self, sandbox: Any) -> None:
        self.sb = sandbox
        self.session = requests.Session()

    def ct_headers(self) -> dict[str, str]:
        return {"X-CleverTap-Account-Id": self.sb.account_id, "X-CleverTap-Passcode": self.sb.passcode}

    def ct(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {**self.ct_headers(), **kwargs.pop("headers", {})}
        base = kwargs.pop("base", self.sb.clevertap_base)
        return self.session.request(method, base + path, headers=headers, timeout=TIMEOUT, **kwargs)

    def co(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        headers = {"Authorization": f"Bearer {self.sb.clearout_token}", **kwargs.pop("headers", {})}
        return self.session.request(method, self.sb.clearout_base + path, headers=headers,
                                    timeout=TIMEOUT, **kwargs)

    def upload(self, records: list[dict[str, Any]]) -> dict[str, Any]:
        response = self.ct("POST", "/1/upload", json={"d": records})
        assert response.status_code == 200, response.text
        return response.json()

    def cursor_pages(self, query: dict[str, Any], batch_size: int | None = 5000) -> Iterator[dict[str, Any]]:
        """Every page of one export, skipping "still in progress" answers."""
        suffix = "" if batch_size is None else f"?batch_size={batch_size}"
        first = self.ct("POST", "/1/profiles.json" + suffix, json=query)
        assert first.status_code == 200, first.text
        cursor = first.json()["cursor"]
        while cursor:
            page = self.ct("GET", "/1/profiles.json?cursor=" + cursor).json()
            if page.get("code") == 2:
                continue
            assert page["status"] == "success", page
            yield page
            cursor = page.get("next_cursor")

    def all_records(self, query: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        query = query or {"event_name": "-1"}
        return [r for page in self.cursor_pages(query) for r in page.get("records", [])]

    def credits(self) -> int:
        return self.co("GET", "/email_verify/getcredits").json()["data"]["available_credits"]

    def bulk(self, name: str, content: bytes, **fields: str) -> requests.Response:
        return self.co("POST", "/email_verify/bulk", files={"file": (name, content)}, data=fields)

    def progress(self, list_id: str) -> dict[str, Any]:
        return self.co("GET", "/email_verify/bulk/progress_status", params={"list_id": list_id}).json()

    def wait_completed(self, list_id: str, timeout: float = 15.0) -> dict[str, Any]:
        return wait_for(lambda: (p := self.progress(list_id))["data"]["progress_status"] != "running" and p,
                        timeout)


def wait_for(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll `check` until it returns something truthy (tiny sleeps: the sandbox answers in ms)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def yyyymmdd(day: date) -> int:
    return int(day.strftime("%Y%m%d"))


def last_days(sb: Any, days: int) -> dict[str, int]:
    return {"from": yyyymmdd(sb.anchor_date - timedelta(days=days)), "to": yyyymmdd(sb.anchor_date)}


@pytest.fixture(scope="session")
def api(sandbox: Any) -> Api:
    """Calls to the shared, read-only session sandbox."""
    return Api(sandbox)


@pytest.fixture
def make_api(make_sandbox: Callable[..., Any]) -> Callable[..., Api]:
    """A private sandbox (custom knobs) with its Api."""
    def _make(**knobs: Any) -> Api:
        return Api(make_sandbox(**knobs))
    return _make
