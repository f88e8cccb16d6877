"""What an export sends, byte for byte: /1/upload records and bodies, and the dry run's sample.

A record is built by `upload_records` only (the dry run's sample), or by `upload_body`, its
byte-for-byte encoding that the apply runner and undo send; so the sample is what is sent.
Address-only lists send `lib.clevertap.subscribe_body`, the encoding of the client's own entries.
"""
from __future__ import annotations

import json
from typing import Any
from collections.abc import Iterable

from lib.export.plan import (KEY_EMAIL, KEY_IDENTITY, KEY_OBJECT_ID, METHOD_SUBSCRIBE, STAMP_PROPERTY, UNDONE_PREFIX,
                             ExportPlan)


def unsubscribe_data(tag: str) -> dict[str, Any]:
    """The profileData of an unsubscribe, stamped with the run's tag for undo."""
    return {"MSG-email": False, STAMP_PROPERTY: tag}


def resubscribe_data(tag: str) -> dict[str, Any]:
    """The profileData of an undo: subscribed again, and the stamp no longer names the run."""
    return {"MSG-email": True, STAMP_PROPERTY: UNDONE_PREFIX + tag}


def upload_records(rows: Iterable[tuple[str, str, bool, str | None]], tag: str) -> list[dict[str, Any]]:
    """/1/upload records for (key_type, key_value, unsubscribe, properties_json) rows.

    `properties_json` is merged over the unsubscribe stamp, so an undo row (whose properties set
    MSG-email true) needs `unsubscribe` False. Rows without properties share one profileData dict:
    building a million records stays cheap.
    """
    shared = unsubscribe_data(tag)
    records = []
    for key_type, key_value, unsubscribe, properties_json in rows:
        if properties_json is None:
            data = shared if unsubscribe else {}
        else:
            extra = json.loads(properties_json)
            data = {**shared, **extra} if unsubscribe else extra
        records.append({key_type: key_value, "type": "profile", "profileData": data})
    return records


_quote = json.encoder.encode_basestring_ascii  # json.dumps' own string encoder (ensure_ascii)


def upload_body(rows: Iterable[tuple[str, str, bool, str | None]], tag: str) -> tuple[bytes, int]:
    """The /1/upload body of `upload_records(rows, tag)`, encoded, and its number of records.

    Byte for byte `json.dumps({"d": upload_records(rows, tag)}, separators=(",", ":"))`, which is
    what `CleverTapClient.upload_batch` sends; without building a dict per record first. A million
    unsubscribes are a thousand such bodies, and json.dumps of the dicts cost the apply runner more
    CPU per call than anything else. Rows with properties are rare enough to take the dict path.
    """
    shared = json.dumps(unsubscribe_data(tag), separators=(",", ":"))
    opening = {key: "{" + _quote(key) + ":" for key in (KEY_IDENTITY, KEY_OBJECT_ID, KEY_EMAIL)}
    parts = []
    for row in rows:
        key_type, key_value, unsubscribe, properties_json = row
        if properties_json is None:
            parts.append(f'{opening.get(key_type) or "{" + _quote(key_type) + ":"}{_quote(key_value)},'
                         f'"type":"profile","profileData":{shared if unsubscribe else "{}"}}}')
        else:
            parts.append(json.dumps(upload_records([row], tag)[0], separators=(",", ":")))
    return ('{"d":[' + ",".join(parts) + "]}").encode(), len(parts)


def sample_payload(plan: ExportPlan, count: int = 3) -> dict[str, Any]:
    """The first `count` records exactly as the first call will send them."""
    head = plan.head(count)
    if plan.method == METHOD_SUBSCRIBE:
        return {"endpoint": "/1/subscribe",
                "body": {"d": [{"type": "email", "value": v, "status": "Unsubscribe"} for v in head["key_value"]]}}
    rows = zip(head["key_type"], head["key_value"], head["unsubscribe"],
               head["properties_json"].astype(object).where(head["properties_json"].notna(), None))
    return {"endpoint": "/1/upload", "body": {"d": upload_records(rows, plan.tag)}}
