"""What the sandbox's /1/upload accepts: one record checked the way CleverTap checks it, with its
per-record error codes (the reference's list, and 521 where it names a limit but no code)."""
from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from typing import Any

from lib.emails import is_valid_syntax, normalise_email
from lib.sandbox.profiles import SYSTEM_KEYS, ProfileChange

MAX_KEY_BYTES = 120
MAX_VALUE_BYTES = 512
MAX_CUSTOM_KEYS = 256
MAX_MULTI_VALUES = 100
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
