"""lib/http.py: the retry policy as pure functions, and the retry loop against a scripted local server."""
from __future__ import annotations

from email.utils import format_datetime
from datetime import datetime, timedelta, UTC

import pytest
import requests

from lib import http
from tests.http_support import free_port


# -- pure functions -------------------------------------------------------------------------------

@pytest.mark.parametrize("status, retry", [(None, True), (429, True), (500, True), (503, True), (524, True),
                                           (400, False), (401, False), (403, False), (404, False), (200, False)])
def test_should_retry_only_transient_failures(status: int | None, retry: bool) -> None:
    assert http.should_retry(status, 0, 3) is retry


def test_should_retry_is_bounded() -> None:
    assert http.should_retry(503, 2, 3)
    assert not http.should_retry(503, 3, 3)
    assert not http.should_retry(None, 0, 0)


def test_backoff_delay_doubles_then_caps() -> None:
    full = [http.backoff_delay(a, base=0.5, cap=4.0, jitter=lambda: 1.0) for a in range(6)]
    assert full == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]
    assert http.backoff_delay(3, base=0.5, cap=4.0, jitter=lambda: 0.0) == 2.0  # jitter keeps half


def test_retry_after_seconds_forms() -> None:
    assert http.retry_after_seconds({"Retry-After": "7"}) == 7.0
    assert http.retry_after_seconds({"retry-after": "2.5"}) == 2.5
    now = datetime(2026, 1, 1, tzinfo=UTC)
    later = format_datetime(now + timedelta(seconds=30), usegmt=True)
    assert http.retry_after_seconds({"Retry-After": later}, now=now.timestamp) == pytest.approx(30.0)
    assert http.retry_after_seconds({"x-ratelimit-reset": "12"}) == 12.0
    assert http.retry_after_seconds({"X-RateLimit-Reset": str(now.timestamp() + 5)}, now=now.timestamp) == 5.0
    assert http.retry_after_seconds({"Retry-After": "3", "x-ratelimit-reset": "40"}) == 3.0
    assert http.retry_after_seconds({"Retry-After": "soon"}) is None
    assert http.retry_after_seconds({}) is None


def test_retry_delay_hint_wins_on_429_and_is_clamped(no_sleep: list[float]) -> None:
    assert http.retry_delay(429, {"Retry-After": "9"}, 0) == 9.0
    assert http.retry_delay(429, {"Retry-After": "3600"}, 0) == http.MAX_HINT_SECONDS
    # A rate-limit window header on a 500 is no reason to wait a minute.
    assert http.retry_delay(500, {"x-ratelimit-reset": "50"}, 1) == 1.0
    assert http.retry_delay(None, None, 2) == 2.0


def test_safe_text_masks_secrets_and_bounds_length() -> None:
    assert http.safe_text("bad  token\nabcd-SECRET-1234 here", secrets=("abcd-SECRET-1234", None)) == \
        "bad token [redacted] here"
    assert len(http.safe_text("x" * 1000, limit=50)) == 50


def test_host_of_drops_user_info() -> None:
    assert http.host_of("https://user:pw@in1.api.clevertap.com/1/upload") == "in1.api.clevertap.com"
    assert http.host_of("http://127.0.0.1:8080/x") == "127.0.0.1:8080"


def test_make_session_pool_and_user_agent() -> None:
    with http.make_session(headers={"X-A": "1"}, pool_maxsize=16) as session:
        assert session.headers["User-Agent"] == http.USER_AGENT
        assert session.get_adapter("https://x").poolmanager.connection_pool_kw["maxsize"] == 16


# -- the loop over real HTTP ----------------------------------------------------------------------

def test_send_with_retries_retries_503_then_succeeds(scripted, no_sleep: list[float]) -> None:
    server = scripted([(503, {}, {}), (503, {}, {}), (200, {}, {"ok": 1})])
    with requests.Session() as session:
        response = http.send_with_retries(lambda: session.get(server.url, timeout=5), max_retries=5)
    assert response.status_code == 200
    assert len(server.seen) == 3
    assert no_sleep == [0.5, 1.0]


def test_send_with_retries_honours_retry_after(scripted, no_sleep: list[float]) -> None:
    server = scripted([(429, {"Retry-After": "4"}, {}), (200, {}, {})])
    with requests.Session() as session:
        assert http.send_with_retries(lambda: session.get(server.url, timeout=5), max_retries=5).ok
    assert no_sleep == [4.0]


def test_send_with_retries_returns_last_reply_when_exhausted(scripted, no_sleep: list[float]) -> None:
    server = scripted([(500, {}, {})])
    with requests.Session() as session:
        response = http.send_with_retries(lambda: session.get(server.url, timeout=5), max_retries=2)
    assert response.status_code == 500 and len(server.seen) == 3 and len(no_sleep) == 2


def test_send_with_retries_never_retries_other_4xx(scripted, no_sleep: list[float]) -> None:
    server = scripted([(400, {}, {})])
    with requests.Session() as session:
        assert http.send_with_retries(lambda: session.get(server.url, timeout=5), max_retries=5).status_code == 400
    assert len(server.seen) == 1 and no_sleep == []


def test_send_with_retries_connection_refused(no_sleep: list[float]) -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    calls = []

    def send() -> requests.Response:
        calls.append(1)
        return requests.get(url, timeout=2)

    with pytest.raises(requests.ConnectionError) as caught:
        http.send_with_retries(send, max_retries=2, idempotent=False)
    assert len(calls) == 3  # refused means never sent, so even a non-idempotent call is retried
    assert http.was_not_sent(caught.value)


def test_non_idempotent_read_timeout_is_not_retried(scripted, no_sleep: list[float]) -> None:
    calls = []

    def send() -> requests.Response:
        calls.append(1)
        raise requests.ReadTimeout("read timed out")

    with pytest.raises(requests.ReadTimeout):
        http.send_with_retries(send, max_retries=3, idempotent=False)
    assert len(calls) == 1
    calls.clear()
    with pytest.raises(requests.ReadTimeout):
        http.send_with_retries(send, max_retries=3, idempotent=True)
    assert len(calls) == 4


def test_with_a_gate_the_announced_wait_is_kept_by_the_gate_not_slept_twice(scripted, no_sleep, tmp_path) -> None:
    from lib.ratelimit import Gates

    server = scripted([(503, {"Retry-After": "7"}, {}), (200, {}, {"ok": True})])
    now = [0.0]
    gate_sleeps: list[float] = []

    def gate_sleep(seconds: float) -> None:
        gate_sleeps.append(seconds)
        now[0] += seconds

    gates = Gates(tmp_path, clock=lambda: now[0], sleep=gate_sleep)
    session = requests.Session()
    reply = http.send_with_retries(lambda: session.get(server.url + "/x", timeout=5), max_retries=3,
                                   gate=gates.clearout("tok"))
    assert reply.status_code == 200
    assert gate_sleeps == [7.0] and no_sleep == []  # waited once, by the gate (for every process)
