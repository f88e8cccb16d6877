"""lib/clearout.py: envelope and error mapping, streaming upload, and the bulk lifecycle (sandbox)."""
from __future__ import annotations

import io
from email.parser import BytesParser
from email.policy import HTTP
from pathlib import Path

import pandas as pd
import pytest

from lib import clearout
from lib.clearout import (ClearoutAuthError, ClearoutClient, ClearoutConcurrencyError, ClearoutConnectionError,
                          ClearoutCreditsError, ClearoutDailyLimitError, ClearoutError, ClearoutRateLimitError,
                          ClearoutRequestError, ClearoutServerError, MultipartFile)
from lib.columns import CLEAROUT_COLUMN_NAMES, ClearoutColumnsError
from tests.test_http import free_port, no_sleep, scripted  # noqa: F401 - fixtures

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
    server.script[:] = [(200, {}, {"status": "success", "data": {"url": server.url + "/files/r.csv?X-Amz-Expires=300"}}),
                        (200, {"Content-Type": "text/csv"}, csv_text.encode())]
    with ClearoutClient(TOKEN, base_url=server.url + "/v2") as client:
        frame = client.download_result("5c60eb454506101c9d2f7b17")
    api, file = server.seen
    assert api.path == "/v2/download/result" and api.headers["Authorization"] == f"Bearer {TOKEN}"
    assert file.path == "/files/r.csv?X-Amz-Expires=300"
    assert "Authorization" not in file.headers
    assert frame["email"].tolist() == ["valid@example.com"]


def test_bulk_upload_streams_a_multipart_file(scripted, tmp_path: Path) -> None:
    server = scripted([(200, {}, {"status": "success", "data": {"list_id": "5c60eb454506101c9d2f7b17"}})])
    with ClearoutClient(TOKEN, base_url=server.url) as client:
        list_id = client.bulk_upload(iter(["a@example.com", "b@example.com"]), "march", ignore_duplicate_file=True)
    assert list_id == "5c60eb454506101c9d2f7b17"
    seen = server.seen[0]
    assert "Transfer-Encoding" not in seen.headers and int(seen.headers["Content-Length"]) == len(seen.body)
    parts = parse_multipart(seen.headers["Content-Type"], seen.body)
    assert parts["file"] == ("march.csv", b"Email\r\na@example.com\r\nb@example.com\r\n")
    assert parts["ignore_duplicate_file"] == (None, b"true")
    assert not list(Path(clearout.tempfile.gettempdir()).glob("clearout-upload-*"))  # temp file removed


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
    assert str(caught.value) == f"Could not reach Clearout at 127.0.0.1:{port}: check the network or proxy"


def test_non_json_success_reply_is_an_error(scripted) -> None:
    server = scripted([(200, {"Content-Type": "text/html"}, b"<html>Proxy login</html>")])
    with ClearoutClient(TOKEN, base_url=server.url) as client, \
            pytest.raises(ClearoutServerError, match="other than JSON"):
        client.get_credits()
