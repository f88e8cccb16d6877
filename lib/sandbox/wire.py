"""The request and response shapes the route handlers see; the HTTP server translates to and from them."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from email.message import Message
from pathlib import Path
from typing import Any, BinaryIO


class BadRequestBody(ValueError):
    """The body is not the JSON the route expects."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: Message
    body: bytes = b""
    # For streamed uploads: the socket file and how many bytes of body are left to read.
    stream: BinaryIO | None = None
    content_length: int = 0
    received: float = 0.0  # time.monotonic() when the request line arrived

    def json(self) -> Any:
        if not self.body:
            raise BadRequestBody("empty body")
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BadRequestBody(str(exc)) from None

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"
    file: Path | None = None  # streamed from disk instead of `body`
    close: bool = False       # the request body was not fully read: end the connection after this
    wait_s: float | None = None  # a wait this answer announces without Retry-After (Clearout's 429)


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return Response(status, body, dict(headers or {}))
