"""Clearout auth, envelope, getcredits, instant verify, credits and the per-minute limiter."""
from __future__ import annotations

from datetime import datetime

import pytest
import requests

from lib.sandbox import Sandbox, SandboxConfig
from tests.sandbox.conftest import TIMEOUT, Api

DATA_KEYS = {"email_address", "status", "sub_status", "safe_to_send", "ai_verdict", "disposable", "free",
             "role", "gibberish", "suggested_email_address", "bounce_type", "detail_info", "profile",
             "verified_on", "time_taken"}


@pytest.fixture(scope="module")
def verifier():
    """A private sandbox for the many verify calls: the shared one's credits and per-minute
    window belong to every test module."""
    with Sandbox(SandboxConfig(seed=7, profiles=20, rpm=100_000)) as sandbox:
        yield Api(sandbox)


@pytest.mark.parametrize("scheme", ["{t}", "Bearer {t}", "Bearer:{t}"])
def test_three_authorization_forms(api, scheme):
    response = requests.get(api.sb.clearout_base + "/email_verify/getcredits", timeout=TIMEOUT,
                            headers={"Authorization": scheme.format(t=api.sb.clearout_token)})
    assert response.status_code == 200 and response.json()["status"] == "success"


@pytest.mark.parametrize("header", [None, "Bearer nope", "Token {t}", "Bearer {t}x"])
def test_bad_tokens_are_401_code_1000(api, header):
    headers = {} if header is None else {"Authorization": header.format(t=api.sb.clearout_token)}
    response = requests.get(api.sb.clearout_base + "/email_verify/getcredits", headers=headers,
                            timeout=TIMEOUT)
    assert response.status_code == 401
    assert response.json() == {"status": "failed", "error": {
        "code": 1000, "message": "Invalid API Token, please generate new token"}}
    assert "x-ratelimit-limit" in response.headers


def test_getcredits_shape(api):
    data = api.co("GET", "/email_verify/getcredits").json()["data"]
    assert data["available_credits"] == data["credits"]["available"] == data["credits"]["total"]
    assert data["credits"]["subs"] is None and data["credits"]["available_daily_verify_limit"] is None
    datetime.fromisoformat(data["credits"]["reset_daily_verify_limit_date"])
    assert data["low_credit_balance_min_threshold"] == 50


def test_instant_verify_shape_and_charge(make_api):
    api = make_api(profiles=20)
    before = api.credits()
    response = api.co("POST", "/email_verify/instant", json={"email": " Priya.Sharma@Gmail.com ",
                                                              "timeout": 130000})
    assert response.status_code == 200
    data = response.json()["data"]
    assert set(data) == DATA_KEYS
    assert data["email_address"] == "Priya.Sharma@Gmail.com"
    assert data["status"] in ("valid", "invalid", "catch_all", "unknown")
    assert set(data["sub_status"]) == {"code", "desc"} and isinstance(data["sub_status"]["code"], int)
    assert set(data["detail_info"]) == {"account", "domain", "mx_record", "smtp_provider"}
    assert data["detail_info"]["domain"] == "gmail.com" and data["free"] == "yes"
    assert isinstance(data["time_taken"], int)
    datetime.fromisoformat(data["verified_on"])
    charged = 0 if data["status"] == "unknown" else 1
    assert api.credits() == before - charged


def test_same_address_same_verdict_in_any_case(verifier):
    api = verifier
    first = api.co("POST", "/email_verify/instant", json={"email": "rahul.verma@outlook.com"}).json()["data"]
    second = api.co("POST", "/email_verify/instant", json={"email": "RAHUL.Verma@Outlook.com"}).json()["data"]
    for key in ("status", "sub_status", "safe_to_send", "detail_info", "time_taken", "bounce_type"):
        assert first[key] == second[key]


@pytest.mark.parametrize("local, status, code, extra", [
    ("valid", "valid", 200, {"safe_to_send": "yes"}),
    ("invalid", "invalid", 406, {"safe_to_send": "no", "bounce_type": "hard"}),
    ("catch_all", "catch_all", 411, {"safe_to_send": "risky"}),
    ("unknown", "unknown", 412, {"safe_to_send": "unknown"}),
    ("disposable", "valid", 200, {"disposable": "yes", "safe_to_send": "no"}),
    ("role", "valid", 200, {"role": "yes", "safe_to_send": "risky"}),
    ("free", "valid", 200, {"free": "yes"}),
    ("gibberish", "valid", 200, {"gibberish": "yes"}),
    ("hard_bounce", "invalid", 406, {"bounce_type": "hard"}),
    ("soft_bounce", "invalid", 413, {"bounce_type": "soft"}),
    ("suggested_email_address", "invalid", 406, {"suggested_email_address": "valid@example.com"}),
    ("syntax_error", "invalid", 400, {}),
    ("greylisted", "unknown", 407, {}),
    ("spamtrap", "invalid", 401, {}),
    ("blocklist_email_address", "invalid", 602, {}),
    ("allowlist_email_address", "valid", 601, {}),
    ("blocklist_domain", "invalid", 604, {}),
    ("allowlist_domain", "valid", 603, {}),
    ("domain_not_found", "invalid", 403, {}),
    ("not_a_mailserver", "invalid", 404, {}),
    ("mailbox_not_found", "invalid", 406, {}),
    ("mailbox_quota_exceeded", "invalid", 413, {}),
    ("dns_query_timeout", "unknown", 417, {}),
    ("overquota_and_inactive", "invalid", 428, {}),
    ("receiving_limit_reached", "invalid", 421, {}),
    ("safe_to_send_yes", "valid", 200, {"safe_to_send": "yes"}),
    ("safe_to_send_no", "invalid", 406, {"safe_to_send": "no"}),
    ("safe_to_send_risky", "catch_all", 411, {"safe_to_send": "risky"}),
])
def test_documented_test_addresses_answer_as_named_and_cost_nothing(verifier, local, status, code, extra):
    api = verifier
    before = api.credits()
    data = api.co("POST", "/email_verify/instant", json={"email": f"{local}@example.com"}).json()["data"]
    assert (data["status"], data["sub_status"]["code"]) == (status, code)
    for key, value in extra.items():
        assert data[key] == value
    assert api.credits() == before


@pytest.mark.parametrize("body, message", [
    ({}, '"email" is required'),
    ({"email": ""}, '"email" is not allowed to be empty'),
    ({"email": 42}, '"email" must be a string'),
    ({"email": "a@b.co", "timeout": 180001}, '"timeout" must be less than or equal to 180000'),
])
def test_validation_errors_are_400_with_reasons(verifier, body, message):
    api = verifier
    response = api.co("POST", "/email_verify/instant", json=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert response.json()["status"] == "failed" and error["message"] == "validation failed"
    assert error["reasons"][0]["messages"] == [message] and "code" not in error


def test_a_short_timeout_gives_524_and_costs_nothing(make_api):
    api = make_api(profiles=20)
    before = api.credits()
    response = api.co("POST", "/email_verify/instant", json={"email": "anita@gmail.com", "timeout": 1})
    assert response.status_code == 524
    assert response.json()["error"] == {"message": "Timeout Occurred", "additional_info": {
        "resource_name": "email", "resource_value": "anita@gmail.com"}}
    assert api.credits() == before


def test_unknown_results_are_free(make_api):
    api = make_api(profiles=20, credits=1000)
    results = [api.co("POST", "/email_verify/instant", json={"email": f"user{i}@gmail.com"}).json()["data"]
               for i in range(150)]
    unknown = [d for d in results if d["status"] == "unknown"]
    assert unknown and len(unknown) < 20
    assert api.credits() == 1000 - (len(results) - len(unknown))
    api.co("POST", "/email_verify/instant", json={"email": unknown[0]["email_address"]})
    assert api.credits() == 1000 - (len(results) - len(unknown))


def test_zero_credits_is_402_code_1002(make_api):
    api = make_api(profiles=20, credits=2)
    attempt = 0
    while api.credits() > 0:
        attempt += 1
        assert api.co("POST", "/email_verify/instant", json={"email": f"x{attempt}@yahoo.com"}).status_code == 200
    broke = api.co("POST", "/email_verify/instant", json={"email": "someone@yahoo.com"})
    assert broke.status_code == 402
    assert broke.json() == {"status": "failed", "error": {
        "code": 1002, "message": "You have exhausted your credits, please add additional credits to continue"}}
    assert api.co("POST", "/email_verify/instant", json={"email": "valid@example.com"}).status_code == 200


def test_rpm_limiter_headers_and_429(make_api):
    api = make_api(profiles=20, rpm=3)
    remaining = []
    for _ in range(3):
        response = api.co("GET", "/email_verify/getcredits")
        assert response.status_code == 200
        assert response.headers["x-ratelimit-limit"] == "3"
        assert 0 < int(response.headers["x-ratelimit-reset"]) <= 60
        remaining.append(int(response.headers["x-ratelimit-remaining"]))
    assert remaining == [2, 1, 0]
    limited = api.co("POST", "/email_verify/instant", json={"email": "valid@example.com"})
    assert limited.status_code == 429
    assert limited.json()["status"] == "failed" and limited.json()["error"]["code"] == 1030
    assert limited.json()["error"]["message"].startswith("You have reached API rate limit, try calling after")
    assert limited.headers["x-ratelimit-remaining"] == "0"
    assert api.sb.stats()["rate_limited"] == 1
    api.sb.advance_clock(61)
    assert api.co("GET", "/email_verify/getcredits").status_code == 200


def test_clevertap_has_no_time_window_limit(make_api):
    api = make_api(profiles=20, rpm=1)
    assert all(api.ct("GET", "/1/profile.json", params={"identity": "x"}).status_code == 200
               for _ in range(30))
