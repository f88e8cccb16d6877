"""CleverTap's server API as the sandbox serves it: upload, subscribe, profile, cursor export, counts.

Auth, concurrency limits, latency and faults are applied by the server before these handlers run.
Where the reference marks a point UNCONFIRMED, the choice is a named constant here.
"""
from __future__ import annotations

import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from lib.emails import is_valid_syntax, normalise_email
from lib.sandbox.cursors import CursorState, decode_cursor, encode_cursor
from lib.sandbox.dataset import EVENTS
from lib.sandbox.limits import Counters
from lib.sandbox.profiles import ProfileChange, ProfileStore
from lib.sandbox.records import (LIMIT_CODE, MAX_CUSTOM_KEYS, PROFILE_PREFIX, SKIPPED, RecordError,
                                 check_record)
from lib.sandbox.wire import BadRequestBody, Request, Response, json_response

MAX_RECORDS = 1000
MAX_BATCH_SIZE = 5000
BUCKETS = 23  # CleverTap's storage buckets: page sizes are multiples of 23
# UNCONFIRMED: a batch_size under 23 "acts as unlimited" ([MCP]: 5 returned 989 records, which is
# 43 x 23). The sandbox answers such requests (and a missing batch_size) with pages of 989.
SMALL_BATCH_PAGE = 989
# UNCONFIRMED: profile cursors live "about 4 days" ([MCP]); counted from the POST.
CURSOR_LIFETIME_S = 4 * 86400

# ---- bodies (one place for every text; UNCONFIRMED ones marked) ----------------------------
AUTH_INVALID = {"status": "fail", "error": "Account ID is not valid", "code": 401}
WRONG_REGION = {"status": "fail", "error": "Invalid Credentials", "code": 401}
# UNCONFIRMED body ("probably" per the reference); no Retry-After on this one.
TOO_MANY_CONCURRENT = {"status": "fail", "error": "Too many concurrent requests", "code": 429}
NOT_FOUND = {"status": "fail", "error": "Not Found", "code": 404}
# UNCONFIRMED: the body for an unknown profile. HTTP 200 with status fail, like other soft failures.
# Also what profile.json?email= answers for an address no profile has, even when /1/subscribe set an
# address-level preference for it: the reference documents no API that reads address-level state
# (UNCONFIRMED that none exists). The sandbox keeps that state (ProfileStore.address_subscription) and
# applies it to profiles created later with the address; only tests read it (Sandbox.address_subscription).
PROFILE_NOT_FOUND = {"status": "fail", "error": "Profile not found", "code": 404}
PROFILE_NOT_FOUND_HTTP = 200
IN_PROGRESS = {"status": "fail", "error": "Request still in progress", "code": 2}
INCORRECT_USAGE = {"status": "fail", "error": "Incorrect Usage", "code": 400}
# UNCONFIRMED: what an expired cursor answers; kept apart from tampering so clients can say "restart".
CURSOR_EXPIRED = {"status": "fail", "error": "Incorrect Usage: the cursor has expired", "code": 400}
INVALID_EVENT = {"status": "fail", "error": "invalid event", "code": 400}
INVALID_REQUEST_ID = {"status": "fail", "error": "invalid request id", "code": 400}
DATE_ERROR_CODE = 4002
# Per-record codes and texts ([ERR], texts of 515-520 and 525 from recorded exchanges).
def _unprocessed(code: int, text: str, number: int, record: Any) -> dict[str, Any]:
    return {"status": "fail", "code": code, "error": text + SKIPPED.format(n=number), "record": record}


def _batch_answer(processed: int, unprocessed: list[dict[str, Any]]) -> Response:
    status = "success" if not unprocessed else "partial" if processed else "fail"
    return json_response(200, {"status": status, "processed": processed, "unprocessed": unprocessed})


def _bad_request(text: str, code: int = 400) -> Response:
    return json_response(400, {"status": "fail", "error": text, "code": code})


class CleverTapApi:
    """Route handlers over one ProfileStore; each returns a Response and never raises on bad input."""

    def __init__(self, store: ProfileStore, counters: Counters, clock: Callable[[], float],
                 cursor_key: bytes, in_progress_polls: int, seed: int) -> None:
        self.store = store
        self.counters = counters
        self.clock = clock
        self.cursor_key = cursor_key
        self.in_progress_polls = in_progress_polls
        self._lock = threading.Lock()
        self._members: OrderedDict[str, np.ndarray] = OrderedDict()  # export snapshots by chain
        self._polls: OrderedDict[str, int] = OrderedDict()
        self._counts: OrderedDict[int, list[int]] = OrderedDict()    # req_id -> [count, polls]
        self._next_req_id = 384_649_162_721_759 + seed * 1_000_003

    # ---- /1/upload ---------------------------------------------------------------------------
    def upload(self, req: Request) -> Response:
        records = self._batch(req)
        if isinstance(records, Response):
            return records
        changes: list[tuple[int, ProfileChange]] = []
        failures: dict[int, tuple[int, str]] = {}
        events = 0
        for number, record in enumerate(records, start=1):
            try:
                checked = check_record(record)
            except RecordError as err:
                failures[number] = (err.code, err.text)
                continue
            if isinstance(checked, str):  # EVENT: a valid event record, counted, not applied
                events += 1
            else:
                changes.append((number, checked))
        created, refused = self.store.apply(changes, MAX_CUSTOM_KEYS) if changes else (0, [])
        for number in refused:
            failures[number] = (LIMIT_CODE, PROFILE_PREFIX + "More than 256 custom properties on the profile.")
        unprocessed = [_unprocessed(code, text, number, records[number - 1])
                       for number, (code, text) in sorted(failures.items())]
        processed = len(changes) - len(refused) + events
        self.counters.add("records_processed", processed)
        self.counters.add("records_rejected", len(unprocessed))
        self.counters.add("events_accepted", events)
        self.counters.add("profiles_created", created)
        return _batch_answer(processed, unprocessed)

    def _batch(self, req: Request) -> list[Any] | Response:
        try:
            body = req.json()
        except BadRequestBody:
            return _bad_request("Invalid JSON payload")
        records = body.get("d") if isinstance(body, dict) else None
        if not isinstance(records, list):
            return _bad_request("Payload must be an object with a \"d\" array")
        if len(records) > MAX_RECORDS:
            # UNCONFIRMED text; the limit and the 400 are documented.
            return _bad_request(f"Too many records: at most {MAX_RECORDS} per request")
        return records

    # ---- /1/subscribe ------------------------------------------------------------------------
    def subscribe(self, req: Request) -> Response:
        """Address-level (un)subscribe. UNCONFIRMED: the answer mirrors /1/upload's shape."""
        items = self._batch(req)
        if isinstance(items, Response):
            return items
        changes: list[tuple[str, bool]] = []
        unprocessed: list[dict[str, Any]] = []
        for number, item in enumerate(items, start=1):
            if not isinstance(item, dict) or item.get("type") != "email" or item.get("status") not in (
                    "Unsubscribe", "Resubscribe"):
                unprocessed.append(_unprocessed(524, "Subscription record needs type \"email\" and status "
                                                "Unsubscribe or Resubscribe. ", number, item))
                continue
            value = item.get("value")
            address = normalise_email(value) if isinstance(value, str) else None
            if address is None or not is_valid_syntax(address):
                unprocessed.append(_unprocessed(515, "Email is not valid.", number, item))
                continue
            changes.append((address, item["status"] == "Resubscribe"))
        if changes:
            self.store.set_address_subscription(changes)
        self.counters.add("subscription_changes", len(changes))
        return _batch_answer(len(changes), unprocessed)

    # ---- GET /1/profile.json -----------------------------------------------------------------
    def profile(self, req: Request) -> Response:
        given = {k: str(req.param(k)) for k in ("email", "identity", "objectId") if req.param(k)}
        if len(given) != 1:
            return _bad_request("Exactly one of email, identity or objectId is required")
        (kind, value), = given.items()
        with self.store.lock:
            if kind == "email":
                keys = self.store.keys_of_email(value)
                key = keys[0] if keys else None
            elif kind == "identity":
                key = self.store.key_of_identity(value)
            else:
                key = self.store.key_of_object_id(value)
            if key is None:
                return json_response(PROFILE_NOT_FOUND_HTTP, PROFILE_NOT_FOUND)
            return json_response(200, {"status": "success", "record": self.store.record(key)})

    # ---- queries (profiles.json, counts) -----------------------------------------------------
    def _query(self, req: Request) -> dict[str, Any] | Response:
        try:
            body = req.json()
        except BadRequestBody:
            return _bad_request("Invalid JSON payload")
        if not isinstance(body, dict):
            return _bad_request("Payload must be a JSON object")
        event = body.get("event_name")
        filters = body.get("common_profile_properties")
        if event is None and filters is None:
            return _bad_request("event_name is mandatory")
        # "-1" (or no event with profile filters) means all users: seen in third-party scripts,
        # officially UNCONFIRMED; the sandbox supports it.
        if event is not None and event != "-1" and event not in EVENTS:
            return json_response(400, INVALID_EVENT)
        query: dict[str, Any] = {"event": None if event in (None, "-1") else event}
        today = datetime.fromtimestamp(self.clock(), UTC).date()
        dates = {}
        for name in ("from", "to"):
            raw = body.get(name)
            if raw is None and query["event"] is None:
                continue
            parsed = _parse_yyyymmdd(raw)
            if parsed is None:
                return _bad_request(f"Invalid date for '{name}': use a real date as YYYYMMDD",
                                    DATE_ERROR_CODE)
            dates[name] = parsed
        if len(dates) == 2:
            if dates["from"] > dates["to"]:
                return _bad_request("Invalid date range: from greater than to", DATE_ERROR_CODE)
            if dates["to"] > today:
                return _bad_request("Invalid date range: dates cannot be in the future", DATE_ERROR_CODE)
            query["from"] = int(dates["from"].strftime("%Y%m%d"))
            query["to"] = int(dates["to"].strftime("%Y%m%d"))
        elif query["event"] is not None or dates:
            return _bad_request("Both 'from' and 'to' are required", DATE_ERROR_CODE)
        checked = _check_filters(filters)
        if isinstance(checked, Response):
            return checked
        query["filters"] = checked
        return query

    def _members_of(self, query: dict[str, Any]) -> np.ndarray:
        store = self.store
        if query["event"] is None:
            keys = store.all_keys()
        else:
            anchor, start, end = store.ds.anchor, _parse_yyyymmdd(query["from"]), _parse_yyyymmdd(query["to"])
            assert start is not None and end is not None  # _query checked both
            from_ago, to_ago = (anchor - start).days, (anchor - end).days
            keys = store.event_keys(query["event"], from_ago, to_ago)
        if not query["filters"]:
            return keys
        with store.lock:
            matches = [k for k in keys.tolist() if _matches(store.profile_data(k), query["filters"])]
        return np.array(matches, dtype=np.int64)

    def profiles_post(self, req: Request) -> Response:
        query = self._query(req)
        if isinstance(query, Response):
            return query
        raw_size = req.param("batch_size")
        if raw_size is None:
            page_size = SMALL_BATCH_PAGE
        else:
            try:
                size = int(raw_size)
            except ValueError:
                return _bad_request("batch_size must be an integer")
            if size < 1:
                return _bad_request("batch_size must be between 1 and 5000")
            size = min(size, MAX_BATCH_SIZE)
            page_size = SMALL_BATCH_PAGE if size < BUCKETS else size - size % BUCKETS
        chain = secrets.token_hex(8)
        members = self._members_of(query)
        with self._lock:
            self._remember(self._members, chain, members, 64)
        state = CursorState(query, chain, 0, page_size, self.clock(), True)
        return json_response(200, {"status": "success", "cursor": encode_cursor(state, self.cursor_key)})

    def profiles_get(self, req: Request) -> Response:
        raw = req.param("cursor")
        state = decode_cursor(raw, self.cursor_key) if raw else None
        if state is None:
            return json_response(400, INCORRECT_USAGE)
        if self.clock() - state.created > CURSOR_LIFETIME_S:
            return json_response(400, CURSOR_EXPIRED)
        with self._lock:
            if state.first:
                polls = self._polls.get(state.chain, 0)
                if polls < self.in_progress_polls:
                    self._remember(self._polls, state.chain, polls + 1, 10_000)
                    return json_response(200, IN_PROGRESS)
            members = self._members.get(state.chain)
        if members is None:  # evicted, or the sandbox restarted: take the snapshot again
            members = self._members_of(state.query)
            with self._lock:
                self._remember(self._members, state.chain, members, 64)
        options = {name: req.param(name) != "false" for name in ("profile", "events", "app")}
        page = members[state.offset: state.offset + state.page_size].tolist()
        with self.store.lock:
            records = [self.store.record(k, **options) for k in page]
        answer: dict[str, Any] = {"status": "success"}
        if state.offset > 0:
            previous = state.at(max(0, state.offset - state.page_size))
            answer["previous_cursor"] = encode_cursor(previous, self.cursor_key)
        if state.offset + state.page_size < len(members):
            answer["next_cursor"] = encode_cursor(state.at(state.offset + state.page_size), self.cursor_key)
        if records:  # CleverTap leaves the key out when there is nothing
            answer["records"] = records
        self.counters.add("pages_served")
        self.counters.add("records_exported", len(records))
        return json_response(200, answer)

    def counts_post(self, req: Request) -> Response:
        query = self._query(req)
        if isinstance(query, Response):
            return query
        count = len(self._members_of(query))
        with self._lock:
            self._next_req_id += 7919
            req_id = self._next_req_id
            self._remember(self._counts, req_id, [count, 0], 10_000)
        return json_response(200, {"status": "partial", "req_id": req_id})

    def counts_get(self, req: Request) -> Response:
        raw = req.param("req_id")
        with self._lock:
            entry = self._counts.get(int(raw)) if raw and raw.isdigit() else None
            if entry is None or raw is None:
                return json_response(400, INVALID_REQUEST_ID)
            entry[1] += 1
            if entry[1] <= 1:  # one more "partial" before the count, like a query still running
                return json_response(200, {"status": "partial", "req_id": int(raw)})
            return json_response(200, {"status": "success", "count": entry[0]})

    @staticmethod
    def _remember(cache: OrderedDict[Any, Any], key: Any, value: Any, limit: int) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > limit:
            cache.popitem(last=False)


def _parse_yyyymmdd(raw: Any) -> date | None:
    if isinstance(raw, bool):
        return None
    text = str(raw) if isinstance(raw, (int, str)) else ""
    if len(text) != 8 or not text.isdigit():
        return None
    try:
        return date(int(text[:4]), int(text[4:6]), int(text[6:]))
    except ValueError:
        return None


_OPERATORS = ("equals", "not_equals", "exists", "not_exists", "contains", "greater_than", "less_than")


def _check_filters(filters: Any) -> list[dict[str, Any]] | Response:
    """common_profile_properties: only `profile_fields` is simulated; other groups are refused
    with CleverTap's "invalid group" wording rather than silently ignored."""
    if filters is None:
        return []
    if not isinstance(filters, dict):
        return _bad_request("invalid group: common_profile_properties must be an object")
    unsupported = sorted(set(filters) - {"profile_fields"})
    if unsupported:
        return _bad_request(f"invalid group: {', '.join(unsupported)} (the sandbox simulates profile_fields)")
    fields = filters.get("profile_fields", [])
    if not isinstance(fields, list):
        return _bad_request("invalid group: profile_fields must be a list")
    out = []
    for spec in fields:
        if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
            return _bad_request("invalid group: each profile field needs a name")
        operator = spec.get("operator", "equals")
        if operator not in _OPERATORS:
            return _bad_request(f"invalid operator: {operator}")
        out.append({"name": spec["name"], "operator": operator, "value": spec.get("value")})
    return out


def _comparable(value: Any) -> Any:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, str):
        # Case-insensitive string comparison (the sandbox's choice; CleverTap's is UNCONFIRMED).
        return value.strip().lower()
    return value


def _matches(data: dict[str, Any], filters: list[dict[str, Any]]) -> bool:
    for spec in filters:
        present = spec["name"] in data and data[spec["name"]] not in (None, "")
        value = _comparable(data.get(spec["name"]))
        wanted = spec["value"] if isinstance(spec["value"], list) else [spec["value"]]
        wanted = [_comparable(w) for w in wanted]
        operator = spec["operator"]
        if operator == "exists":
            ok = present
        elif operator == "not_exists":
            ok = not present
        elif operator == "equals":
            ok = present and value in wanted
        elif operator == "not_equals":
            ok = value not in wanted
        elif operator == "contains":
            ok = present and any(str(w) in str(value) for w in wanted)
        else:
            try:
                ok = present and (value > wanted[0] if operator == "greater_than" else value < wanted[0])
            except TypeError:
                ok = False
        if not ok:
            return False
    return True
