"""Calls made inside a wait the sandbox announced (Clearout 429, Retry-After), per API and key."""
from __future__ import annotations

import time
from dataclasses import replace

import pytest

from lib.sandbox import SandboxConfig
from lib.sandbox.limits import WaitWindows
from tests.sandbox.conftest import Api


def _counts(sb) -> tuple[int, dict[str, int]]:
    stats = sb.stats()
    return stats["calls_in_wait_window"], stats["calls_in_wait_window_by_api"]


def _force_faults(monkeypatch, sb, *statuses: int) -> None:
    """The next requests get these faults, in order; then none."""
    queue = list(statuses)
    monkeypatch.setattr(sb.faults, "draw", lambda: queue.pop(0) if queue else None)


def test_windows_merge_and_count_only_after_their_announcement():
    waits = WaitWindows()
    waits.announce("clearout", "t", 10.0, 20.0)
    waits.announce("clearout", "t", 15.0, 25.0)   # overlaps: one window 10..25
    waits.announce("clearout", "t", 40.0, 42.0)
    assert not waits.arrived("clearout", "t", 9.9)   # on its way before the announcement
    assert waits.arrived("clearout", "t", 10.0) and waits.arrived("clearout", "t", 24.9)
    assert not waits.arrived("clearout", "t", 25.0) and not waits.arrived("clearout", "t", 30.0)
    assert waits.arrived("clearout", "t", 41.0)
    assert not waits.arrived("clearout", "other", 12.0) and not waits.arrived("clevertap", "t", 12.0)
    assert waits.calls == {"clearout": 3, "clevertap": 0}
    waits.reset()
    assert waits.calls == {"clearout": 0, "clevertap": 0} and not waits.arrived("clearout", "t", 41.0)


def test_a_clearout_429_announces_a_wait_until_the_window_ends(make_sandbox):
    sb = make_sandbox(profiles=20, rpm=2, rpm_window_s=1.0)
    api = Api(sb)
    statuses = [api.co("GET", "/email_verify/getcredits").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = api.co("GET", "/email_verify/getcredits")
    reset = int(limited.headers["x-ratelimit-reset"])
    assert limited.status_code == 429 and reset == 1
    assert _counts(sb) == (1, {"clearout": 1, "clevertap": 0})  # the 4th; the 3rd announced the wait
    # Other keys and the other API draw on other budgets.
    assert api.co("GET", "/email_verify/getcredits", headers={"Authorization": "not-the-token"}).status_code == 401
    assert api.ct("GET", "/1/profile.json", params={"identity": "x"}).status_code == 200
    assert _counts(sb) == (1, {"clearout": 1, "clevertap": 0})

    time.sleep(reset)  # waiting out x-ratelimit-reset
    assert api.co("GET", "/email_verify/getcredits").status_code == 200
    assert _counts(sb) == (1, {"clearout": 1, "clevertap": 0})

    sb.reset_stats()
    assert _counts(sb) == (0, {"clearout": 0, "clevertap": 0})


def test_an_injected_clearout_503_announces_its_retry_after(make_sandbox, monkeypatch):
    sb = make_sandbox(profiles=20, fault_retry_after_s=1)
    api = Api(sb)
    _force_faults(monkeypatch, sb, 503)
    fault = api.co("POST", "/email_verify/instant", json={"email": "valid@example.com"})
    assert fault.status_code == 503 and fault.headers["Retry-After"] == "1"
    assert _counts(sb)[0] == 0  # the answer that announces the wait does not count itself
    started = time.monotonic()
    assert api.co("GET", "/email_verify/getcredits").status_code == 200
    assert time.monotonic() - started < 1.0
    assert _counts(sb) == (1, {"clearout": 1, "clevertap": 0})
    time.sleep(1.0)
    assert api.co("GET", "/email_verify/getcredits").status_code == 200
    assert _counts(sb) == (1, {"clearout": 1, "clevertap": 0})


def test_clevertap_faults_announce_no_wait(make_sandbox, monkeypatch):
    sb = make_sandbox(profiles=20)
    api = Api(sb)
    _force_faults(monkeypatch, sb, 429, 503)
    for status in (429, 503):
        fault = api.ct("GET", "/1/profile.json", params={"identity": "x"})
        assert fault.status_code == status and "Retry-After" not in fault.headers
    assert api.ct("GET", "/1/profile.json", params={"identity": "x"}).status_code == 200
    assert _counts(sb) == (0, {"clearout": 0, "clevertap": 0})


def test_any_clevertap_retry_after_announces_a_wait_for_that_account(make_sandbox, monkeypatch):
    sb = make_sandbox(profiles=20)
    api = Api(sb)
    key = ("clevertap", "GET", "profile.json")
    route = sb._routes[key]

    def busy(request):
        response = route.handler(request)
        response.headers["Retry-After"] = "30"
        return response

    monkeypatch.setitem(sb._routes, key, replace(route, handler=busy))
    api.ct("GET", "/1/profile.json", params={"identity": "x"})
    assert _counts(sb)[0] == 0
    monkeypatch.setitem(sb._routes, key, route)
    api.ct("GET", "/1/profile.json", params={"identity": "x"})
    api.ct("POST", "/1/upload", json={"d": []})
    api.ct("GET", "/1/profile.json", params={"identity": "x"}, headers={"X-CleverTap-Account-Id": "OTHER"})
    api.co("GET", "/email_verify/getcredits")
    assert _counts(sb) == (2, {"clearout": 0, "clevertap": 2})


def test_new_knobs_are_checked():
    with pytest.raises(ValueError, match="rpm_window_s"):
        SandboxConfig(rpm_window_s=0)
    for bad in (0, 1.5, True):
        with pytest.raises(ValueError, match="fault_retry_after_s"):
            SandboxConfig(fault_retry_after_s=bad)
