"""A streaming multipart/form-data reader: file parts go straight to disk, small fields to memory.

The stdlib `cgi` module is deprecated (and gone in 3.13); `email` parsers buffer everything. Bulk
uploads reach 25 MB, so the body is read in 1 MB chunks and scanned for the boundary.
"""
from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

_CHUNK = 1 << 20
_MAX_FIELD_BYTES = 1 << 16
_MAX_HEADER_BYTES = 1 << 14
_PARAM_RE = re.compile(r';\s*([A-Za-z0-9_*-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


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


def boundary_of(content_type: str) -> str | None:
    if not content_type.lower().startswith("multipart/form-data"):
        return None
    for name, value in _PARAM_RE.findall(content_type):
        if name.lower() == "boundary":
            return value.strip('"')
    return None


def _disposition(headers: bytes) -> tuple[str | None, str | None]:
    name = filename = None
    for line in headers.decode("utf-8", "replace").split("\r\n"):
        key, _, value = line.partition(":")
        if key.strip().lower() != "content-disposition":
            continue
        for param, raw in _PARAM_RE.findall(";" + value.split(";", 1)[1] if ";" in value else ""):
            text = raw.strip()
            if text.startswith('"') and text.endswith('"'):
                text = text[1:-1].replace('\\"', '"')
            if param.lower() == "name":
                name = text
            elif param.lower() == "filename":
                filename = text
    return name, filename


def read_form(stream: BinaryIO, length: int, boundary: str, spool_dir: Path) -> Form:
    """Read exactly `length` bytes of a multipart body; file parts are written under spool_dir."""
    delimiter = b"\r\n--" + boundary.encode("latin-1")
    form = Form()
    remaining = length
    # Prefix CRLF so the first boundary looks like every other one.
    buffer = bytearray(b"\r\n")

    def fill() -> bool:
        nonlocal remaining
        if remaining <= 0:
            return False
        chunk = stream.read(min(_CHUNK, remaining))
        if not chunk:
            raise MultipartError("body ended early")
        remaining -= len(chunk)
        buffer.extend(chunk)
        return True

    try:
        # Preamble up to the first delimiter.
        while (start := buffer.find(delimiter)) < 0:
            del buffer[: max(0, len(buffer) - len(delimiter))]
            if not fill():
                raise MultipartError("no boundary found")
        del buffer[: start + len(delimiter)]
        while True:
            # After a delimiter: "--" ends the body, otherwise CRLF then the next part's headers.
            while len(buffer) < 2 and fill():
                pass
            if buffer[:2] == b"--":
                break
            if buffer[:2] != b"\r\n":
                raise MultipartError("malformed boundary line")
            del buffer[:2]
            while (end := buffer.find(b"\r\n\r\n")) < 0:
                if len(buffer) > _MAX_HEADER_BYTES or not fill():
                    raise MultipartError("part headers too long or truncated")
            name, filename = _disposition(bytes(buffer[:end]))
            del buffer[: end + 4]
            _read_part(form, name, filename, buffer, delimiter, fill, spool_dir)
        while remaining > 0:  # epilogue: read and drop, so the connection stays usable
            chunk = stream.read(min(_CHUNK, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
    except BaseException:
        form.discard()
        raise
    return form


def _read_part(form: Form, name: str | None, filename: str | None, buffer: bytearray,
               delimiter: bytes, fill: Callable[[], bool], spool_dir: Path) -> None:
    """Move one part's body out of the stream (to a file or a small field), up to its delimiter."""
    sink = None
    size = 0
    small = bytearray()
    if filename is not None:
        sink = tempfile.NamedTemporaryFile("wb", dir=spool_dir, suffix=".upload", delete=False)
        form.files.append(UploadedFile(name or "", filename, Path(sink.name), 0))
    try:
        while True:
            found = buffer.find(delimiter)
            cut = found if found >= 0 else max(0, len(buffer) - len(delimiter))
            data = buffer[:cut]
            if sink is not None:
                sink.write(data)
            elif len(small) + len(data) <= _MAX_FIELD_BYTES:
                small.extend(data)
            else:
                raise MultipartError(f"field {name!r} is too large")
            size += len(data)
            if found >= 0:
                del buffer[: found + len(delimiter)]
                break
            del buffer[:cut]
            if not fill():
                raise MultipartError("closing boundary missing")
    finally:
        if sink is not None:
            sink.close()
            form.files[-1].size = size
    if sink is None and name is not None:
        form.fields[name] = small.decode("utf-8", "replace")
