"""multipart/form-data bodies of bulk uploads: python-multipart parses, this module keeps the parts.

A thin adapter over `python_multipart.MultipartParser` (push parser, callbacks per part): the body
is fed to it in 1 MB reads, file parts go straight to a file in `spool_dir` and small fields to
memory (capped), so a 25 MB upload is never held whole. Anything the parser refuses, a body that
ends early and one without its closing boundary raise `MultipartError` (the handler's 400).
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from python_multipart.exceptions import FormParserError
from python_multipart.multipart import MultipartParser, parse_options_header

_CHUNK = 1 << 20
_MAX_FIELD_BYTES = 1 << 16
_MAX_HEADER_BYTES = 1 << 14  # one part header line


class MultipartError(ValueError):
    """The body is not well-formed multipart/form-data."""


@dataclass
class UploadedFile:
    field: str
    filename: str
    path: Path
    size: int


@dataclass
class Form:
    fields: dict[str, str] = field(default_factory=dict)
    files: list[UploadedFile] = field(default_factory=list)

    def discard(self) -> None:
        for item in self.files:
            item.path.unlink(missing_ok=True)


def _params(value: str) -> tuple[bytes, dict[bytes, bytes]]:
    """A header's value and its parameters, parameter names lower-cased."""
    kind, params = parse_options_header(value)
    return kind, {name.lower(): raw for name, raw in params.items()}


def boundary_of(content_type: str) -> str | None:
    kind, params = _params(content_type)
    if kind != b"multipart/form-data" or b"boundary" not in params:
        return None
    return params[b"boundary"].decode("latin-1")


class _Parts:
    """The parser's callbacks: one part at a time, into `form`."""

    def __init__(self, form: Form, spool_dir: Path) -> None:
        self.form = form
        self.spool_dir = spool_dir
        self.ended = False
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._name: str | None = None
        self._sink: BinaryIO | None = None
        self._size = 0
        self._small = bytearray()

    def callbacks(self) -> dict[str, object]:
        return {"on_part_begin": self.part_begin, "on_header_field": self.header_field,
                "on_header_value": self.header_value, "on_header_end": self.header_end,
                "on_headers_finished": self.headers_finished, "on_part_data": self.part_data,
                "on_part_end": self.part_end, "on_end": self.end}

    def part_begin(self) -> None:
        self._disposition = b""
        self._name, self._size = None, 0
        self._small.clear()

    def header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def header_end(self) -> None:
        if self._header_name.strip().lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name.clear()
        self._header_value.clear()

    def headers_finished(self) -> None:
        _, params = _params(self._disposition.decode("latin-1"))
        text = {key: raw.decode("utf-8", "replace") for key, raw in params.items()}
        self._name = text.get(b"name")
        filename = text.get(b"filename")
        if filename is not None:
            handle, path = tempfile.mkstemp(suffix=".upload", dir=self.spool_dir)
            self.form.files.append(UploadedFile(self._name or "", filename, Path(path), 0))
            self._sink = os.fdopen(handle, "wb")

    def part_data(self, data: bytes, start: int, end: int) -> None:
        if self._sink is not None:
            self._sink.write(memoryview(data)[start:end])
            self._size += end - start
        elif len(self._small) + end - start <= _MAX_FIELD_BYTES:
            self._small += memoryview(data)[start:end]
        else:
            raise MultipartError(f"field {self._name!r} is too large")

    def part_end(self) -> None:
        if self._sink is not None:
            self.close()
            self.form.files[-1].size = self._size
        elif self._name is not None:
            self.form.fields[self._name] = self._small.decode("utf-8", "replace")

    def end(self) -> None:
        self.ended = True

    def close(self) -> None:
        if self._sink is not None:
            self._sink.close()
            self._sink = None


def read_form(stream: BinaryIO, length: int, boundary: str, spool_dir: Path) -> Form:
    """Read exactly `length` bytes of a multipart body; file parts are written under spool_dir.

    The whole body is read even after the closing boundary (an epilogue is dropped), so a
    keep-alive connection stays in sync; after a MultipartError the caller closes it instead.
    """
    if not boundary:
        raise MultipartError("empty boundary")
    form = Form()
    parts = _Parts(form, spool_dir)
    try:
        parser = MultipartParser(boundary.encode("latin-1"), parts.callbacks(),  # type: ignore[arg-type]
                                 max_header_size=_MAX_HEADER_BYTES)
    except (FormParserError, UnicodeEncodeError) as exc:
        raise MultipartError(f"bad boundary: {exc}") from None
    try:
        remaining = length
        while remaining > 0:
            chunk = stream.read(min(_CHUNK, remaining))
            if not chunk:
                raise MultipartError("body ended early")
            remaining -= len(chunk)
            parser.write(chunk)
        if not parts.ended:
            raise MultipartError("closing boundary missing")
    except BaseException as exc:
        parts.close()
        form.discard()
        if isinstance(exc, FormParserError):
            raise MultipartError(str(exc)) from None
        raise
    return form
