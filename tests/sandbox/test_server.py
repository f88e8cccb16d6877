"""Routing, credentials, regions, admin routes and the standalone CLI."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest
import requests

from tests.conftest import ROOT
from tests.sandbox.conftest import TIMEOUT


def test_base_urls_and_credentials_have_the_documented_shapes(sandbox):
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/clevertap/in1", sandbox.clevertap_base)
    assert sandbox.clevertap_base_template.format(region="in1") == sandbox.clevertap_base
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/clearout/v2", sandbox.clearout_base)
    assert sandbox.region == "IN1"
    assert re.fullmatch(r"[A-Z0-9]{3}-SANDBOX-[A-Z0-9]{4}", sandbox.account_id)
    assert re.fullmatch(r"[0-9a-f]{32}:[0-9a-f]{64}", sandbox.clearout_token)
    assert sandbox.passcode and sandbox.passcode not in repr(sandbox)


def test_credentials_derive_from_the_seed(make_sandbox, sandbox):
    other = make_sandbox(seed=8, profiles=10)
    assert other.account_id != sandbox.account_id
    assert other.clearout_token != sandbox.clearout_token
    assert make_sandbox(seed=7, profiles=10).passcode == sandbox.passcode


@pytest.mark.parametrize("path", [
    "/clevertap/in1/1/segment/users.json",        # invented segment-membership path
    "/clevertap/in1/1/segments/123/members.json",
    "/clevertap/xx9/1/profile.json",               # no such region
    "/clevertap/in1/2/profile.json",
    "/clearout/v2/email_verify/unknown",
    "/clearout/v1/email_verify/getcredits",
    "/files/nothing",
    "/",
])
def test_unknown_paths_are_404(api, path):
    response = requests.get(api.sb.base_url + path, headers=api.ct_headers(), timeout=TIMEOUT)
    assert response.status_code == 404


def test_the_project_exists_in_its_own_region_only(api):
    for region in ("eu1", "us1", "sg1", "aps3", "mec1"):
        base = api.sb.clevertap_base_template.format(region=region)
        response = api.ct("GET", "/1/profile.json", params={"identity": "1000000"}, base=base)
        assert response.status_code == 401
        assert response.json() == {"status": "fail", "error": "Invalid Credentials", "code": 401}
    assert api.ct("GET", "/1/profile.json", params={"identity": "1000000"}).status_code == 200


@pytest.mark.parametrize("headers", [
    {"X-CleverTap-Passcode": "WRONG-PASS"},
    {"X-CleverTap-Account-Id": "W8R-8R5-K55Z"},
    {"X-CleverTap-Account-Id": "", "X-CleverTap-Passcode": ""},
])
def test_wrong_account_or_passcode_is_401(api, headers):
    response = api.ct("POST", "/1/upload", headers=headers,
                      json={"d": [{"identity": "1000000", "type": "profile", "profileData": {"A": 1}}]})
    assert response.status_code == 401
    assert response.json() == {"status": "fail", "error": "Account ID is not valid", "code": 401}


def test_admin_stats_and_reset_over_http(make_api):
    api = make_api(profiles=50)
    api.ct("GET", "/1/profile.json", params={"identity": "1000000"})
    api.co("GET", "/email_verify/getcredits")
    stats = requests.get(api.sb.base_url + "/_sandbox/stats", timeout=TIMEOUT).json()
    assert stats["requests"]["clevertap.profile"] == 1
    assert stats["requests"]["clearout.getcredits"] == 1
    assert stats["credits_left"] == api.sb.config.credits
    assert stats == {**api.sb.stats(), "requests": stats["requests"], "responses": stats["responses"]}
    assert requests.post(api.sb.base_url + "/_sandbox/reset-stats", timeout=TIMEOUT).status_code == 200
    after = api.sb.stats()
    assert after["requests"] == {} and after["max_in_flight"]["profile"] == 0


def test_cli_prints_one_json_line_and_serves_until_terminated(tmp_path):
    process = subprocess.Popen(
        [sys.executable, "-m", "lib.sandbox", "--port", "0", "--profiles", "100", "--seed", "3",
         "--state-dir", str(tmp_path / "state")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = process.stdout.readline()
        info = json.loads(line)
        assert set(info) == {"clevertap_base", "clearout_base", "account_id", "passcode", "region",
                             "clearout_token"}
        credits = requests.get(info["clearout_base"] + "/email_verify/getcredits", timeout=TIMEOUT,
                               headers={"Authorization": info["clearout_token"]})
        assert credits.json()["status"] == "success"
        headers = {"X-CleverTap-Account-Id": info["account_id"], "X-CleverTap-Passcode": info["passcode"]}
        upload = requests.post(info["clevertap_base"] + "/1/upload", headers=headers, timeout=TIMEOUT,
                               json={"d": [{"identity": "cli-1", "type": "profile",
                                            "profileData": {"Name": "Cli"}}]})
        assert upload.json()["status"] == "success"
        profile = requests.get(info["clevertap_base"] + "/1/profile.json", params={"identity": "cli-1"},
                               headers=headers, timeout=TIMEOUT)
        assert profile.json()["record"]["profileData"]["Name"] == "Cli"
    finally:
        process.terminate()
        assert process.wait(timeout=10) == 0
        process.stdout.close()
        process.stderr.close()


def test_cli_flags_map_onto_the_config():
    from lib.sandbox.__main__ import parse_args

    config = parse_args(["--rpm", "5", "--rpm-window-s", "1.5", "--fault-retry-after-s", "3"])
    assert (config.rpm, config.rpm_window_s, config.fault_retry_after_s) == (5, 1.5, 3)
    defaults = parse_args([])
    assert (defaults.rpm_window_s, defaults.fault_retry_after_s) == (60.0, 2)


def test_latency_counts_from_arrival_and_includes_processing(make_api, monkeypatch):
    """The answer leaves latency_ms after the request arrived: the handler's time is not slept again,
    and the upload keeps its in-flight slot while the rest is slept."""
    from dataclasses import replace

    from lib.sandbox import server

    clock = {"now": 1000.0}
    slept: list[tuple[float, int]] = []
    api = make_api(profiles=20, latency_ms=100)
    limiter = api.sb.limiters["upload"]

    class FakeTime:
        @staticmethod
        def monotonic() -> float:
            return clock["now"]

        @staticmethod
        def sleep(seconds: float) -> None:
            slept.append((round(seconds, 6), limiter.in_flight))

    def slow_upload(request):  # 30 ms of "processing" on the fake clock
        clock["now"] += 0.030
        return upload(request)

    key = ("clevertap", "POST", "upload")
    upload = api.sb._routes[key].handler
    monkeypatch.setitem(api.sb._routes, key, replace(api.sb._routes[key], handler=slow_upload))
    monkeypatch.setattr(server, "time", FakeTime)
    answer = api.upload([{"identity": "lat-1", "type": "profile", "profileData": {"Plan": "x"}}])
    assert answer["status"] == "success"
    assert slept == [(0.07, 1)]
    assert limiter.in_flight == 0

    clock["now"] += 1  # a handler slower than the latency answers at once, without sleeping
    slept.clear()
    api.sb.config = replace(api.sb.config, latency_ms=20)
    assert api.upload([{"identity": "lat-2", "type": "profile", "profileData": {"Plan": "x"}}])["processed"] == 1
    assert slept == []
