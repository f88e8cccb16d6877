"""The multipart adapter (python-multipart underneath) and the bulk route's answers to bad bodies."""
from __future__ import annotations

import io
import random
import socket

import pytest
import requests

from lib.sandbox import multipart
from lib.sandbox.multipart import MultipartError, boundary_of, read_form
from tests.sandbox.conftest import TIMEOUT

BOUNDARY = "b0undary-XyZ"


def _body(file_bytes: bytes, *, fields: dict[str, str] | None = None, filename: str = "list.csv",
          epilogue: bytes = b"") -> bytes:
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
             f"Content-Type: text/csv\r\n\r\n".encode() + file_bytes + b"\r\n"]
    for name, value in (fields or {}).items():
        parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    return b"".join(parts) + f"--{BOUNDARY}--\r\n".encode() + epilogue


def _read(body: bytes, tmp_path, length: int | None = None) -> multipart.Form:
    return read_form(io.BytesIO(body), len(body) if length is None else length, BOUNDARY, tmp_path)


def test_boundary_of():
    assert boundary_of(f"multipart/form-data; boundary={BOUNDARY}") == BOUNDARY
    assert boundary_of(f'Multipart/Form-Data; charset=utf-8; Boundary="{BOUNDARY}"') == BOUNDARY
    assert boundary_of("application/json") is None
    assert boundary_of("multipart/form-data") is None


@pytest.mark.parametrize("chunk", [1, 7, len(BOUNDARY) + 3, 4096])
def test_parts_survive_any_read_size(tmp_path, monkeypatch, chunk):
    """File bytes that look like the start of a delimiter, split across reads, stay file bytes."""
    monkeypatch.setattr(multipart, "_CHUNK", chunk)
    rng = random.Random(chunk)
    near_miss = b"\r\n--" + BOUNDARY.encode()[:-1]  # the delimiter but its last byte
    content = b"".join(rng.choice([b"Email\r\n", b"\r\n--", near_miss, b"a@b.c,",
                                   bytes(rng.randrange(256) for _ in range(5)).replace(b"Z", b"z")])
                       for _ in range(400))
    assert b"\r\n--" + BOUNDARY.encode() not in content
    form = _read(_body(content, fields={"optimize": "fastest_turnaround", "note": "é"},
                       filename="Ünïcode list.csv", epilogue=b"\r\nepilogue"), tmp_path)
    try:
        assert form.fields == {"optimize": "fastest_turnaround", "note": "é"}
        [upload] = form.files
        assert (upload.field, upload.filename, upload.size) == ("file", "Ünïcode list.csv", len(content))
        assert upload.path.parent == tmp_path and upload.path.read_bytes() == content
    finally:
        form.discard()
    assert list(tmp_path.iterdir()) == []


def test_exactly_length_bytes_are_read(tmp_path):
    body = _body(b"Email\nx@y.org\n")
    stream = io.BytesIO(body + b"GET /next HTTP/1.1\r\n")
    form = read_form(stream, len(body), BOUNDARY, tmp_path)
    form.discard()
    assert stream.read() == b"GET /next HTTP/1.1\r\n"


@pytest.mark.parametrize("body, message", [
    (b"no boundary anywhere", "boundary"),
    (_body(b"Email\n")[:-20], "closing boundary missing"),
    (_body(b"Email\n").replace(b"\r\n\r\n", b"\r\nBad Header\r\n\r\n", 1), "header"),
    (_body(b"Email\n", fields={"optimize": "x" * (70 << 10)}), "too large"),
])
def test_malformed_bodies_raise_and_leave_no_files(tmp_path, body, message):
    with pytest.raises(MultipartError, match=message):
        _read(body, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_body_that_ends_early_raises(tmp_path):
    body = _body(b"Email\nx@y.org\n")
    with pytest.raises(MultipartError, match="ended early"):
        _read(body, tmp_path, length=len(body) + 10)
    assert list(tmp_path.iterdir()) == []


def _raw_post(sb, body: bytes, content_type: str) -> tuple[bytes, bytes]:
    """One keep-alive connection: the bulk POST, then a getcredits GET; both raw answers."""
    head = (f"POST /clearout/v2/email_verify/bulk HTTP/1.1\r\nHost: x\r\nAuthorization: {sb.clearout_token}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    follow = (f"GET /clearout/v2/email_verify/getcredits HTTP/1.1\r\nHost: x\r\n"
              f"Authorization: {sb.clearout_token}\r\n\r\n")
    with socket.create_connection(("127.0.0.1", sb.port), timeout=TIMEOUT) as conn:
        conn.sendall(head + body + follow.encode())
        conn.shutdown(socket.SHUT_WR)
        received = b""
        while chunk := conn.recv(65536):
            received += chunk
    first, _, rest = received.partition(b"HTTP/1.1 ")[2].partition(b"HTTP/1.1 ")
    return first, rest


def test_malformed_upload_is_400_and_closes_the_connection(make_sandbox):
    sb = make_sandbox(profiles=20)
    first, rest = _raw_post(sb, b"--nope\r\ngarbage", f"multipart/form-data; boundary={BOUNDARY}")
    assert first.startswith(b"400 ") and b"Connection: close" in first
    assert b'"message":"Malformed upload: ' in first
    assert rest == b""  # the pipelined request was not read as part of a broken body
    assert requests.get(sb.clearout_base + "/email_verify/getcredits", timeout=TIMEOUT,
                        headers={"Authorization": sb.clearout_token}).status_code == 200
    assert sb.stats()["bulk_uploads_accepted"] == 0


def test_accepted_upload_keeps_the_connection_in_sync(make_sandbox):
    sb = make_sandbox(profiles=20)
    first, rest = _raw_post(sb, _body(b"Email\nx@y.org\n", epilogue=b"\r\ntrailing words"),
                            f"multipart/form-data; boundary={BOUNDARY}")
    assert first.startswith(b"200 ") and b'"list_id"' in first
    assert rest.startswith(b"200 ") and b'"available_credits"' in rest
