"""Opaque export cursors: self-contained, signed, already percent-encoded, ~1.5 KB like CleverTap's.

A cursor carries its query, offset and creation time, signed with a key derived from the seed, so
it survives a sandbox restart and cannot be edited. It is handed out percent-encoded (base64 with
`%2B`, `%2F`, `%3D%3D`); a client that encodes it again sends `%253D...`, which no longer decodes:
that is CleverTap's "Incorrect Usage".
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from dataclasses import asdict, dataclass, replace
from typing import Any
from urllib.parse import quote

_MAC_BYTES = 16
_MIN_BYTES = 1100  # base64 of ~1.1 KB, percent-encoded: ~1.5 KB, CleverTap's observed size


@dataclass(frozen=True)
class CursorState:
    query: dict[str, Any]   # canonical query (event, dates, filters)
    chain: str              # one export: every page cursor of one POST shares it
    offset: int
    page_size: int
    created: float          # epoch of the POST; cursors expire relative to it
    first: bool             # the cursor the POST returned (the one that may be "still in progress")

    def at(self, offset: int) -> "CursorState":
        return replace(self, offset=offset, first=False)


def _mask(data: bytes, key: bytes, mac: bytes) -> bytes:
    """XOR with a keyed stream: cursors are opaque to clients, as CleverTap's are."""
    stream = hashlib.shake_256(key + mac).digest(len(data))
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data), "big")


def encode_cursor(state: CursorState, key: bytes) -> str:
    payload = json.dumps(asdict(state), separators=(",", ":"), sort_keys=True).encode()
    mac = hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
    blob = mac + _mask(payload + b"\x00", key, mac)
    pad = max(0, _MIN_BYTES - len(blob))
    pad += (1 - (len(blob) + pad)) % 3  # length = 1 (mod 3): base64 then ends in "==", like theirs
    filler = hashlib.shake_256(mac).digest(pad) if pad else b""
    text = base64.b64encode(blob + filler).decode()
    return quote(text, safe="")


def decode_cursor(value: str, key: bytes) -> CursorState | None:
    """The state behind a cursor as received (percent-decoded once by the query parser), or None."""
    try:
        blob = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    mac, rest = blob[:_MAC_BYTES], blob[_MAC_BYTES:]
    payload = _mask(rest, key, mac).split(b"\x00", 1)[0]
    expected = hmac.new(key, payload, hashlib.sha256).digest()[:_MAC_BYTES]
    if len(mac) != _MAC_BYTES or not hmac.compare_digest(mac, expected):
        return None
    try:
        return CursorState(**json.loads(payload))
    except (ValueError, TypeError):
        return None
