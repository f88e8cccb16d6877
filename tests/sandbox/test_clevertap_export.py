"""profile.json, the cursor export of /1/profiles.json, and /1/counts/profiles.json."""
from __future__ import annotations

import re
from datetime import UTC, timedelta
from urllib.parse import quote

import pytest

from tests.sandbox.conftest import last_days, yyyymmdd


def test_profile_json_finds_the_same_record_by_each_key(api):
    record = next(r for r in api.all_records() if r.get("identity") and r.get("email"))
    object_id = record["platformInfo"][0]["objectId"]
    answers = [api.ct("GET", "/1/profile.json", params=params).json() for params in (
        {"identity": record["identity"]}, {"email": record["email"]}, {"objectId": object_id})]
    for answer in answers:
        assert answer["status"] == "success"
        assert answer["record"]["identity"] == record["identity"]
    found = answers[0]["record"]
    assert set(found) >= {"email", "identity", "name", "profileData", "platformInfo", "events"}
    assert isinstance(found["profileData"]["MSG-email"], bool)
    assert found["profileData"]["Email"] == found["email"]
    assert found["profileData"]["Name"] == found["name"]
    assert re.fullmatch(r"__[0-9a-f]{32}", object_id)


@pytest.mark.parametrize("params", [{}, {"identity": "1", "email": "a@b.co"}, {"foo": "bar"}])
def test_profile_json_needs_exactly_one_key(api, params):
    response = api.ct("GET", "/1/profile.json", params=params)
    assert response.status_code == 400 and response.json()["status"] == "fail"


def test_unknown_profile_is_a_soft_failure(api):
    response = api.ct("GET", "/1/profile.json", params={"identity": "nobody-at-all"})
    assert response.status_code == 200
    assert response.json() == {"status": "fail", "error": "Profile not found", "code": 404}


def test_cursor_export_pages_until_next_cursor_is_absent(api):
    query = {"event_name": "App Launched", **last_days(api.sb, 60)}
    post = api.ct("POST", "/1/profiles.json?batch_size=500", json=query).json()
    cursor = post["cursor"]
    assert post["status"] == "success"
    assert 1400 <= len(cursor) <= 2400 and cursor.endswith("%3D%3D") and "=" not in cursor
    still = api.ct("GET", "/1/profiles.json?cursor=" + cursor).json()
    assert still == {"status": "fail", "error": "Request still in progress", "code": 2}
    pages, records = [], []
    while cursor:
        page = api.ct("GET", "/1/profiles.json?cursor=" + cursor).json()
        assert page["status"] == "success"
        pages.append(page)
        records += page.get("records", [])
        cursor = page.get("next_cursor")
    assert len(pages) > 1
    assert all(len(p["records"]) == 483 for p in pages[:-1])  # 500 rounded down to a multiple of 23
    assert "next_cursor" not in pages[-1] and "previous_cursor" in pages[-1]
    assert "previous_cursor" not in pages[0]
    assert len({r["platformInfo"][0]["objectId"] for r in records}) == len(records)
    start = api.sb.anchor_date - timedelta(days=60)
    for record in records:
        assert {"profileData", "platformInfo", "all_identities", "events"} <= set(record)
        seen = record["events"]["App Launched"]
        assert seen["last_seen"] >= _epoch(start)
        assert isinstance(record["profileData"]["MSG-email"], bool)
    count = _count(api, query)
    assert count == len(records)


def _epoch(day) -> int:
    from datetime import datetime
    return int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp())


def _count(api, query) -> int:
    first = api.ct("POST", "/1/counts/profiles.json", json=query).json()
    assert first["status"] == "partial" and isinstance(first["req_id"], int)
    again = api.ct("GET", "/1/counts/profiles.json", params={"req_id": first["req_id"]}).json()
    assert again == {"status": "partial", "req_id": first["req_id"]}
    done = api.ct("GET", "/1/counts/profiles.json", params={"req_id": first["req_id"]}).json()
    assert done["status"] == "success"
    return done["count"]


@pytest.mark.parametrize("batch_size, page", [(23, 23), (100, 92), (5000, 4991), (9000, 4991),
                                              (5, 989), (None, 989)])
def test_page_size_is_a_multiple_of_23(api, batch_size, page):
    first = next(api.cursor_pages({"event_name": "-1"}, batch_size=batch_size))
    assert len(first["records"]) == min(page, 2000)


def test_counts_match_exports_for_every_event(api):
    for event in ("App Launched", "Charged", "Product Viewed", "Added to Cart"):
        query = {"event_name": event, **last_days(api.sb, 30)}
        assert _count(api, query) == len(api.all_records(query)) > 0


def test_profile_field_filters(api):
    query = {"event_name": "-1", "common_profile_properties": {"profile_fields": [
        {"name": "MSG-email", "operator": "equals", "value": False}]}}
    records = api.all_records(query)
    total = len(api.all_records())
    assert 0.03 * total < len(records) < 0.08 * total  # ~5% already unsubscribed
    assert all(r["profileData"]["MSG-email"] is False for r in records)
    assert _count(api, query) == len(records)
    without_email = api.all_records({"event_name": "-1", "common_profile_properties": {
        "profile_fields": [{"name": "Email", "operator": "not_exists"}]}})
    assert without_email and all("email" not in r for r in without_email)


def test_an_empty_range_has_no_records_key(api):
    old = api.sb.anchor_date - timedelta(days=400)
    pages = list(api.cursor_pages({"event_name": "Charged", "from": yyyymmdd(old),
                                   "to": yyyymmdd(old + timedelta(days=10))}))
    assert pages == [{"status": "success"}]


@pytest.mark.parametrize("change", [
    {"from": 20240230}, {"from": "2024-01-01"}, {"to": 2024010},
    {"from": 20990101, "to": 20990102},
])
def test_bad_dates_are_code_4002(api, change):
    query = {"event_name": "Charged", **last_days(api.sb, 10), **change}
    for path in ("/1/profiles.json?batch_size=100", "/1/counts/profiles.json"):
        response = api.ct("POST", path, json=query)
        assert response.status_code == 400 and response.json()["code"] == 4002


def test_from_after_to_is_code_4002(api):
    dates = last_days(api.sb, 10)
    response = api.ct("POST", "/1/profiles.json", json={"event_name": "Charged", "from": dates["to"],
                                                         "to": dates["from"]})
    assert response.json()["code"] == 4002


@pytest.mark.parametrize("event", ["app launched", "Purchased", ""])
def test_event_names_are_case_sensitive(api, event):
    response = api.ct("POST", "/1/counts/profiles.json", json={"event_name": event, **last_days(api.sb, 5)})
    assert response.status_code == 400 and response.json()["error"] == "invalid event"


def test_double_encoded_or_tampered_cursors_are_incorrect_usage(api):
    cursor = api.ct("POST", "/1/profiles.json?batch_size=100", json={"event_name": "-1"}).json()["cursor"]
    for bad in (quote(cursor, safe=""), cursor[:-12] + "AAAA" + cursor[-8:], "abc", ""):
        response = api.ct("GET", "/1/profiles.json?cursor=" + bad)
        assert response.status_code == 400
        assert response.json()["error"] == "Incorrect Usage"


def test_cursors_expire_after_four_days(make_api):
    api = make_api(profiles=100, in_progress_polls=0)
    cursor = api.ct("POST", "/1/profiles.json?batch_size=23", json={"event_name": "-1"}).json()["cursor"]
    assert api.ct("GET", "/1/profiles.json?cursor=" + cursor).json()["status"] == "success"
    api.sb.advance_clock(4 * 86400 + 60)
    expired = api.ct("GET", "/1/profiles.json?cursor=" + cursor)
    assert expired.status_code == 400 and "expired" in expired.json()["error"]


def test_unknown_req_id(api):
    response = api.ct("GET", "/1/counts/profiles.json", params={"req_id": "12345"})
    assert response.json()["error"] == "invalid request id"


def test_export_options_drop_parts_of_records(api):
    cursor = api.ct("POST", "/1/profiles.json?batch_size=23", json={"event_name": "-1"}).json()["cursor"]
    page = {}
    while "records" not in page:
        page = api.ct("GET", f"/1/profiles.json?cursor={cursor}&events=false&app=false").json()
    assert all("events" not in r and "platformInfo" not in r and "profileData" in r for r in page["records"])
