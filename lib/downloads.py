"""CSV and XLSX files of a verified list (whole or filtered), written a batch at a time.

Two CSV flavours, named plainly on the page:

* **for a spreadsheet** (`SPREADSHEET`): UTF-8 with a byte-order mark, so Excel reads "zoë" as
  written, and formulas neutralised (OWASP "CSV Injection"): a text cell or header starting with `=`,
  `+`, `-`, `@`, tab or carriage return gets a leading `'`, so Excel, LibreOffice and Google Sheets
  show it as text instead of running it. That includes text such as "-5" or "+44 20 7946 0000",
  which a spreadsheet would evaluate too;
* **exact, for re-import** (`EXACT`): UTF-8 without a BOM, every value as it is (identifiers such as
  CleverTap objectIds starting with "-" stay matchable).

XLSX cells are typed: text is written as a string cell, which no spreadsheet runs as a formula, so
XLSX needs no apostrophe and gets none. Number, date and yes/no columns are written as values.

The writers take Arrow record batches (from the engine, lib.resultset.batches), so a ten-million-row
download streams with flat memory; the pandas entry points wrap a frame into batches.
"""
from __future__ import annotations

import io
from collections.abc import Iterable, Iterator
from typing import Any, BinaryIO

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import xlsxwriter

from lib import columns as co

from lib.errors import UserError

SPREADSHEET, EXACT = "spreadsheet", "exact"
FLAVOURS = (SPREADSHEET, EXACT)
BOM = "\ufeff".encode()
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
EXCEL_MAX_DATA_ROWS = 1_048_575  # 1,048,576 rows per sheet, one of them the header
EXCEL_MAX_COLUMNS = 16_384
_CHUNK_ROWS = 100_000  # a pandas frame goes out in slices: a 1M-row file never exists twice in memory
_TEXT = pa.large_string()
_TRIGGERS = pa.array(FORMULA_TRIGGERS, _TEXT)
_QUOTE = pa.scalar("'", _TEXT)
_EMPTY = pa.scalar("", _TEXT)


class DownloadError(UserError):
    """The frame cannot be written as asked."""


class TooManyRowsForExcel(DownloadError):
    """The frame does not fit on one Excel sheet."""


def neutralise_text(value: str) -> str:
    """One cell or header as a spreadsheet CSV writes it: a leading `'` when it would run as a formula."""
    return "'" + value if value[:1] in FORMULA_TRIGGERS else value


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` with text columns and headers neutralised; other columns untouched."""
    out = pd.DataFrame({i: _cell_values(frame.iloc[:, i]) for i in range(frame.shape[1])}, index=frame.index)
    out.columns = [neutralise_text(str(name)) for name in frame.columns]
    return out


def _cell_values(values: pd.Series) -> pd.Series:
    """A column as a spreadsheet CSV writes it: text neutralised (as string[pyarrow]), anything else unchanged."""
    if _is_number(values.dtype) or isinstance(values.dtype, pd.DatetimeTZDtype) or \
            pd.api.types.is_datetime64_dtype(values.dtype):
        return values
    text = pa.chunked_array([_neutralise(_text(pa.array(values.astype("string[pyarrow]").array)))])
    return pd.Series(pd.arrays.ArrowStringArray(text), index=values.index, name=values.name)


def _is_number(dtype: Any) -> bool:
    return bool(pd.api.types.is_bool_dtype(dtype) or (pd.api.types.is_numeric_dtype(dtype)
                                                      and not isinstance(dtype, pd.CategoricalDtype)))


# ---- pandas entry points ---------------------------------------------------------------------------

def check_declared(frame: pd.DataFrame) -> None:
    """Raise ClearoutColumnsError unless the 15 Clearout columns are present with declared values."""
    missing = [name for name in co.CLEAROUT_COLUMN_NAMES if name not in frame.columns]
    if missing:
        raise co.ClearoutColumnsError("Cannot download without Clearout column(s): " + ", ".join(missing))
    if any(frame[c.name].dtype != c.dtype for c in co.CLEAROUT_COLUMNS):
        # Not the frame append_verdicts made: let the declaration check its values (raises if off).
        co.conform_clearout_columns(frame[list(co.CLEAROUT_COLUMN_NAMES)])


def frame_batches(frame: pd.DataFrame) -> tuple[pa.Schema, Iterator[pa.RecordBatch]]:
    """A frame as Arrow batches of at most _CHUNK_ROWS rows (positional: duplicate names survive)."""
    names = [str(name) for name in frame.columns]
    plain = frame.set_axis(range(frame.shape[1]), axis=1).reset_index(drop=True)
    schema = pa.Schema.from_pandas(plain.iloc[:0], preserve_index=False)
    schema = pa.schema([pa.field(name, field.type) for name, field in zip(names, schema)])

    def batches() -> Iterator[pa.RecordBatch]:
        for start in range(0, len(plain), _CHUNK_ROWS):
            part = pa.RecordBatch.from_pandas(plain.iloc[start:start + _CHUNK_ROWS], preserve_index=False)
            yield pa.RecordBatch.from_arrays(part.columns, schema=schema)
    return schema, batches()


def to_csv_bytes(frame: pd.DataFrame, flavour: str = SPREADSHEET) -> bytes:
    """The frame as a CSV file of `flavour` (header row, no index).

    Raises:
        lib.columns.ClearoutColumnsError: a declared Clearout column is missing or malformed.
    """
    check_declared(frame)
    schema, batches = frame_batches(frame)
    return b"".join(csv_chunks(schema, batches, flavour=flavour))


def to_xlsx_bytes(frame: pd.DataFrame, sheet_name: str = "Verified") -> bytes:
    """The frame as one XLSX sheet (see write_xlsx).

    Raises:
        TooManyRowsForExcel: more than 1,048,575 rows or 16,384 columns (Excel's sheet limits).
        lib.columns.ClearoutColumnsError: a declared Clearout column is missing or malformed.
    """
    check_declared(frame)
    check_fits_excel(len(frame), frame.shape[1])
    schema, batches = frame_batches(frame)
    sink = io.BytesIO()
    write_xlsx(schema, batches, sink, rows=len(frame), sheet_name=sheet_name)
    return sink.getvalue()


def check_fits_excel(rows: int, width: int) -> None:
    """Raise TooManyRowsForExcel when a file of this shape does not fit one sheet."""
    if rows > EXCEL_MAX_DATA_ROWS or width > EXCEL_MAX_COLUMNS:
        raise TooManyRowsForExcel(
            f"This file has {rows:,} rows and {width:,} columns; an Excel sheet holds at most "
            f"{EXCEL_MAX_DATA_ROWS:,} rows below the header and {EXCEL_MAX_COLUMNS:,} columns. "
            "Download it as CSV, or filter it to fewer rows.")


# ---- CSV ------------------------------------------------------------------------------------------

def csv_chunks(schema: pa.Schema, batches: Iterable[pa.RecordBatch], *, flavour: str = SPREADSHEET
               ) -> Iterator[bytes]:
    """A CSV file as a stream of byte chunks (one per batch, the header first)."""
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown CSV flavour {flavour!r}")
    safe = flavour == SPREADSHEET
    names = [neutralise_text(f.name) if safe else f.name for f in schema]
    out_schema = pa.schema([pa.field(name, _csv_type(f.type)) for name, f in zip(names, schema)])
    buffer = io.BytesIO()
    if safe:
        buffer.write(BOM)
    with pacsv.CSVWriter(buffer, out_schema, write_options=pacsv.WriteOptions(quoting_style="needed")) as writer:
        yield _drain(buffer)
        for batch in batches:
            columns = [_csv_values(batch.column(i), safe=safe) for i in range(batch.num_columns)]
            writer.write_batch(pa.RecordBatch.from_arrays(columns, schema=out_schema))
            yield _drain(buffer)
    yield _drain(buffer)


def _drain(buffer: io.BytesIO) -> bytes:
    data = buffer.getvalue()
    buffer.seek(0)
    buffer.truncate()
    return data


def _csv_type(kind: pa.DataType) -> pa.DataType:
    """Numbers and booleans stay themselves in a CSV; everything else is written as text."""
    return kind if pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind) else _TEXT


def _csv_values(values: pa.Array, *, safe: bool) -> pa.Array:
    if _csv_type(values.type) != _TEXT:
        return values
    text = _text(values)
    return _neutralise(text) if safe else text


def _text(values: pa.Array) -> pa.Array:
    """Any column as Arrow text: dates as "YYYY-MM-DD HH:MM:SS" UTC, categories decoded."""
    kind = values.type
    if pa.types.is_dictionary(kind):
        return _text(values.dictionary_decode())
    if pa.types.is_timestamp(kind):
        # A cast, not strftime: the same text at a thirtieth of the cost. Arrow keeps UTC instants,
        # so dropping the zone leaves UTC wall time.
        seconds = pc.cast(values.cast(pa.timestamp(kind.unit)), pa.timestamp("s"), safe=False)
        return pc.cast(seconds, _TEXT)
    return pc.cast(values, _TEXT)


def _neutralise(text: pa.Array) -> pa.Array:
    risky = pc.is_in(pc.utf8_slice_codeunits(text, 0, 1), value_set=_TRIGGERS)
    return pc.if_else(risky, pc.binary_join_element_wise(_QUOTE, text, _EMPTY), text)


# ---- XLSX -----------------------------------------------------------------------------------------

def write_xlsx(schema: pa.Schema, batches: Iterable[pa.RecordBatch], sink: BinaryIO | str, *, rows: int,
               sheet_name: str = "Verified") -> None:
    """One XLSX sheet (bold frozen header, filters); text as string cells, dates as real dates.

    Slow for big lists: XlsxWriter is pure Python, about 9,000 rows of 26 columns a second here
    (a 1,000,000-row list takes about 2 minutes), so the page offers CSV first for large lists.
    """
    check_fits_excel(rows, len(schema))
    # constant_memory writes row by row through temporary files instead of holding every cell;
    # strings_to_* off: text stays text (no formulas, links or numbers guessed from it).
    workbook = xlsxwriter.Workbook(sink, {
        "constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
        "strings_to_numbers": False, "default_date_format": "yyyy-mm-dd hh:mm:ss"})
    sheet = workbook.add_worksheet(sheet_name[:31])
    header = workbook.add_format({"bold": True, "bg_color": "#EEEEEE", "bottom": 1})
    for position, field in enumerate(schema):
        sheet.set_column(position, position, min(max(len(field.name) + 2, 10), 40))
        sheet.write_string(0, position, field.name, header)
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, rows, max(len(schema) - 1, 0))
    number = 1
    for batch in batches:
        columns = [_xlsx_values(batch.column(i)) for i in range(batch.num_columns)]
        for values in zip(*columns):
            sheet.write_row(number, 0, values)
            number += 1
    workbook.close()


def _xlsx_values(values: pa.Array) -> list[Any]:
    """One column as Python cell values: None for blanks, datetimes naive UTC, text as text."""
    kind = values.type
    if pa.types.is_dictionary(kind):
        return _xlsx_values(values.dictionary_decode())
    if pa.types.is_timestamp(kind):
        return values.cast(pa.timestamp("us")).to_pylist()  # type: ignore[no-any-return]
    if _csv_type(kind) != _TEXT:
        return values.to_pylist()  # type: ignore[no-any-return]
    return pc.cast(values, _TEXT).to_pylist()  # type: ignore[no-any-return]
