"""lib/clearout.py: envelope and error mapping, streaming upload, and the bulk lifecycle (sandbox)."""
from __future__ import annotations

from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import pandas as pd
import pytest

from lib import clearout
from lib.clearout import (ClearoutAuthError, ClearoutClient, ClearoutConcurrencyError, ClearoutConnectionError,
                          ClearoutCreditsError, ClearoutDailyLimitError, ClearoutError, ClearoutRateLimitError,
                          ClearoutRequestError, ClearoutServerError, MultipartFile)
from lib.columns import CLEAROUT_COLUMN_NAMES, CLEAROUT_COLUMNS, ClearoutColumnsError
from tests.http_support import free_port

TOKEN = "a" * 32 + ":" + "SECRETb" * 9 + "c"


def failed(code: int | None, message: str, **extra) -> dict:
    error = {"message": message, **extra}
    if code is not None:
        error["code"] = code
    return {"status": "failed", "error": error}


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    return {part.get_param("name", header="content-disposition"): (part.get_filename(), part.get_payload(decode=True))
            for part in message.iter_parts()}


# -- pure pieces ----------------------------------------------------------------------------------

def test_every_documented_code_is_mapped() -> None:
    documented = {1000, 1001, 1002, 1004, 1007, 1008, 1017, 1027, 1028, 1029, 1030, 1031, 1032, 1074, 1116}
    assert set(clearout.CODE_ERRORS) == documented
    assert all(issubclass(cls, ClearoutError) for cls, _ in clearout.CODE_ERRORS.values())


def test_repr_hides_token() -> None:
    with ClearoutClient(TOKEN) as client:
        assert TOKEN not in repr(client) and "SECRET" not in repr(client)
        assert client.base_url == "https://api.clearout.io/v2"


def test_multipart_body_streams_from_disk(tmp_path: Path) -> None:
    path = tmp_path / "big.csv"
    path.write_bytes(b"Email\n" + b"someone@example.com\n" * 20_000)  # ~400 KB
    body = MultipartFile(path, field_name="file", filename='my "list".csv', content_type="text/csv",
                         fields={"ignore_duplicate_file": "false"})
    chunks = list(body)
    assert max(len(c) for c in chunks) <= clearout.CHUNK_BYTES and len(chunks) > 5  # read piecewise
    joined = b"".join(chunks)
    assert len(joined) == len(body)
    parts = parse_multipart(body.content_type, joined)
    assert parts["file"] == ("my _list_.csv", path.read_bytes())
    assert parts["ignore_duplicate_file"] == (None, b"false")


def test_result_frame_normalises_and_conforms(tmp_path: Path) -> None:
    base = {name: "" for name in CLEAROUT_COLUMN_NAMES}
    good = {**base, "Clearout Safe to Send": "Yes", "Clearout Verification Status": "Valid",
            "Clearout Disposable Status": "No", "Clearout Free Account Status": "Yes",
            "Clearout Role Account Status": "No", "Clearout Gibberish Status": "No",
            "Clearout Verified At (UTC)": "2026-01-02T03:04:05.000Z", "Clearout Time Taken (ms)": "120"}
    rows = [{"Email": " Ann@X.com", **good}, {"Email": "ann@x.com", **good}, {"Email": "", **good},
            {"Email": "bob@y.com", **good, "Clearout Verification Status": "Catch All",
             "Clearout Safe to Send": "Risky"}]
    path = tmp_path / "r.csv"
    pd.DataFrame(rows).assign(Name="kept out").to_csv(path, index=False)
    frame = clearout.result_frame(path)
    assert list(frame.columns) == ["email", *CLEAROUT_COLUMN_NAMES]
    assert frame["email"].tolist() == ["ann@x.com", "bob@y.com"]
    assert frame["Clearout Verification Status"].tolist() == ["Valid", "Catch All"]
    assert frame["Clearout Time Taken (ms)"].dtype == "Int64"
    assert str(frame["Clearout Verified At (UTC)"].dtype) == "datetime64[ms, UTC]"
    pd.DataFrame(rows).drop(columns=["Clearout MX Record"]).to_csv(path, index=False)
    with pytest.raises(ClearoutColumnsError, match="Clearout MX Record"):
        clearout.result_frame(path)


# -- deterministic behaviour against a scripted server ------------------------------------------

CREDITS = {"status": "success", "data": {"available_credits": 114563, "credits": {
    "available": 114563, "subs": None, "available_daily_verify_limit": None,
    "reset_daily_verify_limit_date": "2019-03-04T18:30:00.000Z", "total": 120000},
    "low_credit_balance_min_threshold": 50}}


def test_bearer_header_and_credits(scripted) -> None:
    server = scripted([(200, {}, CREDITS)])
    with ClearoutClient(TOKEN, base_url=server.url + "/v2") as client:
        credits = client.get_credits()
    assert credits == clearout.Credits(available=114563, total=120000, daily_limit_available=None,
                                       daily_limit_resets_at="2019-03-04T18:30:00.000Z", low_balance_threshold=50)
    assert server.seen[0].path == "/v2/email_verify/getcredits"
    assert server.seen[0].headers["Authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("status, body, cls, words", [
    (401, failed(1000, "Invalid API Token, please generate new token"), ClearoutAuthError,
     "generate a new one at app.clearout.io → Developer"),
    (200, failed(1001, "maximum bulk verify requests running"), ClearoutConcurrencyError, "3 lists"),
    (402, failed(1002, "You have exhausted your credits"), ClearoutCreditsError, "buy credits at clearout.io"),
    (200, failed(1017, "daily verify limit reached"), ClearoutDailyLimitError, "daily verification limit"),
    (200, failed(1029, "List is not available"), clearout.ClearoutListUnavailableError, "upload it again"),
    (200, failed(1007, "Result file got expired, contact us@clearout.io"), clearout.ClearoutResultExpiredError,
     "expired"),
    (200, failed(1116, "List is not in the cancellable stage"), clearout.ClearoutNotCancellableError,
     "can no longer be cancelled"),
    (400, failed(None, "validation failed", reasons=[{"field": ["email"], "location": "body",
                                                      "messages": ['"email" is required'], "types": ["any.required"]}]),
     ClearoutRequestError, 'email: "email" is required'),
    (415, b"Unsupported Media Type", ClearoutRequestError, "content type"),
])
def test_envelope_failures_map_to_actionable_errors(scripted, no_sleep, status, body, cls, words) -> None:
    server = scripted([(status, {}, body)])
    with ClearoutClient(TOKEN, base_url=server.url) as client, pytest.raises(cls) as caught:
        client.bulk_progress("5c60eb454506101c9d2f7b17")
    assert words in str(caught.value) and "SECRET" not in str(caught.value)
    assert len(server.seen) == 1 and no_sleep == []  # none of these is retried


def test_insufficient_credits_reports_needed(scripted) -> None:
    server = scripted([(402, {}, failed(1028, "available credits are insufficient to verify 5000 emails",
                                        additional_info={"available_credits": 12}))])
    with ClearoutClient(TOKEN, base_url=server.url) as client, pytest.raises(ClearoutCreditsError) as caught:
        client.bulk_upload(["a@example.com"], "list")
    assert (caught.value.needed, caught.value.available, caught.value.code) == (5000, 12, 1028)
    assert "needed 5000, available 12" in str(caught.value)


def test_rate_limit_waits_reset_header_then_succeeds(scripted, no_sleep) -> None:
    limited = failed(1030, "You have reached API rate limit, try calling after 2026-01-01")
    server = scripted([(429, {"x-ratelimit-limit": "25", "x-ratelimit-remaining": "0", "x-ratelimit-reset": "17"},
                        limited), (200, {}, CREDITS)])
    with ClearoutClient(TOKEN, base_url=server.url) as client:
        assert client.get_credits().available == 114563
    assert no_sleep == [17.0] and len(server.seen) == 2


def test_rate_limit_after_retries(scripted, no_sleep) -> None:
    server = scripted([(429, {"x-ratelimit-reset": "5"}, failed(1030, "rate limit"))])
    with ClearoutClient(TOKEN, base_url=server.url, max_retries=2) as client, \
            pytest.raises(ClearoutRateLimitError):
        client.get_credits()
    assert no_sleep == [5.0, 5.0]


def test_server_errors_are_retried_then_raised(scripted, no_sleep) -> None:
    server = scripted([(503, {}, b""), (524, {}, failed(None, "Timeout Occurred"))])
    with ClearoutClient(TOKEN, base_url=server.url, max_retries=3) as client, \
            pytest.raises(ClearoutServerError, match="Timeout Occurred"):
        client.verify_instant("valid@example.com")
    assert len(server.seen) == 4 and no_sleep == [0.5, 1.0, 2.0]


def test_a_5xx_message_says_how_often_it_was_tried(scripted, no_sleep) -> None:
    """"Clearout kept failing" after a single 503 was not true: the message counts the attempts."""
    server = scripted([(503, {}, b"")])
    with ClearoutClient(TOKEN, base_url=server.url, max_retries=0) as client, \
            pytest.raises(ClearoutServerError) as once:
        client.get_credits()
    assert str(once.value) == ("Clearout answered HTTP 503 (service unavailable) on its only attempt (not retried): "
                               "try again later")
    with ClearoutClient(TOKEN, base_url=server.url, max_retries=2) as client, \
            pytest.raises(ClearoutServerError) as thrice:
        client.get_credits()
    assert str(thrice.value).startswith("Clearout answered HTTP 503 (service unavailable) on all 3 attempts")
    mixed = scripted([(500, {}, b""), (503, {}, b"")])
    with ClearoutClient(TOKEN, base_url=mixed.url, max_retries=1) as client, \
            pytest.raises(ClearoutServerError, match=r"on 2 attempts \(HTTP 500 \(server error\), HTTP 503"):
        client.get_credits()


def test_retries_are_told_to_the_work_s_reporter(scripted, no_sleep) -> None:
    from lib import activity

    heard: list[tuple] = []

    class Heard:
        def step(self, *args) -> None:
            heard.append(("step", *args))

        def waiting(self, *args) -> None:
            heard.append(("waiting", *args))

        def retrying(self, *args) -> None:
            heard.append(("retrying", *args))

    server = scripted([(503, {}, b""), (200, {}, {"status": "success", "data": {"available_credits": 5}})])
    with ClearoutClient(TOKEN, base_url=server.url, max_retries=5) as client, activity.reporting(Heard()):
        assert client.get_credits().available == 5
    assert heard == [("retrying", "Clearout", 1, 5, "HTTP 503 (service unavailable)", 0.5)]


def test_instant_verify_columns(scripted) -> None:
    data = {"email_address": "catch_all@example.com", "status": "catch_all", "safe_to_send": "risky",
            "sub_status": {"code": 411, "desc": "Catch All mail server"}, "disposable": "no", "free": "no",
            "role": "no", "gibberish": "no", "suggested_email_address": "", "bounce_type": "",
            "detail_info": {"account": "catch_all", "domain": "example.com", "mx_record": "mx.example.com",
                            "smtp_provider": "Example"}, "verified_on": "2026-01-02T03:04:05.000Z", "time_taken": 250}
    server = scripted([(200, {}, {"status": "success", "data": data})])
    with ClearoutClient(TOKEN, base_url=server.url) as client:
        verdict = client.verify_instant("catch_all@example.com", timeout_ms=5000)
        with pytest.raises(ValueError):
            client.verify_instant("x@example.com", timeout_ms=200_000)
    assert server.seen[0].body == b'{"email": "catch_all@example.com", "timeout": 5000}'
    assert verdict.columns["Clearout Verification Status"] == "Catch All"
    assert verdict.columns["Clearout MX Record"] == "mx.example.com" and verdict.raw == data


def test_download_link_is_fetched_without_authorization(scripted) -> None:
    csv_text = "Email," + ",".join(f'"{c}"' for c in CLEAROUT_COLUMN_NAMES) + "\n" + \
        "Valid@Example.com,Yes,Valid,Success,,,No,No,No,No,valid,example.com,mx,Ex,2026-01-02T03:04:05Z,10\n"
    server = scripted([])
    link = {"status": "success", "data": {"url": server.url + "/files/r.csv?X-Amz-Expires=300"}}
    server.script[:] = [(200, {}, link),
                        (200, {"Content-Type": "text/csv"}, csv_text.encode())]
    with ClearoutClient(TOKEN, base_url=server.url + "/v2") as client:
        frame = client.download_result("5c60eb454506101c9d2f7b17")
    api, file = server.seen
    assert api.path == "/v2/download/result" and api.headers["Authorization"] == f"Bearer {TOKEN}"
    assert file.path == "/files/r.csv?X-Amz-Expires=300"
    assert "Authorization" not in file.headers
    assert frame["email"].tolist() == ["valid@example.com"]


def test_bulk_upload_streams_a_multipart_file(scripted, tmp_path: Path, monkeypatch) -> None:
    # A private temp dir: other tests (or processes) uploading at the same moment must not count.
    monkeypatch.setattr(clearout.tempfile, "tempdir", str(tmp_path))
    server = scripted([(200, {}, {"status": "success", "data": {"list_id": "5c60eb454506101c9d2f7b17"}})])
    with ClearoutClient(TOKEN, base_url=server.url) as client:
        list_id = client.bulk_upload(iter(["a@example.com", "b@example.com"]), "march", ignore_duplicate_file=True)
    assert list_id == "5c60eb454506101c9d2f7b17"
    seen = server.seen[0]
    assert "Transfer-Encoding" not in seen.headers and int(seen.headers["Content-Length"]) == len(seen.body)
    parts = parse_multipart(seen.headers["Content-Type"], seen.body)
    assert parts["file"] == ("march.csv", b"Email\r\na@example.com\r\nb@example.com\r\n")
    assert parts["ignore_duplicate_file"] == (None, b"true")
    assert not list(tmp_path.glob("clearout-upload-*"))  # temp file removed


def test_bulk_upload_is_not_retried_after_timeout(scripted, no_sleep, monkeypatch) -> None:
    """A timed-out upload may have been accepted; a silent second upload would cost credits twice."""
    server = scripted([(200, {}, {"status": "success", "data": {"list_id": "x"}})])
    calls = []
    with ClearoutClient(TOKEN, base_url=server.url) as client:
        def timeout(*args, **kwargs):
            calls.append(1)
            raise clearout.requests.ReadTimeout("read timed out")
        monkeypatch.setattr(client._session, "request", timeout)
        with pytest.raises(ClearoutConnectionError, match="timed out"):
            client.bulk_upload(["a@example.com"], "list")
    assert len(calls) == 1


def test_unreachable_is_connection_error(no_sleep) -> None:
    port = free_port()
    with ClearoutClient(TOKEN, base_url=f"http://127.0.0.1:{port}/v2", max_retries=1) as client, \
            pytest.raises(ClearoutConnectionError) as caught:
        client.get_credits()
    assert str(caught.value) == (f"Could not reach Clearout at 127.0.0.1:{port} on all 2 attempts: check the "
                                 "network or proxy")


def test_non_json_success_reply_is_an_error(scripted) -> None:
    server = scripted([(200, {"Content-Type": "text/html"}, b"<html>Proxy login</html>")])
    with ClearoutClient(TOKEN, base_url=server.url) as client, \
            pytest.raises(ClearoutServerError, match="other than JSON"):
        client.get_credits()


# -- against the sandbox over real HTTP -----------------------------------------------------------

def sandbox_client(sb, token: str | None = None, **kwargs) -> ClearoutClient:
    return ClearoutClient(token or sb.clearout_token, base_url=sb.clearout_base, **kwargs)


def wait_until_completed(client: ClearoutClient, sb, list_id: str) -> list[clearout.BulkProgress]:
    """Poll progress, moving the sandbox clock instead of sleeping."""
    seen = [client.bulk_progress(list_id)]
    for _ in range(50):
        if seen[-1].completed:
            return seen
        sb.advance_clock(0.25)
        seen.append(client.bulk_progress(list_id))
    raise AssertionError(f"list never completed: {seen[-1]}")


def test_credits_from_the_sandbox(sandbox) -> None:
    with sandbox_client(sandbox) as client:
        credits = client.get_credits()
    assert credits.available == sandbox.stats()["credits_left"] > 0
    assert credits.low_balance_threshold == 50 and credits.daily_limit_available is None


@pytest.mark.parametrize("address, status, safe, flag", [
    ("valid@example.com", "Valid", "Yes", None),
    ("invalid@example.com", "Invalid", "No", None),
    ("catch_all@example.com", "Catch All", "Risky", None),
    ("unknown@example.com", "Unknown", "Unknown", None),
    ("disposable@example.com", None, None, "Clearout Disposable Status"),
    ("role@example.com", None, None, "Clearout Role Account Status"),
])
def test_instant_verify_test_addresses(sandbox, address, status, safe, flag) -> None:
    before = sandbox.stats()["credits_left"]
    with sandbox_client(sandbox) as client:
        verdict = client.verify_instant(address)
    columns = verdict.columns
    assert list(columns) == list(CLEAROUT_COLUMN_NAMES) and verdict.email == address
    if status:
        assert (columns["Clearout Verification Status"], columns["Clearout Safe to Send"]) == (status, safe)
    if flag:
        assert columns[flag] == "Yes"
    assert columns["Clearout Domain"] == "example.com" and columns["Clearout MX Record"]
    assert sandbox.stats()["credits_left"] == before  # test addresses are free


def test_bulk_lifecycle_from_upload_to_result(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox(bulk_seconds=0.5, credits=1000)
    addresses = ["valid@example.com", "Invalid@Example.com ", "catch_all@example.com", "person.one@gmail.com",
                 "invalid@example.com", "someone@northwindtraders.com", "role@example.com"]
    with sandbox_client(sb) as client:
        list_id = client.bulk_upload(iter(addresses), "march audience")
        progress = wait_until_completed(client, sb, list_id)
        frame = client.download_result(list_id)
        credits_after = client.get_credits().available
    stats = sb.stats()
    assert len(list_id) == 24 and stats["bulk_uploads_accepted"] == 1
    assert progress[0].status != "completed" and not progress[0].completed and progress[-1].percent == 100
    assert list(frame.columns) == ["email", *CLEAROUT_COLUMN_NAMES]
    assert frame["email"].tolist() == ["valid@example.com", "invalid@example.com", "catch_all@example.com",
                                       "person.one@gmail.com", "someone@northwindtraders.com", "role@example.com"]
    by_email = frame.set_index("email")
    assert by_email.loc["catch_all@example.com", "Clearout Verification Status"] == "Catch All"
    assert by_email.loc["invalid@example.com", "Clearout Safe to Send"] == "No"
    assert by_email.loc["person.one@gmail.com", "Clearout Free Account Status"] == "Yes"
    for column in CLEAROUT_COLUMNS:
        assert frame[column.name].dtype == column.dtype, column.name
    assert frame["Clearout Verified At (UTC)"].notna().all() and (frame["Clearout Time Taken (ms)"] >= 0).all()
    assert stats["requests"]["files"] == 1 and credits_after == 1000 - stats["credits_charged"]


def test_bulk_upload_from_a_csv_path_and_duplicates(make_sandbox, tmp_path: Path) -> None:
    sb = make_sandbox(bulk_seconds=0.5)
    path = tmp_path / "contacts.csv"
    path.write_text("Name,Email Address\nAnn,valid@example.com\nBob,invalid@example.com\n")
    with sandbox_client(sb) as client:
        first = client.bulk_upload(path, "contacts.csv")
        with pytest.raises(ClearoutRequestError) as caught:  # same name and size, recently
            client.bulk_upload(path, "contacts.csv")
        second = client.bulk_upload(path, "contacts.csv", ignore_duplicate_file=True)
        wait_until_completed(client, sb, second)
        frame = client.download_result(second)
    assert first != second and "ignore_duplicate_file" in str(caught.value)
    assert frame["email"].tolist() == ["valid@example.com", "invalid@example.com"]


def test_no_email_column_is_1004(sandbox, tmp_path: Path) -> None:
    path = tmp_path / "names.csv"
    path.write_text("Name,Phone\nAnn,123\n")
    with sandbox_client(sandbox) as client, pytest.raises(clearout.ClearoutNoEmailColumnError) as caught:
        client.bulk_upload(path, "names.csv")
    assert caught.value.code == 1004 and "Email" in str(caught.value)


def test_invalid_token_is_auth_error_without_secrets(sandbox) -> None:
    wrong = "f" * 32 + ":" + "WRONGTOKEN" * 6
    with sandbox_client(sandbox, token=wrong) as client, pytest.raises(ClearoutAuthError) as caught:
        client.get_credits()
    message = str(caught.value)
    assert caught.value.code == 1000 and caught.value.status == 401
    assert message.startswith("Clearout rejected the API token: generate a new one at app.clearout.io → Developer")
    assert wrong not in message and "WRONGTOKEN" not in message and sandbox.clearout_token not in message


def test_insufficient_credits_is_1028_with_the_count(make_sandbox) -> None:
    sb = make_sandbox(credits=3)
    addresses = [f"customer{i}@gmail.com" for i in range(10)]
    with sandbox_client(sb) as client, pytest.raises(ClearoutCreditsError) as caught:
        client.bulk_upload(addresses, "too big")
    assert caught.value.code == 1028 and caught.value.needed == 10
    assert "buy credits at clearout.io" in str(caught.value) and "needed 10" in str(caught.value)


def test_three_running_lists_then_1001_then_cancel_and_remove(make_sandbox) -> None:
    sb = make_sandbox(bulk_seconds=60)
    with sandbox_client(sb) as client:
        ids = [client.bulk_upload([f"valid{i}@example.com"], f"list-{i}") for i in range(3)]
        with pytest.raises(ClearoutConcurrencyError) as caught:
            client.bulk_upload(["valid@example.com"], "list-4")
        cancelled = client.cancel(ids[0])
        with pytest.raises(clearout.ClearoutNotCancellableError):
            client.cancel(ids[0])
        removed = client.remove(ids[0])
        with pytest.raises(clearout.ClearoutListUnavailableError) as gone:
            client.bulk_progress(ids[0])
        fourth = client.bulk_upload(["valid@example.com"], "list-4")  # a slot is free again
    assert caught.value.code == 1001 and "3 lists" in str(caught.value)
    assert cancelled.list_id == ids[0] and cancelled.name == "list-0" and cancelled.source == "upload"
    assert removed.list_id == ids[0] and gone.value.code == 1029
    assert fourth not in ids and sb.stats()["max_running_bulk_lists"] == 3


def test_rate_limit_waits_for_the_window(make_sandbox, monkeypatch) -> None:
    sb = make_sandbox(rpm=2)
    slept: list[float] = []

    def wait(seconds: float) -> None:  # time passes for the sandbox only
        slept.append(seconds)
        sb.advance_clock(seconds)

    monkeypatch.setattr(clearout.http, "sleep", wait)
    with sandbox_client(sb) as client:
        results = [client.get_credits() for _ in range(5)]
    assert len(results) == 5 and sb.stats()["rate_limited"] == 2
    assert len(slept) == 2 and all(1 <= s <= 60 for s in slept)


def test_rate_limit_gives_up_after_bounded_retries(make_sandbox, no_sleep) -> None:
    sb = make_sandbox(rpm=1)
    with sandbox_client(sb, max_retries=3) as client:
        client.get_credits()
        with pytest.raises(ClearoutRateLimitError) as caught:
            client.get_credits()
    assert caught.value.code == 1030 and len(no_sleep) == 3 and sb.stats()["rate_limited"] == 4
    assert all(1 <= s <= 60 for s in no_sleep)


def test_faults_are_retried(make_sandbox, no_sleep) -> None:
    sb = make_sandbox(fault_rate=0.3, rpm=10_000)
    with sandbox_client(sb, max_retries=8) as client:
        verdicts = [client.verify_instant(f"valid+{i}@example.com") for i in range(12)]
    assert len(verdicts) == 12 and sb.stats()["faults_injected"] > 0
    assert len(no_sleep) == sb.stats()["faults_injected"]


def test_a_refused_result_link_is_replaced_once(scripted) -> None:
    csv_text = ("Email," + ",".join(f'"{c}"' for c in CLEAROUT_COLUMN_NAMES) + "\n"
                "a@example.com,Yes,Valid,Success,,,No,No,No,No,a,example.com,mx,Ex,2026-01-02T03:04:05Z,10\n")
    denied = b"<Error><Code>ExpiredToken</Code></Error>"
    server = scripted([])
    link = {"status": "success", "data": {"url": server.url + "/files/r.csv"}}
    server.script[:] = [(200, {}, link), (403, {"Content-Type": "application/xml"}, denied),
                        (200, {}, link), (200, {"Content-Type": "text/csv"}, csv_text.encode()),
                        (200, {}, link), (403, {}, denied), (200, {}, link), (403, {}, denied)]
    with ClearoutClient(TOKEN, base_url=server.url) as client:
        assert client.download_result("x")["email"].tolist() == ["a@example.com"]
        with pytest.raises(ClearoutRequestError, match=r"refused \(HTTP 403\) twice"):
            client.download_result("x")
    assert [s.path for s in server.seen].count("/download/result") == 4


def test_upload_file_names_keep_an_extension() -> None:
    from lib.clearout import upload_filename

    assert upload_filename("Spring-promo-job3", ".csv") == "Spring-promo-job3.csv"
    assert upload_filename("report.xlsx", ".csv") == "report.xlsx"
    assert upload_filename("list.CSV", ".xlsx") == "list.CSV"
    assert upload_filename("export", ".XLSX") == "export.xlsx"
    assert upload_filename("no-suffix", "") == "no-suffix.csv"


def test_bulk_upload_of_a_path_named_without_extension_is_accepted(make_sandbox, tmp_path) -> None:
    sb = make_sandbox()
    path = tmp_path / "upload.csv"
    path.write_text("Email\na@gmail.com\n")
    with ClearoutClient(sb.clearout_token, base_url=sb.clearout_base) as client:
        assert client.bulk_upload(path, "Newsletter-job7")  # Clearout would refuse "Newsletter-job7"
    assert sb.stats()["bulk_uploads_accepted"] == 1
