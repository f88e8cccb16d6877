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
_NONCE_BYTES = 8
_MIN_BYTES = 1100  # base64 of ~1.1 KB, percent-encoded: ~1.5 KB, CleverTap's observed size


@dataclass(frozen=True)
class CursorState:
    query: dict[str, Any]   # canonical query (event, dates, filters)
    chain: str              # one export: every page cursor of one POST shares it
    offset: int
    page_size: int
    created: float          # epoch of the POST; cursors expire relative to it
    first: bool             # the cursor the POST returned (the one that may be "still in progress")

    def at(self, offset: int) -> CursorState:
        return replace(self, offset=offset, first=False)


def _mask(data: bytes, key: bytes, nonce: bytes) -> bytes:
    """XOR with a keyed stream: cursors are opaque to clients, as CleverTap's are."""
    stream = hashlib.shake_256(key + nonce).digest(len(data))
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(len(data), "big")


def _tag(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, body, hashlib.sha256).digest()[:_MAC_BYTES]


def encode_cursor(state: CursorState, key: bytes) -> str:
    payload = json.dumps(asdict(state), separators=(",", ":"), sort_keys=True).encode()
    nonce = hmac.new(key, payload, hashlib.sha256).digest()[:_NONCE_BYTES]
    body = nonce + _mask(payload + b"\x00", key, nonce)
    pad = max(0, _MIN_BYTES - len(body) - _MAC_BYTES)
    pad += (1 - (len(body) + pad + _MAC_BYTES)) % 3  # length = 1 (mod 3): base64 ends in "==", like theirs
    body += hashlib.shake_256(nonce).digest(pad)
    text = base64.b64encode(body + _tag(key, body)).decode()
    return quote(text, safe="")


def decode_cursor(value: str, key: bytes) -> CursorState | None:
    """The state behind a cursor as received (percent-decoded once by the query parser), or None.

    Any change to any byte (or a second round of percent-encoding) makes it None.
    """
    try:
        blob = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return None
    body, tag = blob[:-_MAC_BYTES], blob[-_MAC_BYTES:]
    if len(blob) <= _MAC_BYTES + _NONCE_BYTES or not hmac.compare_digest(tag, _tag(key, body)):
        return None
    nonce = body[:_NONCE_BYTES]
    payload = _mask(body[_NONCE_BYTES:], key, nonce).split(b"\x00", 1)[0]
    try:
        return CursorState(**json.loads(payload))
    except (ValueError, TypeError):
        return None
