"""CleverTap server API client (profiles, counts, upload, subscribe) and its error hierarchy.

Contract: /work/shared/reference/clevertap-api.md. Every call goes through `_request()`, which
retries 429/5xx/timeouts (lib.http) and turns failures, including HTTP 200 `"status":"fail"`
replies, into one exception hierarchy whose messages never carry the passcode.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any
from collections.abc import Callable, Iterator, Mapping
from urllib.parse import urlencode

import requests

from lib import activity, http


@dataclass(frozen=True)
class Region:
    code: str
    label: str
    host: str


# Europe has two documented hosts, api.clevertap.com [CAC] and eu1.api.clevertap.com (official Node
# SDK, newest GUP doc): we use eu1 so every region follows the one <region>.api pattern the SDK uses.
REGIONS: dict[str, Region] = {r.code: r for r in (
    Region("EU1", "Europe", "eu1.api.clevertap.com"),
    Region("IN1", "India", "in1.api.clevertap.com"),
    Region("US1", "United States", "us1.api.clevertap.com"),
    Region("SG1", "Singapore", "sg1.api.clevertap.com"),
    Region("APS3", "Indonesia", "aps3.api.clevertap.com"),
    Region("MEC1", "Middle East (UAE)", "mec1.api.clevertap.com"),
)}

MAX_UPLOAD_BATCH = 1000  # records per /1/upload or /1/subscribe call [UUP]
MAX_UPLOAD_CONCURRENCY = 15  # uploads in flight per account; above it CleverTap answers 429 [UUP]
MAX_READ_CONCURRENCY = 3  # UNCONFIRMED for /1/profile.json and profiles.json: the old global figure [ERR]
# CleverTap's concurrency limits are per API: which API a path belongs to, and each API's limit.
API_OF_PATH = {"/1/upload": "upload", "/1/subscribe": "subscribe", "/1/profile.json": "profile",
               "/1/profiles.json": "profiles", "/1/counts/profiles.json": "counts"}
API_CONCURRENCY = {"upload": MAX_UPLOAD_CONCURRENCY, "subscribe": MAX_UPLOAD_CONCURRENCY,
                   "profile": MAX_READ_CONCURRENCY, "profiles": MAX_READ_CONCURRENCY, "counts": MAX_READ_CONCURRENCY}
BATCH_BUCKETS = 23  # batch_size must be a multiple of 23 (CleverTap's storage buckets)
MAX_BATCH_SIZE = 5000 // BATCH_BUCKETS * BATCH_BUCKETS  # 4991
IN_PROGRESS_CODE = 2
SUBSCRIBE_STATUSES = ("Unsubscribe", "Resubscribe")

# "Request still in progress" is retried on the same cursor. Third-party scripts wait 15 s, but a
# page is usually ready within a second or two, so we start at 0.5 s and double up to 15 s: short
# waits for the common case, the scripts' 15 s for slow pages, and a bound on the total.
IN_PROGRESS_FIRST_WAIT = 0.5
IN_PROGRESS_MAX_WAIT = 15.0
IN_PROGRESS_TOTAL_WAIT = 600.0


class CleverTapError(http.ApiError):
    """A CleverTap call failed; the base of every CleverTap client error."""


class CleverTapAuthError(CleverTapError):
    """The project id or passcode was rejected (401/403)."""


class CleverTapWrongRegionError(CleverTapAuthError):
    """The credentials are valid, but in another region (`working_region`)."""

    def __init__(self, message: str, *, working_region: str | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.working_region = working_region


class CleverTapRateLimitError(CleverTapError):
    """Too many concurrent requests, still after retrying (429)."""


class CleverTapRequestError(CleverTapError):
    """CleverTap refused the request itself (other 4xx, or HTTP 200 with status fail)."""


class CleverTapServerError(CleverTapError):
    """CleverTap failed on its side (5xx), on every attempt made (the message says how many)."""


class CleverTapConnectionError(CleverTapError):
    """CleverTap could not be reached (network, DNS, proxy, timeout) after retrying."""


@dataclass(frozen=True)
class Profile:
    identity: str | None
    object_id: str | None
    email: str | None
    name: str | None
    msg_email: bool | None  # MSG-email: False = unsubscribed from email
    properties: dict[str, Any]
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class Unprocessed:
    record_index: int | None  # 0-based position in the records given to the call
    code: int | None
    error: str
    record: dict[str, Any] | None = field(default=None, repr=False)


@dataclass(frozen=True)
class BatchOutcome:
    index: int  # 0-based batch number within the call
    start: int  # position of the batch's first record within the call's records
    sent: int
    processed: int
    unprocessed: tuple[Unprocessed, ...]
    status: str  # success | partial | fail, as CleverTap said


def region_from_dashboard_url(url: str) -> str | None:
    """The region code of a dashboard URL ("https://in1.dashboard.clevertap.com/..." -> "IN1")."""
    text = url.strip()
    match = re.match(r"^(?:[a-z][a-z0-9+.-]*://)?([^/?#:@]+)", text, re.IGNORECASE)
    host = match.group(1).lower() if match else ""
    if not host.endswith("dashboard.clevertap.com"):
        return None
    prefix = host[: -len("dashboard.clevertap.com")].rstrip(".")
    if not prefix:
        return "EU1"  # the unprefixed dashboard belongs to the default region, as api.clevertap.com does
    code = prefix.split(".")[-1].upper()
    return code if code in REGIONS else None


def _yyyymmdd(value: date) -> int:
    return value.year * 10000 + value.month * 100 + value.day


def _query_body(event_name: str, from_date: date, to_date: date,
                filters: list[dict[str, Any]] | dict[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {"event_name": event_name, "from": _yyyymmdd(from_date), "to": _yyyymmdd(to_date)}
    if filters:
        body["common_profile_properties"] = {"profile_fields": filters}
    return body


def normalise_batch_size(batch_size: int) -> int:
    """A batch_size CleverTap accepts: a multiple of 23, at least 23 (below acts as unlimited), ≤ 5000."""
    if batch_size < 1:
        raise ValueError("batch_size must be positive")
    return max(BATCH_BUCKETS, min(MAX_BATCH_SIZE, batch_size // BATCH_BUCKETS * BATCH_BUCKETS))


def is_not_found(status: int, payload: Mapping[str, Any]) -> bool:
    """True when a profile.json reply means "no such profile".

    UNCONFIRMED: the reference has no sample of the not-found reply. We accept HTTP 404, a success
    without a record, or a fail whose text says not found; every other fail stays an error.
    """
    if status == 404:
        return True
    if status != 200:
        return False
    if payload.get("status") == "success":
        return not payload.get("record")
    text = str(payload.get("error") or payload.get("message") or "").lower()
    return payload.get("status") == "fail" and bool(
        re.search(r"not found|does not exist|no (such )?(profile|user|record)", text))


def _bool_or_none(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    return None


def profile_from_record(record: Mapping[str, Any]) -> Profile:
    data = record.get("profileData") or {}
    platforms = record.get("platformInfo") or []
    object_id = record.get("objectId") or next(
        (p.get("objectId") for p in platforms if isinstance(p, dict) and p.get("objectId")), None)
    identity = record.get("identity") or data.get("Identity") or data.get("identity")
    msg_email = record.get("MSG-email", data.get("MSG-email"))
    return Profile(
        identity=None if identity is None else str(identity),
        object_id=object_id,
        email=record.get("email") or data.get("Email") or data.get("email"),
        name=record.get("name") or data.get("Name") or data.get("name"),
        msg_email=_bool_or_none(msg_email),
        properties=dict(data),
        raw=dict(record),
    )


_RECORD_NUMBER = re.compile(r"record number\s*:\s*(\d+)", re.IGNORECASE)


def _record_position(item: Mapping[str, Any], count: int, batch: Callable[[], list[dict[str, Any]]]
                     ) -> int | None:
    """0-based position in the batch (`count` records, `batch()` to read them) of one `unprocessed`
    entry: the 1-based number in the error text when present, else the first record with the same
    identifier as the echo."""
    match = _RECORD_NUMBER.search(str(item.get("error") or ""))
    if match and 1 <= int(match.group(1)) <= count:
        return int(match.group(1)) - 1
    echo = item.get("record")
    if isinstance(echo, dict):
        for key in ("identity", "objectId", "value"):
            if echo.get(key) is not None:
                return next((i for i, r in enumerate(batch()) if r.get(key) == echo.get(key)), None)
    return None


def _encode(body: Any) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _check_status(status: str) -> None:
    if status not in SUBSCRIBE_STATUSES:
        raise ValueError(f"status must be one of {SUBSCRIBE_STATUSES}")


def _subscription_entries(emails: list[str], status: str) -> list[dict[str, Any]]:
    _check_status(status)
    return [{"type": "email", "value": e, "status": status} for e in emails]


def subscribe_body(emails: list[str], status: str) -> bytes:
    """The /1/subscribe body `subscribe_batch(emails, status)` sends, byte for byte, built without
    a dict per address (for callers that encode ahead of sending: `subscribe_encoded`)."""
    _check_status(status)
    quote = json.encoder.encode_basestring_ascii
    tail = ',"status":' + quote(status) + "}"
    return ('{"d":[' + ",".join(['{"type":"email","value":' + quote(e) + tail for e in emails]) + "]}").encode()


def _outcome(payload: Mapping[str, Any], count: int, batch: Callable[[], list[dict[str, Any]]], index: int,
             start: int) -> BatchOutcome:
    """What one upload or subscribe call did to its `count` records (`batch()` reads them back, only
    when an unprocessed entry must be matched by its echo)."""
    unprocessed = []
    records: list[dict[str, Any]] | None = None

    def read_batch() -> list[dict[str, Any]]:
        nonlocal records
        if records is None:
            records = batch()
        return records

    for item in payload.get("unprocessed") or []:
        if not isinstance(item, dict):
            continue
        position = _record_position(item, count, read_batch)
        code = item.get("code")
        unprocessed.append(Unprocessed(
            record_index=None if position is None else start + position,
            code=int(code) if isinstance(code, (int, str)) and str(code).isdigit() else None,
            error=str(item.get("error") or ""), record=item.get("record")))
    processed = payload.get("processed")
    if not isinstance(processed, int):
        processed = count - len(unprocessed)
    return BatchOutcome(index=index, start=start, sent=count, processed=processed,
                        unprocessed=tuple(unprocessed), status=str(payload.get("status") or ""))


class CleverTapClient:
    """One CleverTap project in one region. Use as a context manager or call `close()`."""

    def __init__(self, account_id: str, passcode: str, region: str, *, base_url: str | None = None,
                 timeout: float = 30.0, max_retries: int = 5,
                 gates: Callable[[str], http.Gate | None] | None = None) -> None:
        code = region.strip().upper()
        if code not in REGIONS:
            raise ValueError(f"Unknown CleverTap region {region!r}: choose one of {', '.join(REGIONS)}")
        self.account_id = account_id.strip()
        self._passcode = passcode.strip()
        self.region = code
        self._base_template = base_url.rstrip("/") if base_url else None
        self.base_url = self._base_for(code)
        self.timeout = timeout
        self.max_retries = max_retries
        # The account's concurrency budget per API (lib.ratelimit), shared by the whole app: an API
        # name from API_OF_PATH gives its gate.
        self._gates = gates
        self._session = http.make_session(
            headers={"X-CleverTap-Account-Id": self.account_id, "X-CleverTap-Passcode": self._passcode},
            pool_maxsize=MAX_UPLOAD_CONCURRENCY + 1, env_for_url=self.base_url)

    def __repr__(self) -> str:
        return (f"CleverTapClient(account_id={self.account_id!r}, passcode='***', "
                f"region={self.region!r}, base_url={self.base_url!r})")

    def __enter__(self) -> CleverTapClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    # -- plumbing -------------------------------------------------------------------------------

    def _base_for(self, code: str) -> str:
        if self._base_template is None:
            return f"https://{REGIONS[code].host}"
        return self._base_template.replace("{region}", code.lower())

    @property
    def _regions_have_own_base(self) -> bool:
        return self._base_template is None or "{region}" in self._base_template

    def _request(self, method: str, path: str, *, query: Mapping[str, Any] | str | None = None,
                 body: Any = None, data: bytes | None = None, base: str | None = None,
                 max_retries: int | None = None) -> dict[str, Any]:
        """Send one API call with retries; return the JSON reply or raise a CleverTapError.

        `query` may be a ready query string: cursors are sent byte for byte as received.
        `data` is an already encoded JSON body (uploads encode once, ahead of sending).
        """
        url = (base or self.base_url) + path
        if query:
            url += "?" + (query if isinstance(query, str) else urlencode(query))
        if body is not None:
            data = _encode(body)
        # CleverTap's newest docs say not to send Content-Type on GET.
        headers = {"Content-Type": "application/json"} if method == "POST" else None
        attempts = http.Attempts()
        try:
            response = http.send_with_retries(
                lambda: self._session.request(method, url, data=data, headers=headers, timeout=self.timeout),
                max_retries=self.max_retries if max_retries is None else max_retries,
                gate=self._gates(API_OF_PATH[path]) if self._gates is not None and path in API_OF_PATH else None,
                api="CleverTap", attempts=attempts)
        except requests.RequestException as exc:
            raise CleverTapConnectionError(
                f"Could not reach CleverTap at {http.host_of(url)} {attempts.said()}: check the network or proxy"
                + (" (the request timed out)" if isinstance(exc, requests.Timeout) else "")) from None
        return self._payload_or_raise(response, url, attempts)

    def _payload_or_raise(self, response: requests.Response, url: str,
                          attempts: http.Attempts | None = None) -> dict[str, Any]:
        status = response.status_code
        try:
            payload = json.loads(response.content) if response.content else {}
        except ValueError:
            payload = None
        if not isinstance(payload, dict):
            if status < 300:
                # Silently reading nothing would end an export early: a proxy page is not data.
                raise CleverTapServerError(
                    f"CleverTap at {http.host_of(url)} answered with something other than JSON: check "
                    "the network or proxy, then try again", status=status)
            payload = {}
        if status < 300 and payload.get("status") != "fail":
            return payload
        # An upload whose records all failed is an outcome (per-record errors), not a failure.
        if status < 300 and "unprocessed" in payload:
            return payload
        raise self._error_for(status, payload, url, response.text if not payload else "", attempts)

    def _error_for(self, status: int, payload: Mapping[str, Any], url: str, text: str,
                   attempts: http.Attempts | None = None) -> CleverTapError:
        """The one mapping from an HTTP status and reply body to an exception."""
        server = http.safe_text(payload.get("error") or payload.get("message") or text,
                                secrets=(self._passcode,))
        raw_code = payload.get("code")
        code = int(raw_code) if isinstance(raw_code, (int, str)) and str(raw_code).isdigit() else None
        said = f" (CleverTap said: {server})" if server else ""
        fields: dict[str, Any] = {"status": status, "code": code, "server_message": server or None}
        if status in (401, 403) or code in (401, 403):
            return CleverTapAuthError(
                f"CleverTap rejected project id {self.account_id} or its passcode in region "
                f"{self.region}: check both in the dashboard under Settings → Projects{said}", **fields)
        if status == 429:
            return CleverTapRateLimitError(
                "CleverTap says too many requests are running for this project: wait a minute and "
                f"try again, or stop other tools using the API{said}", **fields)
        if status >= 500:
            tried = f" {attempts.said()}" if attempts is not None else ""
            return CleverTapServerError(
                f"CleverTap at {http.host_of(url)} answered {http.failure_words(status)}{tried}: try again "
                f"later{said}", **fields)
        return CleverTapRequestError(f"CleverTap refused the request{said or f' (HTTP {status})'}", **fields)

    # -- credentials ----------------------------------------------------------------------------

    def check_credentials(self) -> None:
        """Make one cheap call; raise if the project id, passcode or region is wrong.

        Raises:
            CleverTapWrongRegionError: the credentials work in another region (it is named).
            CleverTapAuthError: no passcode or project id (nothing is sent), or rejected everywhere we
                could ask.
            CleverTapConnectionError: CleverTap could not be reached.
        """
        if not self._passcode or not self.account_id:
            # A 401 for a missing secret would send us probing the other five regions, and the
            # message would blame the region or the credentials instead of the empty field.
            raise CleverTapAuthError(f"No passcode {'or project id ' if not self.account_id else ''}was given: "
                                     "enter it (CleverTap dashboard → Settings → Passcode)")
        try:
            self._probe(self.base_url, max_retries=None)
        except CleverTapAuthError as exc:
            if exc.status != 401 or not self._regions_have_own_base:
                raise
            working = self._find_working_region()
            if working is None:
                raise
            raise CleverTapWrongRegionError(
                f"CleverTap project {self.account_id} belongs to region {working} "
                f"({REGIONS[working].label}), not {self.region} ({REGIONS[self.region].label}): "
                f"choose {working} and connect again", working_region=working,
                status=exc.status, code=exc.code, server_message=exc.server_message) from None

    def _probe(self, base: str, *, max_retries: int | None) -> None:
        # An identity no real profile has: "not found" proves the credentials work, at the cost of one read.
        query = {"identity": "__credentials-check__"}
        try:
            self._request("GET", "/1/profile.json", query=query, base=base, max_retries=max_retries)
        except CleverTapRequestError as exc:
            if not is_not_found(exc.status or 0, {"status": "fail", "error": exc.server_message or ""}):
                raise

    def _find_working_region(self) -> str | None:
        for code in REGIONS:
            if code == self.region:
                continue
            try:
                # One attempt each: this is a hint for the message, not worth minutes of retries.
                self._probe(self._base_for(code), max_retries=0)
            except CleverTapError:
                continue
            return code
        return None

    # -- reading profiles -----------------------------------------------------------------------

    def get_profile(self, *, email: str | None = None, identity: str | None = None,
                    object_id: str | None = None) -> Profile | None:
        """One profile by exactly one key, or None when CleverTap has no such profile."""
        keys = {"email": email, "identity": identity, "objectId": object_id}
        given = {k: v for k, v in keys.items() if v is not None}
        if len(given) != 1:
            raise ValueError("get_profile takes exactly one of email, identity or object_id")
        try:
            payload = self._request("GET", "/1/profile.json", query=given)
        except CleverTapRequestError as exc:
            if is_not_found(exc.status or 0, {"status": "fail", "error": exc.server_message or ""}):
                return None
            raise
        if is_not_found(200, payload):
            return None
        return profile_from_record(payload["record"])

    def iter_profiles(self, event_name: str, from_date: date, to_date: date, *,
                      filters: list[dict[str, Any]] | dict[str, Any] | None = None,
                      batch_size: int = MAX_BATCH_SIZE) -> Iterator[list[dict[str, Any]]]:
        """Lazily yield pages (lists of raw record dicts) of the profiles matching a query.

        Nothing is sent until the first page is requested. Empty pages are skipped.
        """
        size = normalise_batch_size(batch_size)
        payload = self._request("POST", "/1/profiles.json", query={"batch_size": size},
                                body=_query_body(event_name, from_date, to_date, filters))
        cursor = payload.get("cursor")
        records = payload.get("records")
        if records:
            yield records
        while cursor:
            payload = self._page(cursor)
            if payload.get("records"):
                yield payload["records"]
            cursor = payload.get("next_cursor")

    def _page(self, cursor: str) -> dict[str, Any]:
        """One cursor page; "Request still in progress" is retried on the same cursor."""
        waited, attempt = 0.0, 0
        while True:
            try:
                # The cursor is already percent-encoded: re-encoding it gives "Incorrect Usage".
                return self._request("GET", "/1/profiles.json", query="cursor=" + cursor)
            except CleverTapRequestError as exc:
                if exc.code != IN_PROGRESS_CODE or waited >= IN_PROGRESS_TOTAL_WAIT:
                    raise
            delay = min(IN_PROGRESS_MAX_WAIT, IN_PROGRESS_FIRST_WAIT * 2 ** attempt)
            activity.waiting("CleverTap", delay, "next page (it is still preparing it)")
            http.sleep(delay)
            waited += delay
            attempt += 1

    def count_profiles(self, event_name: str, from_date: date, to_date: date, *,
                       filters: list[dict[str, Any]] | dict[str, Any] | None = None,
                       poll_interval: float = 1.0, max_wait: float = 300.0) -> int:
        """The number of profiles a query matches, polling while CleverTap computes it."""
        payload = self._request("POST", "/1/counts/profiles.json",
                                body=_query_body(event_name, from_date, to_date, filters))
        waited = 0.0
        while "count" not in payload or payload.get("status") == "partial":
            req_id = payload.get("req_id")
            if req_id is None:
                raise CleverTapServerError("CleverTap answered the count without a count or request id: "
                                           "try again later", status=200)
            if waited >= max_wait:
                raise CleverTapServerError(
                    f"CleverTap did not finish counting within {max_wait:.0f} s: try again later", status=200)
            activity.waiting("CleverTap", poll_interval, "count (it is still counting)")
            http.sleep(poll_interval)
            waited += poll_interval
            payload = self._request("GET", "/1/counts/profiles.json", query={"req_id": req_id})
        return int(payload["count"])

    # -- writing profiles -----------------------------------------------------------------------

    def upload_batch(self, records: list[dict[str, Any]], *, index: int = 0, start: int = 0) -> BatchOutcome:
        """Upload ≤1000 profile records in one call; per-record failures are in the outcome."""
        if len(records) > MAX_UPLOAD_BATCH:
            raise ValueError(f"At most {MAX_UPLOAD_BATCH} records per upload call")
        return self._post_batch("/1/upload", _encode({"d": records}), records, index, start)

    def upload_encoded(self, body: bytes, count: int, *, index: int = 0, start: int = 0) -> BatchOutcome:
        """`upload_batch` for records already encoded as a `{"d": [...]}` body of `count` records
        (lib.export_plan.upload_body): the apply runner encodes ahead, off the sending threads."""
        if count > MAX_UPLOAD_BATCH:
            raise ValueError(f"At most {MAX_UPLOAD_BATCH} records per upload call")
        return self._post_encoded("/1/upload", body, count, index, start)


    def subscribe_batch(self, emails: list[str], status: str, *, index: int = 0, start: int = 0) -> BatchOutcome:
        """Set ≤1000 addresses to Unsubscribe or Resubscribe (address level: every profile sharing it)."""
        if len(emails) > MAX_UPLOAD_BATCH:
            raise ValueError(f"At most {MAX_UPLOAD_BATCH} addresses per subscribe call")
        entries = _subscription_entries(emails, status)
        return self._post_batch("/1/subscribe", _encode({"d": entries}), entries, index, start)

    def subscribe_encoded(self, body: bytes, count: int, *, index: int = 0, start: int = 0) -> BatchOutcome:
        """`subscribe_batch` for a body built by `subscribe_body` with `count` addresses."""
        if count > MAX_UPLOAD_BATCH:
            raise ValueError(f"At most {MAX_UPLOAD_BATCH} addresses per subscribe call")
        return self._post_encoded("/1/subscribe", body, count, index, start)


    def _post_batch(self, path: str, body: bytes, entries: list[dict[str, Any]], index: int,
                    start: int) -> BatchOutcome:
        # UNCONFIRMED for /1/subscribe: its reply shape; we read it as the upload reply (status,
        # processed, unprocessed), which is what third-party clients assume.
        payload = self._request("POST", path, data=body)
        return _outcome(payload, len(entries), lambda: entries, index, start)

    def _post_encoded(self, path: str, body: bytes, count: int, index: int, start: int) -> BatchOutcome:
        payload = self._request("POST", path, data=body)
        return _outcome(payload, count, lambda: json.loads(body)["d"], index, start)
