"""CSV files to Parquet: encoding and delimiter sniffing, column detection, streaming conversion.

A 200 MB upload must not exist in several copies: pyarrow's streaming reader parses it block by
block and each block goes straight into a Parquet row group. Every column stays a string, headers
as in the file (deduplicated when they repeat), rows in file order.
"""
from __future__ import annotations

import codecs
import csv
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from lib.errors import UserError

# Small parse blocks keep the reader's buffers small (1 MB: ~90 MB peak for a 200 MB file, against
# ~290 MB with 8 MB blocks, and faster); blocks are gathered into row groups of about 16 MB.
BLOCK_BYTES = 1 << 20
ROW_GROUP_BYTES = 16 << 20
SNIFF_BYTES = 64 << 10
DELIMITERS = (",", ";", "\t", "|")

# Headers are compared lower-cased without spaces, underscores, hyphens and dots, so that
# "Email", "E-mail", "email_address" and "Email Address" all match.
EMAIL_HEADERS = ("email", "emails", "emailaddress", "emailaddresses", "emailid")
# Only the CleverTap identity itself: the export step writes to profiles by this key, and a
# column that merely looks like an id (User ID, Customer ID) would create new profiles there.
IDENTITY_HEADERS = ("identity",)
OBJECT_ID_HEADERS = ("objectid", "clevertapid", "ctid")
MSG_EMAIL_HEADERS = ("msgemail",)

# File signatures of things people upload by mistake, with what to tell them.
_BINARY_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "an Excel workbook or a zip archive, not a CSV file: in Excel use File → Save As → "
                    "CSV UTF-8, then add that file"),
    (b"\xd0\xcf\x11\xe0", "an old Excel (.xls) workbook, not a CSV file: in Excel use File → Save As → "
                          "CSV UTF-8, then add that file"),
    (b"\x89PNG", "a PNG image, not a CSV file"),
    (b"\xff\xd8\xff", "a JPEG image, not a CSV file"),
    (b"GIF8", "a GIF image, not a CSV file"),
    (b"%PDF", "a PDF document, not a CSV file"),
    (b"\x1f\x8b", "a gzip archive, not a CSV file: unpack it first"),
)
_UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class CsvImportError(UserError):
    """The file cannot become a list; `str()` says why and what to do."""


@dataclass(frozen=True)
class DetectedColumns:
    email: str | None
    identity: str | None
    object_id: str | None
    msg_email: str | None


@dataclass(frozen=True)
class CsvConversion:
    """What `convert_csv` wrote: the Parquet file, its shape and how the file was read."""

    path: Path
    rows: int
    columns: tuple[str, ...]
    detected: DetectedColumns
    encoding: str
    delimiter: str
    notice: str | None  # something the user should know (an encoding fallback), else None

    @property
    def email_column(self) -> str:
        """The address column (a conversion exists only when one was found)."""
        assert self.detected.email is not None
        return self.detected.email


def header_key(header: str) -> str:
    return re.sub(r"[\s_.\-]+", "", header.strip().lower())


def _first_match(headers: Iterable[str], accepted: tuple[str, ...]) -> str | None:
    keyed = [(header_key(h), h) for h in headers]
    for wanted in accepted:  # the order of `accepted` is the preference
        for key, header in keyed:
            if key == wanted:
                return header
    return None


def detect_columns(headers: Iterable[str]) -> DetectedColumns:
    """Find the email, identity, objectId and MSG-email columns by header (None when absent)."""
    headers = list(headers)
    return DetectedColumns(
        email=_first_match(headers, EMAIL_HEADERS),
        identity=_first_match(headers, IDENTITY_HEADERS),
        object_id=_first_match(headers, OBJECT_ID_HEADERS),
        msg_email=_first_match(headers, MSG_EMAIL_HEADERS))


def unique_headers(headers: list[str]) -> list[str]:
    """Headers as in the file, except blanks get a name and repeats a suffix (Parquet needs both)."""
    seen: set[str] = set()
    out = []
    for i, header in enumerate(headers):
        base = header.strip() or f"Column {i + 1}"
        name, n = base, 2
        while name in seen:
            name, n = f"{base} ({n})", n + 1
        seen.add(name)
        out.append(name)
    return out


# ---- reading the source ------------------------------------------------------------------------
def _size_of(source: BinaryIO | Path) -> int:
    if isinstance(source, Path):
        return source.stat().st_size
    position = source.tell()
    size = source.seek(0, os.SEEK_END)
    source.seek(position)
    return size


def _chunks(source: BinaryIO | Path, size: int = 1 << 20) -> Iterable[bytes]:
    if isinstance(source, Path):
        with source.open("rb") as handle:
            while chunk := handle.read(size):
                yield chunk
    else:
        source.seek(0)
        while chunk := source.read(size):
            yield chunk
        source.seek(0)


def _decodes_as(source: BinaryIO | Path, encoding: str) -> bool:
    decoder = codecs.getincrementaldecoder(encoding)("strict")
    try:
        for chunk in _chunks(source):
            decoder.decode(chunk)
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def check_binary(head: bytes) -> None:
    """Reject what is plainly not text (images, workbooks, archives) with a message naming it."""
    for signature, what in _BINARY_SIGNATURES:
        if head.startswith(signature):
            raise CsvImportError(f"This file is {what}.")
    if not head.startswith(_UTF16_BOMS) and b"\x00" in head:
        raise CsvImportError("This file is binary, not a CSV text file: export the list as CSV and add that file.")


def choose_encoding(source: BinaryIO | Path, head: bytes) -> tuple[str, str | None]:
    """The encoding to read with, and a notice when it is a guess.

    UTF-8 (with or without BOM) and UTF-16 with a BOM are certain. Anything else was most likely
    saved by Excel on Windows: Windows-1252, or Latin-1 which decodes any byte. We accept those with
    a notice rather than refuse, because the addresses themselves are ASCII; only accented names
    could come out wrong, and the preview shows them.
    """
    if head.startswith(_UTF16_BOMS):
        return "utf-16", None
    if _decodes_as(source, "utf-8"):
        return "utf-8", None
    fallback = "cp1252" if _decodes_as(source, "cp1252") else "latin-1"
    label = "Windows-1252" if fallback == "cp1252" else "Latin-1"
    return fallback, (f"The file is not UTF-8: it was read as {label}. Check accented names in the "
                      "preview; if they look wrong, save the file as CSV UTF-8 and add it again.")


def _sample_text(head: bytes, encoding: str) -> tuple[str, bool]:
    """Decoded start of the file, and whether it is the whole file."""
    text = codecs.getincrementaldecoder(encoding)("replace").decode(head)
    return text.lstrip("\ufeff"), len(head) < SNIFF_BYTES


def sniff_delimiter(sample: str, complete: bool) -> str:
    """The delimiter giving the most columns, consistently, over the sample's first records."""
    if not complete and "\n" in sample:
        sample = sample[: sample.rindex("\n")]  # a cut last line would look ragged
    best, best_score = ",", (0.0, 1)
    for delimiter in DELIMITERS:
        try:
            records = [r for r in csv.reader(io.StringIO(sample, newline=""), delimiter=delimiter) if r][:50]
        except csv.Error:
            continue
        if not records or len(records[0]) < 2:
            continue
        width = len(records[0])
        consistent = sum(len(r) == width for r in records) / len(records)
        score = (consistent, width)
        if score > best_score:
            best, best_score = delimiter, score
    return best


def read_header(sample: str, delimiter: str) -> tuple[list[str], int]:
    """The header record and how many physical lines to skip to pass it (blank lines before it count)."""
    body = sample.lstrip("\r\n")
    blank_lines = sample[: len(sample) - len(body)].count("\n")
    header = next(csv.reader(io.StringIO(body, newline=""), delimiter=delimiter), [])
    return header, blank_lines + 1


# ---- conversion ----------------------------------------------------------------------------------
def convert_csv(source: BinaryIO | Path, destination: Path, *, max_bytes: int,
                block_bytes: int = BLOCK_BYTES, row_group_bytes: int = ROW_GROUP_BYTES) -> CsvConversion:
    """Stream a CSV file into a Parquet file of string columns.

    On any rejection nothing is left at `destination`.

    Raises:
        CsvImportError: too big, empty, header only, binary, ragged rows, or no email column.
    """
    size = _size_of(source)
    if size > max_bytes:
        # MB as Streamlit's uploader counts them (2**20 bytes), so both say the same limit.
        raise CsvImportError(f"The file is {size / 2**20:,.1f} MB; the limit is {max_bytes / 2**20:,.0f} MB "
                             "(UPLOAD_MAX_MB). Split it into smaller files, or raise the limit.")
    head = next(iter(_chunks(source, SNIFF_BYTES)), b"")
    if not head.strip(b" \t\r\n\xef\xbb\xbf"):
        raise CsvImportError("The file is empty: export the list again, with its rows.")
    check_binary(head)
    encoding, notice = choose_encoding(source, head)
    sample, complete = _sample_text(head, encoding)
    delimiter = sniff_delimiter(sample, complete)
    raw_header, skip_rows = read_header(sample, delimiter)
    columns = unique_headers(raw_header)
    detected = detect_columns(columns)
    if detected.email is None:
        shown = ", ".join(columns[:20]) + (f" and {len(columns) - 20} more" if len(columns) > 20 else "")
        raise CsvImportError(f"No email column found. The file has the columns: {shown}. Name the address "
                             "column Email (or Email address), then add the file again.")
    try:
        rows = _stream(source, destination, columns, skip_rows, encoding, delimiter, block_bytes,
                       row_group_bytes)
    except BaseException:
        destination.unlink(missing_ok=True)
        raise
    if rows == 0:
        destination.unlink(missing_ok=True)
        raise CsvImportError(f"The file has a header ({', '.join(columns[:10])}) but no rows: export the "
                             "list again, with its rows.")
    return CsvConversion(path=destination, rows=rows, columns=tuple(columns), detected=detected,
                         encoding=encoding, delimiter=delimiter, notice=notice)


def _stream(source: BinaryIO | Path, destination: Path, columns: list[str], skip_rows: int,
            encoding: str, delimiter: str, block_bytes: int, row_group_bytes: int) -> int:
    bad_rows: list[pa_csv.InvalidRow] = []

    def on_invalid_row(row: pa_csv.InvalidRow) -> str:
        bad_rows.append(row)
        return "error"

    schema = pa.schema([(name, pa.string()) for name in columns])
    read_options = pa_csv.ReadOptions(column_names=columns, skip_rows=skip_rows, encoding=encoding,
                                      block_size=block_bytes, use_threads=False)
    parse_options = pa_csv.ParseOptions(delimiter=delimiter, newlines_in_values=True,
                                        invalid_row_handler=on_invalid_row)
    convert_options = pa_csv.ConvertOptions(column_types=schema, strings_can_be_null=False,
                                            quoted_strings_can_be_null=False)
    handle = source.open("rb") if isinstance(source, Path) else source
    rows = 0
    try:
        handle.seek(0)
        reader = pa_csv.open_csv(handle, read_options=read_options, parse_options=parse_options,
                                 convert_options=convert_options)
        destination.parent.mkdir(parents=True, exist_ok=True)
        with pq.ParquetWriter(destination, schema) as writer:
            pending: list[pa.RecordBatch] = []
            for batch in reader:
                pending.append(batch)
                rows += batch.num_rows
                if sum(b.nbytes for b in pending) >= row_group_bytes:
                    writer.write_table(pa.Table.from_batches(pending, schema))
                    pending.clear()
            if any(b.num_rows for b in pending):
                writer.write_table(pa.Table.from_batches(pending, schema))
    except pa.ArrowInvalid:
        if bad_rows:
            row = bad_rows[0]
            text = row.text if len(row.text) <= 80 else row.text[:79] + "…"
            where = f"Row {row.number}" if row.number is not None else "A row"
            raise CsvImportError(
                f"{where} of the file (the header is row 1) has {row.actual_columns} values where the "
                f"header has {row.expected_columns}: {text!r}. Fix that row (an unquoted "
                f"{_delimiter_name(delimiter)} inside a value?) and add the file again.") from None
        raise CsvImportError("The file could not be read as CSV: check that it is a CSV export and "
                             "add it again.") from None
    finally:
        if isinstance(source, Path):
            handle.close()
        else:
            source.seek(0)
    return rows


def _delimiter_name(delimiter: str) -> str:
    return {",": "comma", ";": "semicolon", "\t": "tab", "|": "vertical bar"}[delimiter]
