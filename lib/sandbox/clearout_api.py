"""Clearout's Email Verifier API v2 as the sandbox serves it: credits, instant verify, bulk lists.

Auth, the per-minute limiter, latency and faults are applied by the server before these handlers.
Where the reference marks a point UNCONFIRMED, the choice is a named constant here.
"""
from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from lib.sandbox import verdicts
from lib.sandbox.bulk import (MAX_RUNNING, RUNNING, BulkList, BulkRegistry, ScanError, iso, scan_csv)
from lib.sandbox.credits import CreditLedger
from lib.sandbox.limits import Counters
from lib.sandbox.multipart import MultipartError, boundary_of, read_form
from lib.sandbox.wire import BadRequestBody, Request, Response, json_response

MAX_TIMEOUT_MS = 180_000
DEFAULT_TIMEOUT_MS = 130_000
OPTIMIZE_VALUES = ("highest_accuracy", "fastest_turnaround")
FILE_FORMATS = (".csv", ".xlsx")  # what Clearout accepts (its 400 for anything else names both)
LOW_CREDIT_THRESHOLD = 50

MESSAGES = {
    1000: "Invalid API Token, please generate new token",
    # UNCONFIRMED wording of 1001 / 1004 / 1028 (codes and meanings documented).
    1001: "You have reached the maximum number of bulk verify requests running, please try after "
          "the running ones complete",
    1002: "You have exhausted your credits, please add additional credits to continue",
    1004: "Email column not found, the file header must be one of Email, Emails, Email address "
          "or Emailaddress",
    1007: "Result file got expired, contact us@clearout.io",
    1028: "Available credits are insufficient to verify {count} emails",
    1029: "List is not available",
    1116: "List is not in the cancellable stage",
}
# UNCONFIRMED: the error for a repeated upload (same name and size) without ignore_duplicate_file.
DUPLICATE_FILE = (1005, ("Duplicate file: a file with the same name and size was uploaded recently, "
                         "set ignore_duplicate_file to 'true' to verify it again"))
# UNCONFIRMED: removing a list that is still being verified (documented as not allowed).
REMOVE_RUNNING = (1116, "List is not in the removable stage, it is still being verified")
INVALID_FORMAT = "Invalid file format, support file formats - ['csv', 'xlsx']"
# Not Clearout's behaviour: the app uploads CSV only, so the sandbox has no spreadsheet reader.
CSV_ONLY = "The sandbox reads CSV files only; convert the .xlsx file to CSV before uploading it"


def failed(http_status: int, code: int, message: str | None = None, **fmt: Any) -> Response:
    text = message if message is not None else MESSAGES[code].format(**fmt)
    return json_response(http_status, {"status": "failed", "error": {"code": code, "message": text}})


def validation_failed(field: str, message: str, kind: str) -> Response:
    """Clearout's 400 for a bad parameter: no code, a list of reasons."""
    reason = {"field": [field], "location": "body", "messages": [message], "types": [kind]}
    return json_response(400, {"status": "failed",
                               "error": {"message": "validation failed", "reasons": [reason]}})


def _bad_body() -> Response:
    return json_response(400, {"status": "failed", "error": {"message": "Invalid JSON payload"}})


def _json_object(req: Request) -> dict[str, Any] | Response:
    """The request's JSON object body, or the 400 answer for anything else."""
    try:
        body = req.json()
    except BadRequestBody:
        return _bad_body()
    return body if isinstance(body, dict) else _bad_body()


def _required_string(body: dict[str, Any], field: str) -> str | Response:
    if field not in body:
        return validation_failed(field, f'"{field}" is required', "any.required")
    value = body[field]
    if not isinstance(value, str):
        return validation_failed(field, f'"{field}" must be a string', "string.base")
    if not value.strip():
        return validation_failed(field, f'"{field}" is not allowed to be empty', "string.empty")
    return value


class ClearoutApi:
    def __init__(self, bulk: BulkRegistry, credits: CreditLedger, counters: Counters,
                 clock: Callable[[], float], files_base: Callable[[], str], url_ttl_s: float) -> None:
        self.bulk = bulk
        self.credits = credits
        self.counters = counters
        self.clock = clock
        self.files_base = files_base
        self.url_ttl_s = url_ttl_s

    # ---- credits -----------------------------------------------------------------------------
    def getcredits(self, req: Request) -> Response:
        self.bulk.settle()
        balance = self.credits.balance
        now = datetime.fromtimestamp(self.clock(), UTC)
        reset = datetime(now.year, now.month, now.day, tzinfo=UTC) + timedelta(days=1)
        return json_response(200, {"status": "success", "data": {
            "available_credits": balance,
            "credits": {"available": balance, "subs": None, "available_daily_verify_limit": None,
                        "reset_daily_verify_limit_date": iso(reset.timestamp()), "total": balance},
            "low_credit_balance_min_threshold": LOW_CREDIT_THRESHOLD}})

    # ---- instant verify ----------------------------------------------------------------------
    def instant(self, req: Request) -> Response:
        body = _json_object(req)
        if isinstance(body, Response):
            return body
        email = _required_string(body, "email")
        if isinstance(email, Response):
            return email
        timeout = body.get("timeout", DEFAULT_TIMEOUT_MS)
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
            return validation_failed("timeout", '"timeout" must be a number', "number.base")
        if timeout > MAX_TIMEOUT_MS:
            return validation_failed("timeout", f'"timeout" must be less than or equal to {MAX_TIMEOUT_MS}',
                                     "number.max")
        verdict = verdicts.verdict(email)
        if not verdict.is_test:
            self.bulk.settle()
            if self.credits.balance <= 0:
                return failed(402, 1002)
        if verdict.time_taken > timeout:
            # The verification outlasted the caller's timeout: Clearout's 524, nothing charged.
            return json_response(524, {"status": "failed", "error": {
                "message": "Timeout Occurred",
                "additional_info": {"resource_name": "email", "resource_value": email}}})
        if verdict.billable:
            self.credits.charge(1, "instant verify")
        self.counters.add("instant_verifications")
        data = verdicts.api_data(verdict, iso(self.clock()), email_as_given=email.strip())
        return json_response(200, {"status": "success", "data": data})

    # ---- bulk --------------------------------------------------------------------------------
    def bulk_upload(self, req: Request) -> Response:
        boundary = boundary_of(req.headers.get("Content-Type", ""))
        if boundary is None or req.stream is None:
            return json_response(415, {"status": "failed", "error": {
                "message": "Content-Type must be multipart/form-data"}})
        incoming = self.bulk.directory / "_incoming"
        incoming.mkdir(exist_ok=True)
        stream, req.stream = req.stream, None  # consumed here, whatever happens
        try:
            form = read_form(stream, req.content_length, boundary, incoming)
        except MultipartError as exc:
            response = json_response(400, {"status": "failed", "error": {"message": f"Malformed upload: {exc}"}})
            response.close = True
            return response
        try:
            return self._accept(form)
        finally:
            form.discard()

    def _accept(self, form: Any) -> Response:
        upload = next((f for f in form.files if f.field == "file"), None)
        if upload is None:
            return validation_failed("file", '"file" is required', "any.required")
        filename = os.path.basename(upload.filename.replace("\\", "/"))
        extension = os.path.splitext(filename)[1].lower()
        if extension not in FILE_FORMATS:
            return json_response(400, {"status": "failed", "error": {"message": INVALID_FORMAT}})
        if extension != ".csv":
            return json_response(400, {"status": "failed", "error": {"message": CSV_ONLY}})
        optimize = form.fields.get("optimize", OPTIMIZE_VALUES[0])
        if optimize not in OPTIMIZE_VALUES:
            return validation_failed("optimize", '"optimize" must be one of [highest_accuracy, '
                                     'fastest_turnaround]', "any.only")
        ignore_duplicate = form.fields.get("ignore_duplicate_file", "false")
        if ignore_duplicate not in ("true", "false"):
            return validation_failed("ignore_duplicate_file",
                                     '"ignore_duplicate_file" must be one of [true, false]', "any.only")
        self.bulk.settle()
        if ignore_duplicate == "false" and self.bulk.is_duplicate(filename, upload.size):
            return failed(200, DUPLICATE_FILE[0], DUPLICATE_FILE[1])
        list_id = self.bulk.new_id()
        folder = self.bulk.list_dir(list_id)
        folder.mkdir(parents=True)
        accepted = False
        try:
            target = folder / "input.csv"
            shutil.move(upload.path, target)
            try:
                scan = scan_csv(target)
            except ScanError as exc:
                return json_response(400, {"status": "failed", "error": {"message": str(exc)}})
            if scan.email_index < 0:
                return failed(400, 1004)
            if self.bulk.running() >= MAX_RUNNING:
                return failed(200, 1001)
            available = self.credits.balance - self.bulk.reserved()
            if scan.billable_estimate > 0 and self.credits.balance <= 0:
                return failed(402, 1002)
            if scan.billable_estimate > available:
                return failed(402, 1028, count=scan.billable_estimate)
            item = BulkList(list_id=list_id, name=os.path.splitext(filename)[0], filename=filename,
                            size=upload.size, created_on=self.clock(), encoding=scan.encoding,
                            email_index=scan.email_index, rows=scan.rows, unique_emails=scan.unique_emails,
                            billable_estimate=scan.billable_estimate, optimize=optimize)
            self.bulk.add(item)
            accepted = True
            return json_response(200, {"status": "success", "data": {"list_id": list_id}})
        finally:
            if not accepted:
                shutil.rmtree(folder, ignore_errors=True)

    def _list_from_body(self, req: Request) -> BulkList | Response:
        body = _json_object(req)
        if isinstance(body, Response):
            return body
        list_id = _required_string(body, "list_id")
        if isinstance(list_id, Response):
            return list_id
        return self._find(list_id)

    def _find(self, list_id: str) -> BulkList | Response:
        item = self.bulk.get(list_id.strip())
        # One token per sandbox, so a foreign list (1008) cannot happen: unknown ids get 1029.
        return item if item is not None else failed(200, 1029)

    def progress(self, req: Request) -> Response:
        if "list_id" not in req.query:
            return validation_failed("list_id", '"list_id" is required', "any.required")
        list_id = req.param("list_id") or ""
        if not list_id.strip():
            return validation_failed("list_id", '"list_id" is not allowed to be empty', "string.empty")
        item = self._find(list_id)
        if isinstance(item, Response):
            return item
        return json_response(200, {"status": "success", "data": {
            "progress_status": item.status, "percentile": self.bulk.percentile(item)}})

    def download(self, req: Request) -> Response:
        item = self._list_from_body(req)
        if isinstance(item, Response):
            return item
        if item.status == RUNNING or item.results_file is None:
            return failed(200, 1029)
        if self.bulk.expired(item):
            return failed(200, 1007)
        token, name = self.bulk.issue_url(item, self.url_ttl_s)
        return json_response(200, {"status": "success", "data": {"url": self._signed_url(token, name)}})

    def _signed_url(self, token: str, name: str) -> str:
        """Shaped like Clearout's pre-signed S3 link; only the token in the path matters here."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        amz_date = now.strftime("%Y%m%dT%H%M%SZ")
        signature = hashlib.sha256(f"{token}:{amz_date}".encode()).hexdigest()
        credential = quote(f"SANDBOX/{now:%Y%m%d}/ap-south-1/s3/aws4_request", safe="")
        return (f"{self.files_base()}/files/{token}/{quote(name)}?X-Amz-Algorithm=AWS4-HMAC-SHA256"
                f"&X-Amz-Credential={credential}&X-Amz-Date={amz_date}&X-Amz-Expires={int(self.url_ttl_s)}"
                f"&X-Amz-Signature={signature}&X-Amz-SignedHeaders=host")

    def _list_summary(self, item: BulkList) -> dict[str, Any]:
        return {"list_id": item.list_id, "name": item.name, "source": "upload",
                "created_on": iso(item.created_on)}

    def cancel(self, req: Request) -> Response:
        item = self._list_from_body(req)
        if isinstance(item, Response):
            return item
        if not self.bulk.cancel(item):
            return failed(200, 1116)
        return json_response(200, {"status": "success", "data": self._list_summary(item)})

    def remove(self, req: Request) -> Response:
        body = _json_object(req)
        if isinstance(body, Response):
            return body
        if "ignore_result" in body and not isinstance(body["ignore_result"], bool):
            return validation_failed("ignore_result", '"ignore_result" must be a boolean', "boolean.base")
        item = self._list_from_body(req)
        if isinstance(item, Response):
            return item
        if not self.bulk.remove(item):
            return failed(200, REMOVE_RUNNING[0], REMOVE_RUNNING[1])
        return json_response(200, {"status": "success", "data": self._list_summary(item)})


def serve_result_file(bulk: BulkRegistry, token: str, name: str) -> Response:
    """GET /files/<token>/<name>: no auth, one time, until the URL expires (S3-style XML errors)."""
    path, error = bulk.redeem(token, name)
    if path is None or not path.exists():
        code = error or "NoSuchKey"
        message = {"AccessDenied": "Access Denied", "ExpiredToken": "Request has expired",
                   "SignatureDoesNotMatch": "The request signature does not match",
                   "NoSuchKey": "The specified key does not exist."}[code]
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                f"<Message>{message}</Message></Error>").encode()
        return Response(404 if code == "NoSuchKey" else 403, body, content_type="application/xml")
    headers = {"Content-Disposition": f'attachment; filename="{quote(name)}"'}
    return Response(200, headers=headers, content_type="text/csv", file=Path(path))
