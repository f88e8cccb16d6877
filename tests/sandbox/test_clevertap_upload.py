"""/1/upload and /1/subscribe: validation codes, upserts, limits, address-level subscription, 429s."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from lib.emails import normalise_email


def _first_identity(api, *, with_email: bool = True) -> dict:
    for record in api.all_records():
        if "identity" in record and (record.get("email") is not None) == with_email:
            return record
    raise AssertionError("no such profile")


def test_upload_sets_properties_read_back_by_profile_json(make_api):
    api = make_api()
    target = _first_identity(api)
    answer = api.upload([{"identity": target["identity"], "type": "profile", "ts": 1_700_000_000,
                          "profileData": {"MSG-email": False, "Plan": "Gold", "Renewal": "$D_1767225600",
                                          "Tags": ["a", "b"]}}])
    assert answer == {"status": "success", "processed": 1, "unprocessed": []}
    record = api.ct("GET", "/1/profile.json", params={"identity": target["identity"]}).json()["record"]
    data = record["profileData"]
    assert data["MSG-email"] is False
    assert data["Plan"] == "Gold" and data["Tags"] == ["a", "b"]
    assert data["Renewal"] == "$D_1767225600"
    assert data["Email"] == target["email"] and record["email"] == target["email"]
    assert api.sb.profile(identity=target["identity"])["profileData"]["MSG-email"] is False


@pytest.mark.parametrize("value, stored", [(True, True), ("false", False), ("TRUE", True), (False, False)])
def test_msg_email_is_stored_as_a_boolean(make_api, value, stored):
    api = make_api(profiles=50)
    api.upload([{"identity": "u-1", "type": "profile", "profileData": {"MSG-email": value}}])
    assert api.sb.profile(identity="u-1")["profileData"]["MSG-email"] is stored


@pytest.mark.parametrize("record, code, text", [
    ({"type": "profile", "profileData": {"Name": "x"}}, 523, "Missing identity."),
    ({"identity": "a", "type": "profile", "profileData": {"Email": "not-an-email"}}, 515,
     "Profile data is incorrect. Email is not valid."),
    ({"identity": "a", "type": "profile", "profileData": {"Phone": "98765"}}, 516,
     "Profile data is incorrect. Phone number is not valid."),
    ({"identity": "a", "type": "profile", "profileData": {"Gender": "X"}}, 514, None),
    ({"identity": "a", "type": "profile", "profileData": {"Employed": "yes"}}, 517, None),
    ({"identity": "a", "type": "profile", "profileData": {"Education": "PhD"}}, 518, None),
    ({"identity": "a", "type": "profile", "profileData": {"Married": "maybe"}}, 519, None),
    ({"identity": "a", "type": "profile", "profileData": {"Age": "old"}}, 520, None),
    ({"identity": "a", "type": "segment", "profileData": {}}, 524, None),
    ({"identity": "a", "type": "profile", "ts": "yesterday", "profileData": {}}, 525,
     "Timestamp should be present in the Unix Epoch format."),
    ({"objectId": "not valid!", "type": "profile", "profileData": {}}, 526, None),
    ({"identity": "a", "type": "profile", "profileData": {"K" * 121: "v"}}, 521, None),
    ({"identity": "a", "type": "profile", "profileData": {"Note": "é" * 257}}, 521, None),
    ({"identity": "a", "type": "profile", "profileData": {"MSG-email": "no"}}, 521, None),
    ({"identity": "a", "type": "profile", "profileData": {"Renewal": "$D_tomorrow"}}, 521, None),
    ({"identity": "a", "type": "event", "evtData": {}}, 509, None),
])
def test_each_bad_record_is_skipped_with_its_code(make_api, record, code, text):
    api = make_api(profiles=20)
    good = {"identity": "ok-1", "type": "profile", "profileData": {"Name": "Fine"}}
    answer = api.upload([good, record])
    assert answer["status"] == "partial" and answer["processed"] == 1
    (failure,) = answer["unprocessed"]
    assert failure["status"] == "fail" and failure["code"] == code
    assert failure["error"].endswith("Skipped record number : 2")
    if text:
        assert failure["error"] == text + "Skipped record number : 2"
    assert failure["record"] == record
    assert api.upload([record])["status"] == "fail"


def test_checks_tell_equal_contents_of_other_types_apart(make_api):
    """Checks are memoised per profileData content: False == 0 and 1 == True in Python, not here."""
    api = make_api(profiles=20)
    records = [{"identity": f"t{i}", "type": "profile", "profileData": data} for i, data in enumerate([
        {"MSG-email": False, "Plan": "x"}, {"MSG-email": 0, "Plan": "x"},
        {"Age": 30}, {"Age": True}, {"Score": 1}, {"Score": True}])]
    answer = api.upload(records + records)
    assert [(u["code"], u["record"]["identity"]) for u in answer["unprocessed"]] == [
        (521, "t1"), (520, "t3"), (521, "t1"), (520, "t3")]
    assert api.sb.profile(identity="t0")["profileData"]["MSG-email"] is False
    assert api.sb.profile(identity="t4")["profileData"]["Score"] == 1
    assert api.sb.profile(identity="t5")["profileData"]["Score"] is True
    api.upload([{"identity": "t4", "type": "profile", "profileData": {"Score": True}}])
    assert api.sb.profile(identity="t4")["profileData"]["Score"] is True


def test_all_bad_records_still_answer_http_200_with_fail(make_api):
    api = make_api(profiles=20)
    response = api.ct("POST", "/1/upload", json={"d": [{"type": "profile"}, {"identity": "x"}]})
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "fail" and body["processed"] == 0
    assert [u["code"] for u in body["unprocessed"]] == [523, 524]
    assert [u["error"][-1] for u in body["unprocessed"]] == ["1", "2"]


def test_more_than_1000_records_is_a_400(make_api):
    api = make_api(profiles=20)
    records = [{"identity": f"n{i}", "type": "profile", "profileData": {"Name": "x"}} for i in range(1001)]
    response = api.ct("POST", "/1/upload", json={"d": records})
    assert response.status_code == 400 and response.json()["status"] == "fail"
    assert api.sb.profile(identity="n0") is None
    assert api.upload(records[:1000])["processed"] == 1000


def test_unknown_identity_or_object_id_creates_a_profile(make_api):
    api = make_api(profiles=20)
    object_id = "__" + "ab" * 16
    answer = api.upload([
        {"identity": "new-user-9", "type": "profile",
         "profileData": {"Name": "New One", "Email": " New.One@Example.org "}},
        {"objectId": object_id, "type": "profile", "profileData": {"Name": "Anonymous"}},
    ])
    assert answer["status"] == "success"
    by_identity = api.ct("GET", "/1/profile.json", params={"identity": "new-user-9"}).json()["record"]
    assert by_identity["profileData"]["Name"] == "New One"
    assert by_identity["profileData"]["MSG-email"] is True
    by_email = api.ct("GET", "/1/profile.json", params={"email": "new.one@example.org"}).json()["record"]
    assert by_email["identity"] == "new-user-9"
    by_object = api.ct("GET", "/1/profile.json", params={"objectId": object_id}).json()["record"]
    assert by_object["platformInfo"][0]["objectId"] == object_id
    assert api.sb.stats()["profiles_created"] == 2
    assert len(api.all_records()) == 22  # all-users export includes created profiles


def test_256_custom_properties_per_profile(make_api):
    api = make_api(profiles=20)
    first = {f"p{i}": i for i in range(200)}
    assert api.upload([{"identity": "wide", "type": "profile", "profileData": first}])["status"] == "success"
    more = {f"q{i}": i for i in range(56)}
    assert api.upload([{"identity": "wide", "type": "profile", "profileData": more}])["status"] == "success"
    answer = api.upload([{"identity": "wide", "type": "profile", "profileData": {"one_too_many": 1}}])
    assert answer["status"] == "fail" and answer["unprocessed"][0]["code"] == 521
    assert "one_too_many" not in api.sb.profile(identity="wide")["profileData"]


def test_event_records_are_accepted_and_counted(make_api):
    api = make_api(profiles=20)
    answer = api.upload([{"identity": "e1", "type": "event", "evtName": "Clearout Verified",
                          "evtData": {"status": "valid"}}])
    assert answer == {"status": "success", "processed": 1, "unprocessed": []}
    assert api.sb.stats()["events_accepted"] == 1


def _case_duplicate_pair(api) -> tuple[dict, dict]:
    seen: dict[str, dict] = {}
    for record in api.all_records():
        key = normalise_email(record.get("email"))
        if key is None or "identity" not in record:
            continue
        if key in seen and seen[key]["email"] != record["email"]:
            return seen[key], record
        seen.setdefault(key, record)
    raise AssertionError("the dataset has no case-only duplicates")


def test_subscribe_is_address_level(make_api):
    api = make_api()
    first, second = _case_duplicate_pair(api)
    response = api.ct("POST", "/1/subscribe", json={"d": [
        {"type": "email", "value": first["email"].upper(), "status": "Unsubscribe"}]})
    assert response.status_code == 200
    assert response.json() == {"status": "success", "processed": 1, "unprocessed": []}
    for record in (first, second):
        assert api.sb.profile(identity=record["identity"])["profileData"]["MSG-email"] is False
    # A later per-profile change wins over the earlier address-level one, and vice versa.
    api.upload([{"identity": first["identity"], "type": "profile", "profileData": {"MSG-email": True}}])
    assert api.sb.profile(identity=first["identity"])["profileData"]["MSG-email"] is True
    assert api.sb.profile(identity=second["identity"])["profileData"]["MSG-email"] is False
    api.ct("POST", "/1/subscribe", json={"d": [{"type": "email", "value": second["email"],
                                                 "status": "Resubscribe"}]})
    assert api.sb.profile(identity=second["identity"])["profileData"]["MSG-email"] is True


def test_subscribe_rejects_bad_items_in_upload_shape(make_api):
    api = make_api(profiles=20)
    answer = api.ct("POST", "/1/subscribe", json={"d": [
        {"type": "email", "value": "ok@example.org", "status": "Unsubscribe"},
        {"type": "email", "value": "nope", "status": "Unsubscribe"},
        {"type": "phone", "value": "+911234567890", "status": "Unsubscribe"},
    ]}).json()
    assert answer["status"] == "partial" and answer["processed"] == 1
    assert [u["code"] for u in answer["unprocessed"]] == [515, 524]
    too_many = [{"type": "email", "value": f"a{i}@x.org", "status": "Unsubscribe"} for i in range(1001)]
    assert api.ct("POST", "/1/subscribe", json={"d": too_many}).status_code == 400


def test_at_most_15_uploads_in_flight(make_api):
    api = make_api(profiles=20, latency_ms=800)
    record = {"identity": "c1", "type": "profile", "profileData": {"Name": "x"}}
    start = threading.Barrier(20)

    def one(_: int):
        start.wait()
        response = requests.post(api.sb.clevertap_base + "/1/upload", json={"d": [record]},
                                 headers=api.ct_headers(), timeout=10)
        return response.status_code, response.json()

    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(one, range(20)))
    statuses = [status for status, _ in results]
    assert statuses.count(429) >= 1 and statuses.count(200) >= 15
    assert statuses.count(200) + statuses.count(429) == 20
    assert {"status": "fail", "error": "Too many concurrent requests", "code": 429} in [b for _, b in results]
    stats = api.sb.stats()
    assert stats["max_uploads_in_flight"] == 15
    assert stats["concurrency_rejected"] == statuses.count(429)


def test_read_apis_allow_3_in_flight(make_api):
    api = make_api(profiles=20, latency_ms=800)
    start = threading.Barrier(6)

    def one(_: int) -> int:
        start.wait()
        return requests.get(api.sb.clevertap_base + "/1/profile.json", params={"identity": "x"},
                               headers=api.ct_headers(), timeout=10).status_code

    with ThreadPoolExecutor(max_workers=6) as pool:
        statuses = list(pool.map(one, range(6)))
    assert statuses.count(429) >= 1 and statuses.count(200) >= 3
    assert api.sb.stats()["max_in_flight"]["profile"] == 3
