"""CleverTap's server API as the sandbox serves it: upload, subscribe, profile, cursor export, counts.

Auth, concurrency limits, latency and faults are applied by the server before these handlers run.
Where the reference marks a point UNCONFIRMED, the choice is a named constant here.
"""
from __future__ import annotations

import re
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable
from datetime import UTC, date, datetime
from functools import lru_cache
from typing import Any

import numpy as np

from lib.emails import is_valid_syntax, normalise_email
from lib.sandbox.cursors import CursorState, decode_cursor, encode_cursor
from lib.sandbox.dataset import EVENTS
from lib.sandbox.limits import Counters
from lib.sandbox.profiles import SYSTEM_KEYS, ProfileChange, ProfileStore
from lib.sandbox.wire import BadRequestBody, Request, Response, json_response

MAX_RECORDS = 1000
MAX_BATCH_SIZE = 5000
BUCKETS = 23  # CleverTap's storage buckets: page sizes are multiples of 23
# UNCONFIRMED: a batch_size under 23 "acts as unlimited" ([MCP]: 5 returned 989 records, which is
# 43 x 23). The sandbox answers such requests (and a missing batch_size) with pages of 989.
SMALL_BATCH_PAGE = 989
# UNCONFIRMED: profile cursors live "about 4 days" ([MCP]); counted from the POST.
CURSOR_LIFETIME_S = 4 * 86400
MAX_KEY_BYTES = 120
MAX_VALUE_BYTES = 512
MAX_CUSTOM_KEYS = 256
MAX_MULTI_VALUES = 100

# ---- bodies (one place for every text; UNCONFIRMED ones marked) ----------------------------
AUTH_INVALID = {"status": "fail", "error": "Account ID is not valid", "code": 401}
WRONG_REGION = {"status": "fail", "error": "Invalid Credentials", "code": 401}
# UNCONFIRMED body ("probably" per the reference); no Retry-After on this one.
TOO_MANY_CONCURRENT = {"status": "fail", "error": "Too many concurrent requests", "code": 429}
NOT_FOUND = {"status": "fail", "error": "Not Found", "code": 404}
# UNCONFIRMED: the body for an unknown profile. HTTP 200 with status fail, like other soft failures.
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
PROFILE_PREFIX = "Profile data is incorrect. "
RECORD_ERRORS: dict[int, str] = {
    509: "Event name is mandatory.",
    512: "Invalid event structure.",
    514: PROFILE_PREFIX + "Gender needs to be M/F.",
    515: PROFILE_PREFIX + "Email is not valid.",
    516: PROFILE_PREFIX + "Phone number is not valid.",
    517: PROFILE_PREFIX + "Employed needs to be Y/N.",
    518: PROFILE_PREFIX + "Education needs to be School/College/Graduate..",
    519: PROFILE_PREFIX + "Married needs to be Y/N.",
    520: PROFILE_PREFIX + "Age is invalid.",
    522: "Event properties limit exceeded.",
    523: "Missing identity.",
    524: "Data neither event nor profile.",
    525: "Timestamp should be present in the Unix Epoch format.",
    526: "objectId is invalid.",
}
# UNCONFIRMED: the reference gives the key/value/256-key limits but no code for breaking them;
# the sandbox uses 521 (unused in the published list) with its own texts, also for bad MSG-* values
# and malformed $D_ dates.
LIMIT_CODE = 521
SKIPPED = "Skipped record number : {n}"

_OBJECT_ID_RE = re.compile(r"^(?:__|-)?[0-9A-Za-z_-]{16,64}$")
_PHONE_RE = re.compile(r"^\+[1-9][0-9]{6,14}$")
_DATE_VALUE_RE = re.compile(r"^\$D_-?[0-9]{1,12}$")
_IDENTIFIERS = ("identity", "objectId", "FBID", "GPID")


class RecordError(Exception):
    def __init__(self, code: int, text: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.text = text or RECORD_ERRORS[code]


def _msg_bool(value: Any) -> bool:
    """MSG-* flags: JSON booleans, or the strings "true"/"false" in any case (what CSV-fed
    integrations send; accepting them is the sandbox's choice, UNCONFIRMED)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise RecordError(LIMIT_CODE, PROFILE_PREFIX + "MSG-email needs to be true or false.")


def _check_value(key: str, value: Any) -> Any:
    if isinstance(value, str):
        if len(value) * 4 > MAX_VALUE_BYTES and len(value.encode()) > MAX_VALUE_BYTES:
            raise RecordError(LIMIT_CODE, PROFILE_PREFIX + f"Value of {key[:40]} exceeds 512 bytes.")
        if value.startswith("$D_") and not _DATE_VALUE_RE.match(value):
            raise RecordError(LIMIT_CODE, PROFILE_PREFIX + f"{key[:40]} is not a valid date.")
        return value
    if isinstance(value, (bool, int, float)) or value is None:
        return value
    if isinstance(value, list) and len(value) <= MAX_MULTI_VALUES and all(
            isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value):
        for item in value:
            if isinstance(item, str) and len(item.encode()) > MAX_VALUE_BYTES:
                raise RecordError(LIMIT_CODE, PROFILE_PREFIX + f"Value of {key[:40]} exceeds 512 bytes.")
        return value
    raise RecordError(LIMIT_CODE, PROFILE_PREFIX + f"Value of {key[:40]} is not supported.")


def _check_email(value: Any) -> None:
    if not isinstance(value, str) or not is_valid_syntax(normalise_email(value)):
        raise RecordError(515)


def _check_phone(value: Any) -> None:
    if not isinstance(value, str) or not _PHONE_RE.match(value):
        raise RecordError(516)


def _one_of(code: int, allowed: tuple[str, ...]) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value not in allowed:
            raise RecordError(code)
    return check


def _check_age(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value < 150:
        raise RecordError(520)


_NONE: frozenset[str] = frozenset()
_SYSTEM_CHECKS: dict[str, Callable[[Any], None]] = {
    "Email": _check_email, "Phone": _check_phone, "Gender": _one_of(514, ("M", "F")),
    "Employed": _one_of(517, ("Y", "N")), "Education": _one_of(518, ("School", "College", "Graduate")),
    "Married": _one_of(519, ("Y", "N")), "Age": _check_age,
}


def _check_profile_data(data: dict[str, Any]) -> tuple[dict[str, Any], bool | None, frozenset[str]]:
    """Validated (changes without MSG-email, MSG-email or None, the custom keys).

    Runs for every record of every upload (a million-profile export makes a thousand calls of a
    thousand records), so the common cases (MSG-* booleans, short strings) take the first branch.
    """
    out: dict[str, Any] = {}
    msg_email: bool | None = None
    custom: list[str] | None = None
    for key, value in data.items():
        if key.startswith("MSG-"):
            flag = value if value is True or value is False else _msg_bool(value)
            if key == "MSG-email":
                msg_email = flag
            else:
                out[key] = flag
            continue
        if len(key) > MAX_KEY_BYTES // 4 and len(key.encode()) > MAX_KEY_BYTES:
            raise RecordError(LIMIT_CODE, PROFILE_PREFIX + "Key exceeds 120 bytes.")
        if key in SYSTEM_KEYS:
            check = _SYSTEM_CHECKS.get(key)
            if check is not None:
                check(value)
        elif custom is None:
            custom = [key]
        else:
            custom.append(key)
        if type(value) is str and len(value) <= MAX_VALUE_BYTES // 4 and not value.startswith("$D_"):
            out[key] = value
        else:
            out[key] = _check_value(key, value)
    if custom is None:
        return out, msg_email, _NONE
    if len(custom) > MAX_CUSTOM_KEYS:
        raise RecordError(LIMIT_CODE, PROFILE_PREFIX + "More than 256 custom properties.")
    return out, msg_email, frozenset(custom)


# Distinct profileData contents seen recently, validated once each. An export sends a thousand
# records per call that mostly share one content ({"MSG-email": false, <stamp>: <run tag>}), so the
# key, value and custom-key checks then cost one lookup per record. The types are part of the key:
# True == 1 in Python, but CleverTap's checks (and what is stored) tell them apart.
_CHECKED_CONTENTS = 4096


@lru_cache(maxsize=_CHECKED_CONTENTS)
def _checked_content(items: tuple[tuple[str, Any], ...], types: tuple[type, ...]
                     ) -> tuple[dict[str, Any], bool | None, frozenset[str]]:
    # The returned dict is shared by every record with this content: nobody may mutate it
    # (ProfileStore keeps such dicts as they are and copies before merging).
    return _check_profile_data(dict(items))


def _checked_profile_data(data: dict[str, Any]) -> tuple[dict[str, Any], bool | None, frozenset[str]]:
    """`_check_profile_data`, memoised by content (floats and unhashable values are checked each time:
    -0.0 == 0.0 and lists cannot be a key)."""
    types = tuple(map(type, data.values()))
    if float in types:
        return _check_profile_data(data)
    try:
        return _checked_content(tuple(data.items()), types)
    except TypeError:  # a list value
        return _check_profile_data(data)


def _identifier(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    if type(value) is str:  # the usual case, first
        return value.strip() or None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        value = str(int(value)) if float(value).is_integer() else str(value)
    if not isinstance(value, str):
        raise RecordError(523)
    return value.strip() or None


EVENT = "event"
_new_tuple = tuple.__new__


def check_record(record: Any) -> ProfileChange | str:
    """A valid profile record as a ProfileChange, or EVENT for a valid event record.

    Raises RecordError with the per-record code otherwise.
    """
    if type(record) is dict and len(record) == 3:
        # The usual shape, {"identity": str, "type": "profile", "profileData": {...}}: with exactly
        # these keys there is no objectId, ts or other identifier to look at.
        identity, data = record.get("identity"), record.get("profileData")
        if type(identity) is str and type(data) is dict and record.get("type") == "profile":
            identity = identity.strip()
            if identity:
                changes, msg_email, custom = _checked_profile_data(data)
                return _new_tuple(ProfileChange, (identity, None, changes, msg_email, custom))
    if type(record) is not dict:
        raise RecordError(524)
    kind = record.get("type")
    if kind != "profile" and kind != "event":
        raise RecordError(524)
    identity = record.get("identity")
    if identity is not None:
        identity = (identity.strip() or None) if type(identity) is str else _identifier(record, "identity")
    object_id = record.get("objectId")
    if object_id is not None:
        object_id = _identifier(record, "objectId")
    if identity is None and object_id is None and not any(record.get(k) for k in _IDENTIFIERS[2:]):
        raise RecordError(523)
    if object_id is not None and not _OBJECT_ID_RE.match(object_id):
        raise RecordError(526)
    if "ts" in record:
        ts = record["ts"]
        if isinstance(ts, bool) or not isinstance(ts, (int, float)) or not 0 <= ts < 1e11:
            raise RecordError(525)
    if kind == "event":
        name = record.get("evtName")
        if not isinstance(name, str) or not name.strip():
            raise RecordError(509)
        event_data = record.get("evtData", {})
        if not isinstance(event_data, dict):
            raise RecordError(512)
        if len(event_data) > MAX_CUSTOM_KEYS:
            raise RecordError(522)
        return EVENT
    data = record.get("profileData")
    if data is None:
        data = {}
    elif type(data) is not dict:
        raise RecordError(524)
    changes, msg_email, custom = _checked_profile_data(data)
    if identity is None and object_id is None:
        # FBID / GPID only: the sandbox keys such profiles by that id, as an identity.
        identity = next(f"{k}:{record[k]}" for k in _IDENTIFIERS[2:] if record.get(k))
    # tuple.__new__ skips the NamedTuple's Python-level __new__ (a third of this function's time).
    return _new_tuple(ProfileChange, (identity, object_id, changes, msg_email, custom))


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
            if checked is EVENT:
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
            if not is_valid_syntax(address):
                unprocessed.append(_unprocessed(515, "Email is not valid.", number, item))
                continue
            changes.append((address, item["status"] == "Resubscribe"))
        if changes:
            self.store.set_address_subscription(changes)
        self.counters.add("subscription_changes", len(changes))
        return _batch_answer(len(changes), unprocessed)

    # ---- GET /1/profile.json -----------------------------------------------------------------
    def profile(self, req: Request) -> Response:
        given = {k: req.param(k) for k in ("email", "identity", "objectId") if req.param(k)}
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
            anchor = store.ds.anchor
            from_ago = (anchor - _parse_yyyymmdd(query["from"])).days
            to_ago = (anchor - _parse_yyyymmdd(query["to"])).days
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
            if entry is None:
                return json_response(400, INVALID_REQUEST_ID)
            entry[1] += 1
            if entry[1] <= 1:  # one more "partial" before the count, like a query still running
                return json_response(200, {"status": "partial", "req_id": int(raw)})
            return json_response(200, {"status": "success", "count": entry[0]})

    @staticmethod
    def _remember(cache: OrderedDict, key: Any, value: Any, limit: int) -> None:
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
