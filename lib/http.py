"""The shared retry policy and session plumbing of the two API clients.

Pure functions decide (`should_retry`, `backoff_delay`, `retry_after_seconds`, `retry_delay`);
`send_with_retries` runs the loop. Sleeping and jitter are looked up in this module at call time,
so tests patch `lib.http.sleep` and `lib.http.jitter` and count calls without waiting.
"""
from __future__ import annotations

import os
import random
import re
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from collections.abc import Callable, Iterable, Mapping
from contextlib import AbstractContextManager
from typing import Protocol
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from lib import activity
from lib.errors import UserError

USER_AGENT = "clevertap-clearout-dashboard/1.0 (+python-requests)"

sleep: Callable[[float], None] = time.sleep
jitter: Callable[[], float] = random.random

# A server hint longer than this is clamped: waiting longer than a minute inside one call blocks
# the worker, and Clearout's rate-limit window is 60 s anyway.
MAX_HINT_SECONDS = 60.0

# Timeouts and connection failures, the exceptions a retry can cure.
TRANSIENT_ERRORS = (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError)


class ApiError(UserError):
    """A remote API call failed; `str()` says what to do. Carries HTTP status, API code, server text.

    Each client derives its own hierarchy from it (CleverTapError, ClearoutError), so callers catch
    one client's errors without catching the other's.
    """

    def __init__(self, message: str, *, status: int | None = None, code: int | None = None,
                 server_message: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.server_message = server_message


def should_retry(status: int | None, attempt: int, max_retries: int) -> bool:
    """True when a reply (or a timeout/connection error, `status=None`) deserves another attempt.

    Args:
        attempt: retries already made (0 before the first retry).
    """
    if attempt >= max_retries:
        return False
    return status is None or status == 429 or 500 <= status <= 599


def backoff_delay(attempt: int, *, base: float = 0.5, cap: float = 30.0,
                  jitter: Callable[[], float] = random.random) -> float:
    """Capped exponential delay before retry number `attempt + 1`, jittered into [half, full]."""
    ceiling = min(cap, base * (2 ** max(attempt, 0)))
    return float(ceiling * (0.5 + 0.5 * jitter()))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None and not isinstance(headers, requests.structures.CaseInsensitiveDict):
        lowered = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lowered), None)
    return None if value is None else str(value).strip()


def retry_after_seconds(headers: Mapping[str, str], *, now: Callable[[], float] = time.time) -> float | None:
    """The server's wait hint in seconds: Retry-After (seconds or HTTP date), else x-ratelimit-reset."""
    retry_after = _header(headers, "Retry-After")
    if retry_after:
        try:
            return max(0.0, float(retry_after))
        except ValueError:
            pass
        try:
            return max(0.0, parsedate_to_datetime(retry_after).timestamp() - now())
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    reset = _header(headers, "x-ratelimit-reset")
    if reset:
        try:
            seconds = float(reset)
        except ValueError:
            return None
        # Clearout documents seconds until the reset; a value this large can only be an epoch time.
        if seconds > 1e9:
            seconds -= now()
        return max(0.0, seconds)
    return None


def retry_delay(status: int | None, headers: Mapping[str, str] | None, attempt: int) -> float:
    """How long to wait before the next attempt: the server's hint wins on 429/503, else backoff."""
    if status in (429, 503) and headers is not None:
        hint = retry_after_seconds(headers)
        if hint is not None:
            return min(hint, MAX_HINT_SECONDS)
    return backoff_delay(attempt, jitter=jitter)


def was_not_sent(exc: BaseException) -> bool:
    """True when a request provably never reached the server (connect refused, DNS, connect timeout)."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    # requests wraps urllib3's failure: a MaxRetryError whose `reason` says what happened.
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))  # NameResolutionError is a NewConnectionError


class Gate(Protocol):
    """A shared rate budget (lib.ratelimit): a call happens inside `call()`, which waits out any
    announced window first, and its answer is reported so the next call knows."""

    def call(self) -> AbstractContextManager[Callable[[int | None, Mapping[str, str] | None], None]]: ...


# Words for the statuses a retry is about, so "HTTP 503" reads as what it means.
STATUS_WORDS = {429: "too many requests", 500: "server error", 502: "bad gateway", 503: "service unavailable",
                504: "gateway timeout"}


def failure_words(status: int | None, exc: BaseException | None = None) -> str:
    """`HTTP 503 (service unavailable)`, `timed out`, `connection failed`: what one attempt met."""
    if status is not None:
        return f"HTTP {status}" + (f" ({STATUS_WORDS[status]})" if status in STATUS_WORDS else "")
    return "timed out" if isinstance(exc, requests.Timeout) else "connection failed"


@dataclass
class Attempts:
    """What the attempts of one call met, in order (`failure_words`, "ok" for a final reply), filled in
    by `send_with_retries`; error messages say from it how often a call was tried."""
    outcomes: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def said(self) -> str:
        """`on its only attempt`, `on all 6 attempts over 14 s`, or `on 3 attempts (HTTP 503, HTTP 500, …)`."""
        count = len(self.outcomes)
        if count <= 1:
            return "on its only attempt (not retried)" if count else "before any attempt"
        took = time.monotonic() - self.started
        over = f" over {took:.0f} s" if took >= 1 else ""
        if len(set(self.outcomes)) == 1:
            return f"on all {count} attempts{over}"
        return f"on {count} attempts{over} ({', '.join(self.outcomes)})"


def send_with_retries(send: Callable[[], requests.Response], *, max_retries: int,
                      idempotent: bool = True, gate: Gate | None = None, api: str = "The API",
                      attempts: Attempts | None = None) -> requests.Response:
    """Call `send` until a reply is final or attempts run out; return the last reply.

    `send` must build a fresh request each time (a streamed body cannot be replayed).
    When `idempotent` is False, only failures that provably never reached the server are
    retried, because a timed-out upload may have been accepted (a duplicate costs credits).
    With a `gate`, every attempt goes through it: a wait the server announced is the gate's to
    keep (for every thread and process), so the loop itself only backs off from unhinted failures.
    Each retry is told to the work's activity reporter (lib.activity: `api` names the API), and each
    attempt's outcome is added to `attempts` when given.

    Raises:
        The last requests exception when every attempt failed without a reply.
    """
    attempts = attempts if attempts is not None else Attempts()
    attempt = 0
    while True:
        try:
            if gate is None:
                response = send()
            else:
                with gate.call() as report:
                    try:
                        response = send()
                    except TRANSIENT_ERRORS:
                        report(None, None)
                        raise
                    report(response.status_code, response.headers)
        except TRANSIENT_ERRORS as exc:
            attempts.outcomes.append(failure_words(None, exc))
            if not should_retry(None, attempt, max_retries) or not (idempotent or was_not_sent(exc)):
                raise
            delay = retry_delay(None, None, attempt)
        else:
            if not should_retry(response.status_code, attempt, max_retries):
                attempts.outcomes.append("ok" if response.status_code < 400 else failure_words(response.status_code))
                return response
            attempts.outcomes.append(failure_words(response.status_code))
            hinted = response.status_code in (429, 503) and retry_after_seconds(response.headers) is not None
            delay = 0.0 if gate is not None and hinted else retry_delay(response.status_code, response.headers,
                                                                        attempt)
            response.close()
        activity.retrying(api, attempt + 1, max_retries, attempts.outcomes[-1], delay)
        if delay:
            sleep(delay)
        attempt += 1


def make_session(*, headers: Mapping[str, str] | None = None, pool_maxsize: int = 16,
                 env_for_url: str | None = None) -> requests.Session:
    """A Session with our User-Agent and a connection pool big enough for parallel uploads.

    With `env_for_url`, proxy and CA-bundle settings are read from the environment once, for that
    URL, instead of on every request: requests spends ~0.5 ms per call re-reading them, a fifth of
    an upload batch's client time when 150 batches a second go out.
    """
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.headers.update(headers or {})
    if env_for_url is not None:
        session.proxies.update(requests.utils.get_environ_proxies(env_for_url))
        session.verify = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE") or True
        session.trust_env = False
    # Retries are ours (send_with_retries); urllib3's own would double them and ignore Retry-After.
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_maxsize, max_retries=0)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def host_of(url: str) -> str:
    """The host[:port] of a URL, without any user info, for messages."""
    parts = urlsplit(url)
    return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else url


def safe_text(text: object, *, secrets: Iterable[str | None] = (), limit: int = 300) -> str:
    """Server text fit for a message: one line, bounded, with any known secret masked.

    Messages are built from this and our own words only, never from headers or request bodies;
    masking is a second line of defence in case a server echoes a credential back.
    """
    line = re.sub(r"\s+", " ", str(text or "")).strip()
    for secret in secrets:
        if secret and len(secret) >= 4:
            line = line.replace(secret, "[redacted]")
    return line if len(line) <= limit else line[: limit - 1] + "…"
