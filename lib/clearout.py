"""Clearout email-verifier API client (credits, instant and bulk verify) and its error hierarchy.

Contract: /work/shared/reference/clearout-api.md. Every call goes through `_request()`, which
retries 429/5xx/timeouts (lib.http, waiting `x-ratelimit-reset` on 429) and checks the
success/failed envelope on every reply, HTTP 200 included.
"""
from __future__ import annotations

import csv
import json
import os
import re
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from collections.abc import Callable, Iterable, Iterator, Mapping

import pandas as pd
import requests

from lib import http
from lib.columns import ClearoutColumnsError, conform_clearout_columns, verdict_from_api
from lib.emails import normalise_emails

DEFAULT_BASE_URL = "https://api.clearout.io/v2"
MAX_RUNNING_LISTS = 3  # bulk lists Clearout verifies at once per account; the next upload gets 1001
MAX_INSTANT_TIMEOUT_MS = 180_000
EMAIL_HEADERS = ("email", "emails", "emailaddress")  # compared with spaces removed, lower-cased
CHUNK_BYTES = 64 * 1024


class ClearoutError(http.ApiError):
    """A Clearout call failed; the base of every Clearout client error."""


class ClearoutAuthError(ClearoutError):
    """The API token was rejected (1000, 401) or the call's origin is not allowed (1074)."""


class ClearoutConcurrencyError(ClearoutError):
    """Clearout already verifies the maximum number of lists at once (1001)."""


class ClearoutCreditsError(ClearoutError):
    """Not enough credits (1002, 1028, 1031); `needed`/`available` when Clearout said them."""

    def __init__(self, message: str, *, needed: int | None = None, available: int | None = None,
                 **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.needed = needed
        self.available = available


class ClearoutDailyLimitError(ClearoutError):
    """The account's daily verification limit is reached (1017, 1032)."""


class ClearoutRateLimitError(ClearoutError):
    """Too many requests per minute, still after waiting for the window to reset (429, 1030)."""


class ClearoutRequestError(ClearoutError):
    """Clearout refused the request itself (400 and other 4xx codes)."""


class ClearoutNoEmailColumnError(ClearoutRequestError):
    """The uploaded file has no Email column (1004)."""


class ClearoutResultExpiredError(ClearoutRequestError):
    """The list's result file has expired (1007)."""


class ClearoutListUnavailableError(ClearoutRequestError):
    """The list does not exist, or belongs to someone else (1008, 1029)."""


class ClearoutNotCancellableError(ClearoutRequestError):
    """The list is not in a stage that can be cancelled (1116)."""


class ClearoutServerError(ClearoutError):
    """Clearout failed on its side (5xx), on every attempt made (the message says how many)."""


class ClearoutConnectionError(ClearoutError):
    """Clearout could not be reached (network, DNS, proxy, timeout) after retrying."""


# Every documented code, in one table: code -> (exception, what to tell the user).
CODE_ERRORS: dict[int, tuple[type[ClearoutError], str]] = {
    1000: (ClearoutAuthError, "Clearout rejected the API token: generate a new one at app.clearout.io → Developer"),
    1001: (ClearoutConcurrencyError, "Clearout is already verifying 3 lists for this account: "
                                     "wait for one to finish (or cancel one), then try again"),
    1002: (ClearoutCreditsError, "Clearout credits are exhausted: buy credits at clearout.io"),
    1004: (ClearoutNoEmailColumnError, "Clearout found no email column in the file: name the column "
                                       "Email, Emails, Email address or Emailaddress"),
    1007: (ClearoutResultExpiredError, "The Clearout result for this list has expired (results are kept "
                                       "30 days): verify the list again"),
    1008: (ClearoutListUnavailableError, "This Clearout token is not authorised for this list: use the "
                                         "token of the account that uploaded it"),
    1017: (ClearoutDailyLimitError, "The Clearout daily verification limit is reached: try again "
                                    "tomorrow or raise the limit at app.clearout.io"),
    1027: (ClearoutRequestError, "Clearout did not find that email address"),
    1028: (ClearoutCreditsError, "Not enough Clearout credits for this list: buy credits at clearout.io "
                                 "or verify fewer addresses"),
    1029: (ClearoutListUnavailableError, "Clearout no longer has this list (removed or never uploaded): "
                                         "upload it again"),
    1030: (ClearoutRateLimitError, "Clearout's per-minute request limit is reached: wait a minute and "
                                   "try again, or upgrade the plan"),
    1031: (ClearoutCreditsError, "Clearout credits are exhausted: buy credits at clearout.io"),
    1032: (ClearoutDailyLimitError, "The Clearout daily verification limit is reached: try again "
                                    "tomorrow or raise the limit at app.clearout.io"),
    1074: (ClearoutAuthError, "Clearout refused calls from this origin: check the token's allowed "
                              "origins at app.clearout.io → Developer"),
    1116: (ClearoutNotCancellableError, "This Clearout list can no longer be cancelled (it is finished "
                                        "or not started)"),
}
STATUS_ERRORS: dict[int, tuple[type[ClearoutError], str]] = {
    401: CODE_ERRORS[1000],
    402: CODE_ERRORS[1002],
    403: (ClearoutAuthError, "Clearout refused access with this token: check it at app.clearout.io → Developer"),
    415: (ClearoutRequestError, "Clearout refused the request's content type"),
    429: CODE_ERRORS[1030],
}


@dataclass(frozen=True)
class Credits:
    available: int
    total: int | None
    daily_limit_available: int | None  # None = no daily limit on the plan
    daily_limit_resets_at: str | None  # ISO 8601, as Clearout sent it
    low_balance_threshold: int | None


@dataclass(frozen=True)
class InstantVerdict:
    email: str
    columns: dict[str, Any]  # the 15 Clearout display columns (lib.columns)
    raw: dict[str, Any] = field(repr=False)


@dataclass(frozen=True)
class BulkProgress:
    status: str
    percent: float
    completed: bool


@dataclass(frozen=True)
class ListInfo:
    list_id: str
    name: str | None
    source: str | None
    created_on: str | None


def _mapping(value: Any) -> Mapping[str, Any]:
    """A JSON object from a reply, or an empty one when the reply has something else there."""
    return value if isinstance(value, dict) else {}


def _as_int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None
    except (TypeError, ValueError):
        return None


def _render_reasons(reasons: Any) -> str:
    """A 400 `reasons` list as text: "email: "email" is required; ..."."""
    parts = []
    for reason in reasons if isinstance(reasons, list) else []:
        if not isinstance(reason, dict):
            continue
        fields = ", ".join(str(f) for f in reason.get("field") or [])
        messages = "; ".join(str(m) for m in reason.get("messages") or [])
        parts.append(f"{fields}: {messages}" if fields else messages)
    return "; ".join(p for p in parts if p)


class MultipartFile:
    """A multipart/form-data body that streams one file from disk: iterable, with a known length.

    requests builds `files=` bodies in memory; this one is read in 64 KiB chunks while sending,
    and its length is known up front so the request carries Content-Length (not chunked).
    """

    def __init__(self, path: Path, *, field_name: str, filename: str, content_type: str,
                 fields: Mapping[str, str] | None = None) -> None:
        self.path = path
        self.boundary = uuid.uuid4().hex
        safe_name = re.sub(r'["\r\n]', "_", filename)
        head = "".join(
            f'--{self.boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
            for name, value in (fields or {}).items())
        head += (f'--{self.boundary}\r\nContent-Disposition: form-data; name="{field_name}"; '
                 f'filename="{safe_name}"\r\nContent-Type: {content_type}\r\n\r\n')
        self._head = head.encode()
        self._tail = f"\r\n--{self.boundary}--\r\n".encode()
        self._length = len(self._head) + path.stat().st_size + len(self._tail)

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self._length

    def __iter__(self) -> Iterator[bytes]:
        yield self._head
        with self.path.open("rb") as file:
            while chunk := file.read(CHUNK_BYTES):
                yield chunk
        yield self._tail


FILE_EXTENSIONS = (".csv", ".xlsx")  # what Clearout's bulk endpoint takes, by the file name's extension


def upload_filename(name: str, extension: str) -> str:
    """`name` as Clearout must see it: with a file extension, the file's own when it has none."""
    return name if name.lower().endswith(FILE_EXTENSIONS) else f"{name}{extension.lower() or '.csv'}"


def write_email_csv(emails: Iterable[str], path: Path) -> int:
    """Write addresses to a CSV with the header `Email`, one per row; return the row count."""
    count = 0
    with path.open("w", newline="", encoding="utf-8") as file:
        writer = csv.writer(file)
        writer.writerow(["Email"])
        for email in emails:
            writer.writerow([email])
            count += 1
    return count


class ClearoutClient:
    """One Clearout account (API token). Use as a context manager or call `close()`."""

    def __init__(self, api_token: str, *, base_url: str | None = None, timeout: float = 60.0,
                 max_retries: int = 5, gate: http.Gate | None = None) -> None:
        self._token = api_token.strip()
        self.base_url = (base_url or DEFAULT_BASE_URL).rstrip("/")
        self.timeout = timeout
        self.max_retries = max_retries
        self._gate = gate  # the token's rate budget, shared by the whole app (lib.ratelimit)
        # The reference records three forms (raw token, "Bearer:<t>", "Bearer <t>");
        # "Bearer <t>" is the one the current docs and the OpenAPI spec describe.
        self._session = http.make_session(headers={"Authorization": f"Bearer {self._token}"})
        # Result links are pre-signed S3 URLs: the signature is in the query string, S3 rejects a
        # second auth mechanism (our Authorization header), and the token must not go to S3 anyway.
        self._bare_session = http.make_session()

    def __repr__(self) -> str:
        return f"ClearoutClient(api_token='***', base_url={self.base_url!r})"

    def __enter__(self) -> ClearoutClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()
        self._bare_session.close()

    # -- plumbing -------------------------------------------------------------------------------

    def _send(self, session: requests.Session, method: str, url: str, *, idempotent: bool = True,
              timeout: float | None = None, body_factory: Callable[[], dict[str, Any]] | None = None,
              attempts: http.Attempts | None = None, **kwargs: Any) -> requests.Response:
        """One call with retries; requests' failures become ClearoutConnectionError.

        `body_factory` returns fresh request arguments (a streamed body) for every attempt; `attempts`
        collects what each attempt met (for the error message).
        """
        attempts = attempts if attempts is not None else http.Attempts()
        def send() -> requests.Response:
            extra = body_factory() if body_factory is not None else {}
            return session.request(method, url, timeout=timeout or self.timeout, **kwargs, **extra)

        # Result files come from S3, outside Clearout's API and its rate limit: no gate for them.
        gate = self._gate if session is self._session else None
        try:
            return http.send_with_retries(send, max_retries=self.max_retries, idempotent=idempotent, gate=gate,
                                          api="Clearout", attempts=attempts)
        except requests.RequestException as exc:
            raise ClearoutConnectionError(
                f"Could not reach Clearout at {http.host_of(url)} {attempts.said()}: check the network or proxy"
                + (" (the request timed out)" if isinstance(exc, requests.Timeout) else "")) from None

    def _request(self, method: str, path: str, *, json_body: Any = None, params: Mapping[str, Any] | None = None,
                 idempotent: bool = True, timeout: float | None = None,
                 body_factory: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
        """Send one API call; return the envelope's `data` or raise a ClearoutError."""
        kwargs: dict[str, Any] = {"params": params}
        if json_body is not None:
            kwargs["data"] = json.dumps(json_body).encode()
            kwargs["headers"] = {"Content-Type": "application/json"}
        attempts = http.Attempts()
        response = self._send(self._session, method, self.base_url + path, idempotent=idempotent,
                              timeout=timeout, body_factory=body_factory, attempts=attempts, **kwargs)
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if isinstance(payload, dict) and payload.get("status") == "success" and response.status_code < 300:
            data = payload.get("data")
            return data if isinstance(data, dict) else {}
        if not isinstance(payload, dict) and response.status_code < 300:
            raise ClearoutServerError(
                f"Clearout at {http.host_of(self.base_url)} answered with something other than JSON: check "
                "the network or proxy, then try again", status=response.status_code)
        raise self._error_for(response.status_code, payload if isinstance(payload, dict) else {},
                              response.text if payload is None else "", attempts)

    def _error_for(self, status: int, payload: Mapping[str, Any], text: str,
                   attempts: http.Attempts | None = None) -> ClearoutError:
        """The one mapping from an HTTP status and envelope to an exception."""
        error = _mapping(payload.get("error"))
        code = _as_int(error.get("code"))
        server = http.safe_text(error.get("message") or payload.get("message") or text, secrets=(self._token,))
        reasons = http.safe_text(_render_reasons(error.get("reasons")), secrets=(self._token,))
        fields: dict[str, Any] = {"status": status, "code": code, "server_message": server or None}
        said = f" (Clearout said: {server})" if server else ""
        if code in CODE_ERRORS or (code is None and status in STATUS_ERRORS):
            cls, advice = CODE_ERRORS[code] if code in CODE_ERRORS else STATUS_ERRORS[status]
            if cls is ClearoutCreditsError:
                fields.update(self._credit_figures(error, server))
                if fields.get("needed") is not None:
                    advice += f" (needed {fields['needed']}"
                    advice += f", available {fields['available']})" if fields.get("available") is not None else ")"
            return cls(advice + said, **fields)
        if reasons:
            return ClearoutRequestError(f"Clearout refused the request: {reasons}", **fields)
        if status >= 500:
            tried = f" {attempts.said()}" if attempts is not None else ""
            return ClearoutServerError(f"Clearout answered {http.failure_words(status)}{tried}: try again later{said}",
                                       **fields)
        if code is not None:
            return ClearoutRequestError(f"Clearout refused the request (code {code}){said}", **fields)
        return ClearoutRequestError(f"Clearout refused the request (HTTP {status}){said}", **fields)

    @staticmethod
    def _credit_figures(error: Mapping[str, Any], server: str) -> dict[str, int | None]:
        info = _mapping(error.get("additional_info"))
        merged = {**info, **error}
        needed = next((_as_int(merged[k]) for k in ("required_credits", "needed_credits", "required", "needed")
                       if k in merged), None)
        available = next((_as_int(merged[k]) for k in ("available_credits", "available") if k in merged), None)
        if needed is None:
            # 1028 reads "available credits are insufficient to verify N emails".
            match = re.search(r"verify\s+(\d+)", server)
            needed = int(match.group(1)) if match else None
        return {"needed": needed, "available": available}

    # -- account --------------------------------------------------------------------------------

    def get_credits(self) -> Credits:
        """The account's credit balance (and daily limit, when the plan has one)."""
        data = self._request("GET", "/email_verify/getcredits")
        credits = _mapping(data.get("credits"))
        return Credits(
            available=_as_int(credits.get("available", data.get("available_credits"))) or 0,
            total=_as_int(credits.get("total")),
            daily_limit_available=_as_int(credits.get("available_daily_verify_limit")),
            daily_limit_resets_at=credits.get("reset_daily_verify_limit_date"),
            low_balance_threshold=_as_int(data.get("low_credit_balance_min_threshold")))

    # -- instant --------------------------------------------------------------------------------

    def verify_instant(self, email: str, *, timeout_ms: int = 130_000) -> InstantVerdict:
        """Verify one address now (1 credit unless unknown); the 15 display columns plus the raw data."""
        if not 0 < timeout_ms <= MAX_INSTANT_TIMEOUT_MS:
            raise ValueError(f"timeout_ms must be between 1 and {MAX_INSTANT_TIMEOUT_MS}")
        # Our read timeout must outlast Clearout's own, or we would abandon answers it still sends.
        data = self._request("POST", "/email_verify/instant", json_body={"email": email, "timeout": timeout_ms},
                             timeout=max(self.timeout, timeout_ms / 1000 + 10))
        return InstantVerdict(email=str(data.get("email_address") or email), columns=verdict_from_api(data),
                              raw=data)

    # -- bulk -----------------------------------------------------------------------------------

    def bulk_upload(self, rows_or_path: Iterable[str] | str | os.PathLike[str], name: str, *,
                    ignore_duplicate_file: bool = False) -> str:
        """Upload a list for bulk verification; return Clearout's list id.

        Args:
            rows_or_path: a CSV/XLSX file path, or an iterable of addresses (written to a temporary
                CSV with the header `Email`; the body is streamed from disk either way).
            name: the file name Clearout shows; without an extension it gets the file's own (".csv"
                for a list of addresses): Clearout refuses a name without one ("Invalid file format").
        """
        if isinstance(rows_or_path, (str, os.PathLike)):
            path = Path(rows_or_path)
            return self._upload_file(path, upload_filename(name, path.suffix), ignore_duplicate_file)
        filename = upload_filename(name, ".csv")
        handle, temp = tempfile.mkstemp(prefix="clearout-upload-", suffix=".csv")
        os.close(handle)
        try:
            write_email_csv(rows_or_path, Path(temp))
            return self._upload_file(Path(temp), filename, ignore_duplicate_file)
        finally:
            os.unlink(temp)

    def _upload_file(self, path: Path, filename: str, ignore_duplicate_file: bool) -> str:
        content_type = ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
                        if path.suffix.lower() == ".xlsx" else "text/csv")

        def body() -> dict[str, Any]:
            # A fresh body per attempt: a consumed stream cannot be replayed.
            multipart = MultipartFile(path, field_name="file", filename=filename, content_type=content_type,
                                      fields={"ignore_duplicate_file": "true" if ignore_duplicate_file else "false"})
            return {"data": multipart, "headers": {"Content-Type": multipart.content_type}}

        # Not idempotent: an upload that timed out may have been accepted, and a second list costs credits.
        data = self._request("POST", "/email_verify/bulk", body_factory=body, idempotent=False)
        list_id = data.get("list_id")
        if not list_id:
            raise ClearoutServerError("Clearout accepted the file but returned no list id: check "
                                      "app.clearout.io before uploading again", status=200)
        return str(list_id)

    def bulk_progress(self, list_id: str) -> BulkProgress:
        """How far a bulk list is; only "completed" means done (other status words are UNCONFIRMED)."""
        data = self._request("GET", "/email_verify/bulk/progress_status", params={"list_id": list_id})
        status = str(data.get("progress_status") or "")
        try:
            percent = float(data.get("percentile") or 0)
        except (TypeError, ValueError):
            percent = 0.0
        return BulkProgress(status=status, percent=percent, completed=status == "completed")

    def download_result(self, list_id: str) -> pd.DataFrame:
        """A completed list's result: `email` (normalised, unique) plus the 15 Clearout columns.

        Raises:
            ClearoutColumnsError: the result file lacks a declared Clearout column.
        """
        handle, temp = tempfile.mkstemp(prefix="clearout-result-", suffix=".csv")
        os.close(handle)
        try:
            # A link can die before we use it (it expires in minutes); a fresh one is one call away.
            for _ in range(2):
                data = self._request("POST", "/download/result", json_body={"list_id": list_id})
                if not data.get("url"):
                    raise ClearoutServerError("Clearout returned no download link for the result: try again",
                                              status=200)
                refused = self._fetch(str(data["url"]), Path(temp))
                if refused is None:
                    return result_frame(temp)
            raise ClearoutRequestError(
                f"Clearout's result link was refused (HTTP {refused}) twice: try the download again in a minute",
                status=refused)
        finally:
            os.unlink(temp)

    def _fetch(self, url: str, target: Path) -> int | None:
        """Stream a result link to `target`; return the HTTP status if the link was refused."""
        response = self._send(self._bare_session, "GET", url, stream=True)
        with response:
            if response.status_code in (401, 403, 404, 410):
                return response.status_code
            if response.status_code >= 400:
                raise ClearoutServerError(
                    f"Could not download the Clearout result (HTTP {response.status_code}): try again later",
                    status=response.status_code)
            try:
                with target.open("wb") as file:
                    for chunk in response.iter_content(CHUNK_BYTES):
                        file.write(chunk)
            except requests.RequestException:
                raise ClearoutConnectionError(
                    f"The download from {http.host_of(url)} broke off: check the network and try again") from None
        return None

    def cancel(self, list_id: str) -> ListInfo:
        """Stop verifying a running list; unverified rows become Unknown and are free."""
        return _list_info(list_id, self._request("POST", "/email_verify/list/cancel", json_body={"list_id": list_id}))

    def remove(self, list_id: str, *, ignore_result: bool = False) -> ListInfo:
        """Delete a list (not while it is being verified)."""
        data = self._request("POST", "/email_verify/list/remove",
                             json_body={"list_id": list_id, "ignore_result": ignore_result})
        return _list_info(list_id, data)


def _list_info(list_id: str, data: Mapping[str, Any]) -> ListInfo:
    return ListInfo(list_id=str(data.get("list_id") or list_id), name=data.get("name"),
                    source=data.get("source"), created_on=data.get("created_on"))


def result_frame(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Parse a Clearout result CSV into `email` plus the 15 conformed Clearout columns.

    Rows without an address are dropped and duplicate addresses collapsed (first row wins).
    """
    # pyarrow's parser is the fast path (~0.1 s per 1M rows); the default dtype backend keeps the
    # columns in the pandas string dtypes lib.columns declares, not ArrowDtype look-alikes.
    raw = pd.read_csv(path, engine="pyarrow")
    email_column = next((c for c in raw.columns if "".join(str(c).split()).lower() in EMAIL_HEADERS), None)
    if email_column is None:
        raise ClearoutColumnsError("The Clearout result file has no Email column")
    frame = conform_clearout_columns(raw)
    frame.insert(0, "email", normalise_emails(raw[email_column]))
    frame = frame[frame["email"].notna()].drop_duplicates(subset="email", keep="first")
    return frame.reset_index(drop=True)
