"""lib/clevertap.py: pure pieces, deterministic retries against a scripted server, the rest against the sandbox."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import date

import pytest

from lib import clevertap
from lib.clevertap import (CleverTapAuthError, CleverTapClient, CleverTapConnectionError, CleverTapError,
                           CleverTapRateLimitError, CleverTapRequestError, CleverTapServerError,
                           CleverTapWrongRegionError, normalise_batch_size, region_from_dashboard_url)
from tests.http_support import free_port

ACCOUNT, PASSCODE = "W8R-TEST-123Z", "pass-SECRET-9f8e7d"
FROM, TO = date(2020, 1, 1), date(2030, 12, 31)


def scripted_client(url: str, **kwargs) -> CleverTapClient:
    return CleverTapClient(ACCOUNT, PASSCODE, "IN1", base_url=url, **kwargs)


# -- pure pieces ----------------------------------------------------------------------------------

@pytest.mark.parametrize("url, region", [
    ("https://in1.dashboard.clevertap.com/W8R-123/main", "IN1"),
    ("https://eu1.dashboard.clevertap.com/x", "EU1"),
    ("aps3.dashboard.clevertap.com", "APS3"),
    ("https://MEC1.dashboard.clevertap.com", "MEC1"),
    ("https://dashboard.clevertap.com/login", "EU1"),
    ("https://xx9.dashboard.clevertap.com/", None),
    ("https://in1.dashboard.example.com/", None),
    ("not a url", None),
])
def test_region_from_dashboard_url(url: str, region: str | None) -> None:
    assert region_from_dashboard_url(url) == region


def test_regions_table() -> None:
    assert set(clevertap.REGIONS) == {"EU1", "IN1", "US1", "SG1", "APS3", "MEC1"}
    assert clevertap.REGIONS["MEC1"].label == "Middle East (UAE)"
    assert all(r.host.endswith(".api.clevertap.com") for r in clevertap.REGIONS.values())


@pytest.mark.parametrize("asked, sent", [(4991, 4991), (5000, 4991), (100_000, 4991), (1, 23), (50, 46), (230, 230)])
def test_batch_size_is_a_multiple_of_23(asked: int, sent: int) -> None:
    assert normalise_batch_size(asked) == sent


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError):
        normalise_batch_size(0)


def test_base_urls_and_redacted_repr() -> None:
    with CleverTapClient(ACCOUNT, PASSCODE, "sg1") as client:
        assert client.base_url == "https://sg1.api.clevertap.com"
        assert PASSCODE not in repr(client) and ACCOUNT in repr(client)
    with CleverTapClient(ACCOUNT, PASSCODE, "IN1", base_url="http://h/clevertap/{region}/") as client:
        assert client.base_url == "http://h/clevertap/in1"
    with pytest.raises(ValueError):
        CleverTapClient(ACCOUNT, PASSCODE, "XX1")


def test_exceptions_form_one_hierarchy() -> None:
    for cls in (CleverTapAuthError, CleverTapRateLimitError, CleverTapRequestError,
                CleverTapServerError, CleverTapConnectionError):
        assert issubclass(cls, CleverTapError)
    assert issubclass(CleverTapWrongRegionError, CleverTapAuthError)


# -- deterministic behaviour against a scripted server ------------------------------------------

NOT_FOUND = {"status": "fail", "error": "Profile not found", "code": 404}
RECORD = {"status": "success", "record": {"email": "a@b.com", "identity": "u1",
                                          "profileData": {"Name": "Ann", "MSG-email": False, "Plan": "gold"},
                                          "platformInfo": [{"objectId": "-abc"}]}}


def test_headers_and_content_type_only_on_post(scripted) -> None:
    server = scripted([(200, {}, RECORD), (200, {}, {"status": "success", "processed": 1, "unprocessed": []})])
    with scripted_client(server.url) as client:
        profile = client.get_profile(identity="u1")
        client.upload_batch([{"identity": "u1", "type": "profile", "profileData": {"Plan": "x"}}])
    get, post = server.seen
    assert get.path == "/1/profile.json?identity=u1"
    assert get.headers["X-CleverTap-Account-Id"] == ACCOUNT and get.headers["X-CleverTap-Passcode"] == PASSCODE
    assert "Content-Type" not in get.headers
    assert post.headers["Content-Type"] == "application/json" and post.path == "/1/upload"
    assert profile == clevertap.Profile(identity="u1", object_id="-abc", email="a@b.com", name="Ann",
                                        msg_email=False, properties=RECORD["record"]["profileData"],
                                        raw=RECORD["record"])


def test_503_twice_then_success_is_retried(scripted, no_sleep) -> None:
    server = scripted([(503, {}, b""), (503, {}, b""), (200, {}, RECORD)])
    with scripted_client(server.url) as client:
        assert client.get_profile(email="a@b.com").identity == "u1"
    assert len(server.seen) == 3 and no_sleep == [0.5, 1.0]


def test_429_waits_retry_after(scripted, no_sleep) -> None:
    busy = {"status": "fail", "error": "Too many concurrent requests", "code": 429}
    server = scripted([(429, {"Retry-After": "3"}, busy), (200, {}, RECORD)])
    with scripted_client(server.url) as client:
        client.get_profile(identity="u1")
    assert no_sleep == [3.0]


def test_429_after_retries_is_rate_limit_error(scripted, no_sleep) -> None:
    server = scripted([(429, {}, {"status": "fail", "error": "Too many concurrent requests", "code": 429})])
    with scripted_client(server.url, max_retries=2) as client, pytest.raises(CleverTapRateLimitError) as caught:
        client.get_profile(identity="u1")
    assert len(server.seen) == 3 and caught.value.status == 429
    assert "Too many concurrent requests" in str(caught.value)


def test_5xx_after_retries_is_server_error(scripted, no_sleep) -> None:
    server = scripted([(500, {}, b"<html>oops</html>")])
    with scripted_client(server.url, max_retries=3) as client, pytest.raises(CleverTapServerError) as caught:
        client.count_profiles("App Launched", FROM, TO)
    assert len(server.seen) == 4 and caught.value.status == 500 and PASSCODE not in str(caught.value)


def test_http_200_fail_becomes_request_error(scripted, no_sleep) -> None:
    server = scripted([(200, {}, {"status": "fail", "error": "invalid event", "code": 400})])
    with scripted_client(server.url) as client, pytest.raises(CleverTapRequestError) as caught:
        list(client.iter_profiles("No Such Event", FROM, TO))
    assert caught.value.code == 400 and "invalid event" in str(caught.value)
    assert len(server.seen) == 1 and no_sleep == []  # a refused request is never retried


def test_cursor_is_sent_as_received_and_in_progress_is_retried(scripted, no_sleep) -> None:
    cursor = "ZiZi+Nw/MEBQ%2Bab%3D%3D"
    in_progress = {"status": "fail", "error": "Request still in progress", "code": 2}
    server = scripted([
        (200, {}, {"status": "success", "cursor": cursor}),
        (200, {}, in_progress), (200, {}, in_progress),
        (200, {}, {"status": "success", "records": [{"identity": "1"}, {"identity": "2"}], "next_cursor": "c2%3D"}),
        (200, {}, {"status": "success", "next_cursor": "c3"}),  # records absent: an empty page
        (200, {}, {"status": "success", "records": [{"identity": "3"}]}),
    ])
    with scripted_client(server.url) as client:
        pages = list(client.iter_profiles("App Launched", date(2024, 1, 2), date(2024, 3, 4),
                                          filters=[{"name": "Plan", "operator": "equals", "value": "gold"}],
                                          batch_size=100))
    assert pages == [[{"identity": "1"}, {"identity": "2"}], [{"identity": "3"}]]
    post = server.seen[0]
    assert post.path == "/1/profiles.json?batch_size=92"
    assert post.body == (b'{"event_name":"App Launched","from":20240102,"to":20240304,"common_profile_properties":'
                         b'{"profile_fields":[{"name":"Plan","operator":"equals","value":"gold"}]}}')
    assert [s.path for s in server.seen[1:]] == ["/1/profiles.json?cursor=" + cursor] * 3 + [
        "/1/profiles.json?cursor=c2%3D", "/1/profiles.json?cursor=c3"]
    assert no_sleep == [0.5, 1.0]  # short first waits, doubling


def test_count_polls_partial_results(scripted, no_sleep) -> None:
    server = scripted([(200, {}, {"status": "partial", "req_id": 384649162721759}),
                       (200, {}, {"status": "partial", "req_id": 384649162721759}),
                       (200, {}, {"status": "success", "count": 7138})])
    with scripted_client(server.url) as client:
        assert client.count_profiles("App Launched", FROM, TO, poll_interval=2.0) == 7138
    assert [s.path for s in server.seen[1:]] == ["/1/counts/profiles.json?req_id=384649162721759"] * 2
    assert no_sleep == [2.0, 2.0]


def test_count_gives_up_after_max_wait(scripted, no_sleep) -> None:
    server = scripted([(200, {}, {"status": "partial", "req_id": 1})])
    with scripted_client(server.url) as client, pytest.raises(CleverTapServerError, match="did not finish"):
        client.count_profiles("App Launched", FROM, TO, poll_interval=10, max_wait=30)
    assert sum(no_sleep) == 30


def test_get_profile_not_found_and_key_rules(scripted) -> None:
    server = scripted([(200, {}, NOT_FOUND)])
    with scripted_client(server.url) as client:
        assert client.get_profile(identity="nobody") is None
        with pytest.raises(ValueError):
            client.get_profile(identity="a", email="b")
        with pytest.raises(ValueError):
            client.get_profile()


def test_unprocessed_records_keep_their_position(scripted) -> None:
    reply = {"status": "partial", "processed": 2, "unprocessed": [
        {"status": "fail", "code": 515,
         "error": "Profile data is incorrect. Email is not valid.Skipped record number : 2",
         "record": {"identity": "b"}}]}
    server = scripted([(200, {}, reply)])
    records = [{"identity": i, "type": "profile", "profileData": {}} for i in "abc"]
    with scripted_client(server.url) as client:
        outcome = client.upload_batch(records, index=4, start=4000)
    assert outcome.processed == 2 and outcome.sent == 3 and outcome.index == 4
    assert [(u.record_index, u.code) for u in outcome.unprocessed] == [(4001, 515)]


def test_all_records_failing_is_an_outcome_not_an_exception(scripted) -> None:
    reply = {"status": "fail", "processed": 0, "unprocessed": [
        {"status": "fail", "code": 523, "error": "Missing identity", "record": {"identity": "x"}}]}
    server = scripted([(200, {}, reply)])
    with scripted_client(server.url) as client:
        outcome = client.upload_batch([{"identity": "x", "type": "profile", "profileData": {}}])
    assert outcome.status == "fail" and outcome.unprocessed[0].record_index == 0


def test_subscribe_body_and_status_check(scripted) -> None:
    server = scripted([(200, {}, {"status": "success", "processed": 2, "unprocessed": []})])
    with scripted_client(server.url) as client:
        outcome = client.subscribe_batch(["a@b.com", "c@d.com"], "Unsubscribe")
        with pytest.raises(ValueError):
            client.subscribe_batch(["a@b.com"], "unsubscribe")
    assert outcome.processed == 2 and outcome.sent == 2
    assert server.seen[0].path == "/1/subscribe"
    assert server.seen[0].body == (b'{"d":[{"type":"email","value":"a@b.com","status":"Unsubscribe"},'
                                   b'{"type":"email","value":"c@d.com","status":"Unsubscribe"}]}')


def test_encoded_batches_send_the_same_bytes_and_map_echoes(scripted) -> None:
    emails = ["a@b.com", "ü@x.org", 'q"uote@x.org']
    assert clevertap.subscribe_body(emails, "Resubscribe") == clevertap._encode(
        {"d": clevertap._subscription_entries(emails, "Resubscribe")})
    with pytest.raises(ValueError):
        clevertap.subscribe_body(emails, "resubscribe")
    # No record number in the text: the position comes from the echo, read back from the body.
    reply = {"status": "partial", "processed": 2, "unprocessed": [
        {"status": "fail", "code": 526, "error": "objectId is invalid.", "record": {"objectId": "bad"}}]}
    server = scripted([(200, {}, reply), (200, {}, {"status": "success", "processed": 3, "unprocessed": []})])
    records = [{"identity": "a", "type": "profile", "profileData": {}}, {"objectId": "bad", "type": "profile"},
               {"identity": "c", "type": "profile", "profileData": {}}]
    body = clevertap._encode({"d": records})
    with scripted_client(server.url) as client:
        outcome = client.upload_encoded(body, 3, index=2, start=2000)
        subscribed = client.subscribe_encoded(clevertap.subscribe_body(emails, "Unsubscribe"), 3)
        with pytest.raises(ValueError):
            client.upload_encoded(b"{}", 1001)
    assert [s.path for s in server.seen] == ["/1/upload", "/1/subscribe"] and server.seen[0].body == body
    assert (outcome.sent, outcome.processed, outcome.index) == (3, 2, 2)
    assert [(u.record_index, u.code) for u in outcome.unprocessed] == [(2001, 526)]
    assert subscribed.processed == 3 and subscribed.sent == 3


def test_a_refused_batch_raises_the_request_error(scripted, no_sleep) -> None:
    server = scripted([(400, {}, {"status": "fail", "error": "Bad request", "code": 400})])
    records = [{"identity": str(i), "type": "profile", "profileData": {}} for i in range(10)]
    with scripted_client(server.url) as client, pytest.raises(CleverTapRequestError, match="Bad request"):
        client.upload_batch(records)
    assert len(server.seen) == 1 and not no_sleep  # a 400 is not retried
    with scripted_client(server.url) as client, pytest.raises(ValueError, match="1000"):
        client.upload_batch([{"identity": "x"}] * 1001)


def test_unreachable_host_is_connection_error(no_sleep) -> None:
    port = free_port()
    with scripted_client(f"http://127.0.0.1:{port}", max_retries=2) as client:
        with pytest.raises(CleverTapConnectionError) as caught:
            client.check_credentials()
    assert str(caught.value).startswith(f"Could not reach CleverTap at 127.0.0.1:{port} on all 3 attempts: check "
                                        "the network")
    assert len(no_sleep) == 2 and PASSCODE not in str(caught.value)


def test_non_json_success_reply_is_an_error_not_an_empty_export(scripted) -> None:
    server = scripted([(200, {"Content-Type": "text/html"}, b"<html>Proxy login</html>")])
    with scripted_client(server.url) as client, pytest.raises(CleverTapServerError, match="other than JSON"):
        list(client.iter_profiles("App Launched", FROM, TO))


# -- against the sandbox over real HTTP -----------------------------------------------------------

def last_90_days(sb) -> tuple[date, date]:
    from datetime import timedelta

    return sb.anchor_date - timedelta(days=90), sb.anchor_date


def sandbox_client(sb, *, region: str | None = None, passcode: str | None = None, **kwargs) -> CleverTapClient:
    return CleverTapClient(sb.account_id, passcode or sb.passcode, region or sb.region,
                           base_url=sb.clevertap_base_template, **kwargs)


def route_count(sb, route: str) -> int:
    return sb.stats()["requests"].get(route, 0)


@pytest.fixture
def tiny_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Record requested sleeps but only really sleep 20 ms, so server-side slots can free up."""
    import time

    slept: list[float] = []

    def record(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(0.02)

    monkeypatch.setattr(clevertap.http, "sleep", record)
    monkeypatch.setattr(clevertap.http, "jitter", lambda: 1.0)
    return slept


def test_check_credentials_accepts_the_sandbox_project(sandbox) -> None:
    with sandbox_client(sandbox) as client:
        client.check_credentials()
    with CleverTapClient(sandbox.account_id, sandbox.passcode, sandbox.region,
                         base_url=sandbox.clevertap_base) as client:
        client.check_credentials()


def test_wrong_passcode_is_auth_error_without_secrets(sandbox) -> None:
    wrong = "WRONG-passcode-77"
    before = route_count(sandbox, "clevertap.profile")
    with sandbox_client(sandbox, passcode=wrong) as client, pytest.raises(CleverTapAuthError) as caught:
        client.check_credentials()
    error = caught.value
    assert not isinstance(error, CleverTapWrongRegionError) and error.status == 401
    assert str(error).startswith(f"CleverTap rejected project id {sandbox.account_id} or its passcode")
    assert "Settings → Projects" in str(error)
    assert wrong not in str(error) and sandbox.passcode not in str(error) and wrong not in repr(error.args)
    assert route_count(sandbox, "clevertap.profile") - before == len(clevertap.REGIONS)  # probed every region


def test_right_credentials_in_the_wrong_region_name_the_right_one(sandbox) -> None:
    with sandbox_client(sandbox, region="SG1") as client, pytest.raises(CleverTapWrongRegionError) as caught:
        client.check_credentials()
    assert caught.value.working_region == "IN1"
    assert "belongs to region IN1 (India), not SG1 (Singapore)" in str(caught.value)
    assert sandbox.passcode not in str(caught.value)


@pytest.mark.parametrize("passcode", ["", "   "])
def test_missing_passcode_is_said_without_asking_any_region(sandbox, passcode: str) -> None:
    before = route_count(sandbox, "clevertap.profile")
    with CleverTapClient(sandbox.account_id, passcode, "IN1", base_url=sandbox.clevertap_base_template) as client, \
            pytest.raises(CleverTapAuthError) as caught:
        client.check_credentials()
    assert "No passcode" in str(caught.value) and caught.value.status is None
    assert route_count(sandbox, "clevertap.profile") == before  # not one call, let alone six


def test_single_base_does_not_probe_other_regions(sandbox) -> None:
    before = route_count(sandbox, "clevertap.profile")
    with CleverTapClient(sandbox.account_id, "WRONG-passcode", "IN1", base_url=sandbox.clevertap_base) as client, \
            pytest.raises(CleverTapAuthError) as caught:
        client.check_credentials()
    assert not isinstance(caught.value, CleverTapWrongRegionError)
    assert route_count(sandbox, "clevertap.profile") - before == 1


def test_export_reaches_the_last_page_and_matches_the_count(sandbox, no_sleep) -> None:
    start, end = last_90_days(sandbox)
    with sandbox_client(sandbox) as client:
        pages = list(client.iter_profiles("App Launched", start, end, batch_size=300))
        expected = client.count_profiles("App Launched", start, end, poll_interval=0.01)
    # Anonymous profiles have no identity: their objectId (in platformInfo) is the key.
    keys = [r.get("identity") or r["platformInfo"][0]["objectId"] for page in pages for r in page]
    assert len(keys) == expected > 299 and len(set(keys)) == expected
    assert all(len(page) == 299 for page in pages[:-1]) and 0 < len(pages[-1]) <= 299  # 13 x 23


def test_export_with_profile_filters_matches_the_count(sandbox, no_sleep) -> None:
    start, end = last_90_days(sandbox)
    gold = [{"name": "Customer Type", "operator": "equals", "value": "Gold"}]
    with sandbox_client(sandbox) as client:
        records = [r for page in client.iter_profiles("Charged", start, end, filters=gold) for r in page]
        expected = client.count_profiles("Charged", start, end, filters=gold, poll_interval=0.01)
        everyone = client.count_profiles("Charged", start, end, poll_interval=0.01)
    assert len(records) == expected and 0 < expected < everyone
    assert {r["profileData"]["Customer Type"] for r in records} == {"Gold"}


def test_still_in_progress_is_retried_on_the_same_cursor(make_sandbox, no_sleep) -> None:
    sb = make_sandbox(profiles=300, in_progress_polls=3)
    start, end = last_90_days(sb)
    with sandbox_client(sb) as client:
        total = sum(len(p) for p in client.iter_profiles("App Launched", start, end, batch_size=46))
        assert total == client.count_profiles("App Launched", start, end, poll_interval=0.01)
    assert no_sleep[:3] == [0.5, 1.0, 2.0]
    assert sb.stats()["requests"]["clevertap.profiles_page"] == sb.stats()["pages_served"] + 3


def test_faults_are_retried_to_a_complete_export(make_sandbox, tiny_sleep) -> None:
    sb = make_sandbox(profiles=1500, fault_rate=0.25)
    start, end = last_90_days(sb)
    with sandbox_client(sb, max_retries=8) as client:
        total = sum(len(p) for p in client.iter_profiles("App Launched", start, end, batch_size=92))
        expected = client.count_profiles("App Launched", start, end, poll_interval=0.01)
    stats = sb.stats()
    assert total == expected and stats["faults_injected"] > 0
    assert len(tiny_sleep) >= stats["faults_injected"]


def test_request_errors_from_the_sandbox(sandbox) -> None:
    from datetime import timedelta

    start, end = last_90_days(sandbox)
    with sandbox_client(sandbox) as client:
        with pytest.raises(CleverTapRequestError, match="invalid event"):
            list(client.iter_profiles("app launched", start, end))  # names are case-sensitive
        with pytest.raises(CleverTapRequestError) as caught:
            client.count_profiles("App Launched", start, end + timedelta(days=30))
    assert caught.value.code == 4002 and "future" in str(caught.value)


def test_get_profile_by_every_key(sandbox) -> None:
    start, end = last_90_days(sandbox)
    with sandbox_client(sandbox) as client:
        record = next(r for page in client.iter_profiles("App Launched", start, end, batch_size=23) for r in page
                      if r.get("identity") and r.get("email"))
        by_identity = client.get_profile(identity=record["identity"])
        by_email = client.get_profile(email=record["email"])
        by_object_id = client.get_profile(object_id=by_identity.object_id)
        assert client.get_profile(identity="no-such-user-anywhere") is None
        assert client.get_profile(email="nobody@nowhere.example") is None
    assert by_identity.identity == record["identity"] and by_identity.email == record["email"]
    assert isinstance(by_identity.msg_email, bool) and by_identity.name == record["profileData"].get("Name")
    assert by_email.email == record["email"]
    assert by_object_id.identity == record["identity"]


def test_upload_batches_report_bad_emails_per_record(make_sandbox) -> None:
    sb = make_sandbox(profiles=100)
    bad = {7, 1000, 2499}
    records = [{"identity": f"upload-{i}", "type": "profile",
                "profileData": {"Email": "not-an-email" if i in bad else f"person{i}@example.org", "Plan": "gold"}}
               for i in range(2500)]
    with sandbox_client(sb) as client:
        outcomes = [client.upload_batch(records[start:start + 1000], index=n, start=start)
                    for n, start in enumerate(range(0, 2500, 1000))]
        stored = client.get_profile(identity="upload-1001")
    assert [o.sent for o in outcomes] == [1000, 1000, 500] and sum(o.processed for o in outcomes) == 2497
    assert {(u.record_index, u.code) for o in outcomes for u in o.unprocessed} == {(i, 515) for i in bad}
    assert stored.email == "person1001@example.org" and stored.properties["Plan"] == "gold"
    assert sb.stats()["records_rejected"] == 3


def test_upload_429s_are_retried(make_sandbox, tiny_sleep) -> None:
    sb = make_sandbox(profiles=100, latency_ms=20, upload_concurrency=2)
    records = [{"identity": f"r-{i}", "type": "profile", "profileData": {"Plan": "y"}} for i in range(8000)]
    with sandbox_client(sb, max_retries=20) as client, ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(lambda start: client.upload_batch(records[start:start + 1000]), range(0, 8000, 1000)))
    stats = sb.stats()
    assert sum(o.processed for o in outcomes) == 8000 and stats["concurrency_rejected"] > 0
    assert stats["requests"]["clevertap.upload"] == 8 + stats["concurrency_rejected"]
    assert len(tiny_sleep) == stats["concurrency_rejected"]


def test_subscribe_flips_msg_email(make_sandbox) -> None:
    sb = make_sandbox(profiles=200)
    start, end = last_90_days(sb)
    with sandbox_client(sb) as client:
        record = next(r for page in client.iter_profiles("App Launched", start, end) for r in page
                      if r.get("identity") and r.get("email") and r["profileData"].get("MSG-email") is True)
        outcome = client.subscribe_batch([record["email"].upper(), "not an email"], "Unsubscribe")
        after = client.get_profile(identity=record["identity"])
        client.subscribe_batch([record["email"]], "Resubscribe")
        again = client.get_profile(identity=record["identity"])
    assert outcome.processed == 1 and [(u.record_index, u.code) for u in outcome.unprocessed] == [(1, 515)]
    assert after.msg_email is False and again.msg_email is True
