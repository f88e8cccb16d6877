"""Injected faults: seeded, the right shapes, and never half-applied."""
from __future__ import annotations

import requests

from tests.sandbox.conftest import Api


def test_with_every_request_faulted_nothing_changes(make_sandbox):
    sandbox = make_sandbox(profiles=50, fault_rate=1.0, credits=100)
    api = Api(sandbox)
    target = sandbox.profile(identity=sandbox.dataset.identity(0) or sandbox.dataset.identity(1))
    identity = target["identity"]
    statuses = set()
    for _ in range(10):
        statuses.add(api.ct("POST", "/1/upload", json={"d": [
            {"identity": identity, "type": "profile", "profileData": {"MSG-email": False, "Plan": "X"}},
            {"identity": "brand-new", "type": "profile", "profileData": {"Name": "N"}}]}).status_code)
        statuses.add(api.ct("POST", "/1/subscribe", json={"d": [
            {"type": "email", "value": target["email"], "status": "Unsubscribe"}]}).status_code)
        statuses.add(api.co("POST", "/email_verify/instant", json={"email": "anyone@gmail.com"}).status_code)
        statuses.add(api.bulk("f.csv", b"Email\nanyone@gmail.com\n").status_code)
    assert statuses == {500, 503, 429}
    assert sandbox.profile(identity=identity) == target
    assert sandbox.profile(identity="brand-new") is None
    stats = sandbox.stats()
    assert stats["credits_left"] == 100 and stats["bulk_uploads_accepted"] == 0
    assert stats["faults_injected"] == 40 and stats["records_processed"] == 0


def test_fault_shapes(make_sandbox):
    api = Api(make_sandbox(profiles=20, fault_rate=1.0))
    seen: dict[tuple[str, int], object] = {}
    for _ in range(30):
        ct = api.ct("GET", "/1/profile.json", params={"identity": "x"})
        seen[("ct", ct.status_code)] = ct
        co = api.co("GET", "/email_verify/getcredits")
        seen[("co", co.status_code)] = co
    assert {key[1] for key in seen} == {500, 503, 429}
    ct_429 = seen[("ct", 429)]
    assert "Retry-After" not in ct_429.headers  # CleverTap documents none
    assert ct_429.json() == {"status": "fail", "error": "Too many concurrent requests", "code": 429}
    assert seen[("ct", 500)].json()["status"] == "fail"
    co_429 = seen[("co", 429)]
    assert co_429.json()["error"]["code"] == 1030 and co_429.headers["x-ratelimit-remaining"] == "0"
    co_503 = seen[("co", 503)]
    assert co_503.json()["status"] == "failed" and co_503.headers["Retry-After"] == "2"
    assert "Retry-After" not in seen[("co", 500)].headers and "Retry-After" not in co_429.headers


def test_faults_are_seeded(make_sandbox):
    def sequence(seed: int) -> list[int]:
        api = Api(make_sandbox(seed=seed, profiles=20, fault_rate=0.5))
        return [api.co("GET", "/email_verify/getcredits").status_code for _ in range(40)]

    first = sequence(5)
    assert first == sequence(5)
    assert 5 < first.count(200) < 35
    assert first != sequence(6)


def test_files_and_admin_routes_are_never_faulted(make_sandbox):
    sandbox = make_sandbox(profiles=20, fault_rate=1.0)

    for _ in range(5):
        assert requests.get(sandbox.base_url + "/_sandbox/stats", timeout=5).status_code == 200
        assert requests.get(sandbox.base_url + "/files/abc/x_clearout_results.csv", timeout=5).status_code == 403
