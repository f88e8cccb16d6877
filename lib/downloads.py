"""CSV and XLSX files of a verified list (whole or filtered), safe to open in a spreadsheet.

Formula neutralisation (OWASP "CSV Injection"): a text cell or header starting with `=`, `+`, `-`,
`@`, tab or carriage return is written with a leading `'`, so Excel, LibreOffice and Google Sheets
show it as text instead of running it. That includes negative numbers and phone numbers stored as
text ("-5", "+44 20 7946 0000"): a spreadsheet would evaluate them too (OWASP neutralises them
alike), and a list's original columns are text. Number, date and yes/no columns are written as
values and left alone, because a number cell cannot carry a formula.

Frames leaving through here must carry the 15 declared Clearout columns (lib.columns).
"""
from __future__ import annotations

import io
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import xlsxwriter

from lib import columns as co

from lib.errors import UserError

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
EXCEL_MAX_DATA_ROWS = 1_048_575  # 1,048,576 rows per sheet, one of them the header
EXCEL_MAX_COLUMNS = 16_384
_CSV_CHUNK_ROWS = 100_000  # convert and write in slices so a 1M-row file never exists twice in memory
_XLSX_CHUNK_ROWS = 20_000
_TEXT = pa.large_string()
_TRIGGERS = pa.array(FORMULA_TRIGGERS, _TEXT)
_QUOTE = pa.scalar("'", _TEXT)
_EMPTY = pa.scalar("", _TEXT)


class DownloadError(UserError):
    """The frame cannot be written as asked."""


class TooManyRowsForExcel(DownloadError):
    """The frame does not fit on one Excel sheet."""


def neutralise_text(value: str) -> str:
    """One cell or header as it is written: a leading `'` when a spreadsheet would run it as a formula."""
    return "'" + value if value[:1] in FORMULA_TRIGGERS else value


def neutralise_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` with text columns and headers neutralised; other columns untouched."""
    out = pd.DataFrame({i: _cell_values(frame.iloc[:, i]) for i in range(frame.shape[1])}, index=frame.index)
    out.columns = [neutralise_text(str(name)) for name in frame.columns]
    return out


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """The frame as UTF-8 CSV (header row, no index), neutralised.

    Raises:
        lib.columns.ClearoutColumnsError: a declared Clearout column is missing or malformed.
    """
    sink = io.BytesIO()
    _write_csv(frame, sink)
    return sink.getvalue()


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """`to_csv_bytes` streamed to a file, for lists too big to hold twice in memory. Returns the path."""
    path = Path(path)
    with path.open("wb") as sink:
        _write_csv(frame, sink)
    return path


def to_xlsx_bytes(frame: pd.DataFrame, sheet_name: str = "Verified") -> bytes:
    """The frame as one XLSX sheet (bold frozen header, filters), neutralised; dates as real dates.

    Slow for big lists: XlsxWriter is pure Python, about 9,000 rows of 26 columns a second here
    (a 1,000,000-row list takes about 2 minutes), so offer CSV first for large lists.

    Raises:
        TooManyRowsForExcel: more than 1,048,575 rows or 16,384 columns (Excel's sheet limits).
        lib.columns.ClearoutColumnsError: a declared Clearout column is missing or malformed.
    """
    check_declared(frame)
    rows, width = frame.shape
    if rows > EXCEL_MAX_DATA_ROWS or width > EXCEL_MAX_COLUMNS:
        raise TooManyRowsForExcel(
            f"This file has {rows:,} rows and {width:,} columns; an Excel sheet holds at most "
            f"{EXCEL_MAX_DATA_ROWS:,} rows below the header and {EXCEL_MAX_COLUMNS:,} columns. "
            "Download it as CSV, or filter it to fewer rows.")
    sink = io.BytesIO()
    # constant_memory writes row by row through temporary files instead of holding every cell;
    # strings_to_* off: text stays text (no formulas, links or numbers guessed from it).
    workbook = xlsxwriter.Workbook(sink, {
        "constant_memory": True, "strings_to_formulas": False, "strings_to_urls": False,
        "strings_to_numbers": False, "default_date_format": "yyyy-mm-dd hh:mm:ss"})
    sheet = workbook.add_worksheet(sheet_name[:31])
    header = workbook.add_format({"bold": True, "bg_color": "#EEEEEE", "bottom": 1})
    for position, name in enumerate(frame.columns):
        title = neutralise_text(str(name))
        sheet.set_column(position, position, min(max(len(title) + 2, 10), 40))
        sheet.write_string(0, position, title, header)
    sheet.freeze_panes(1, 0)
    sheet.autofilter(0, 0, rows, max(width - 1, 0))
    for start in range(0, rows, _XLSX_CHUNK_ROWS):
        # Python cell values for a slice at a time: a whole 1M-row list as objects would take gigabytes.
        part = frame.iloc[start:start + _XLSX_CHUNK_ROWS]
        columns = [_xlsx_values(part.iloc[:, i]) for i in range(width)]
        for number, values in enumerate(zip(*columns), start=start + 1):
            sheet.write_row(number, 0, values)
    workbook.close()
    return sink.getvalue()


def check_declared(frame: pd.DataFrame) -> None:
    """Raise ClearoutColumnsError unless the 15 Clearout columns are present with declared values."""
    missing = [name for name in co.CLEAROUT_COLUMN_NAMES if name not in frame.columns]
    if missing:
        raise co.ClearoutColumnsError("Cannot download without Clearout column(s): " + ", ".join(missing))
    if any(frame[c.name].dtype != c.dtype for c in co.CLEAROUT_COLUMNS):
        # Not the frame append_verdicts made: let the declaration check its values (raises if off).
        co.conform_clearout_columns(frame[list(co.CLEAROUT_COLUMN_NAMES)])


# ---- CSV ------------------------------------------------------------------------------------------

def _write_csv(frame: pd.DataFrame, sink: BinaryIO) -> None:
    check_declared(frame)
    names = [neutralise_text(str(name)) for name in frame.columns]
    schema = pa.schema([pa.field(name, _arrow_type(frame.iloc[:, i])) for i, name in enumerate(names)])
    options = pacsv.WriteOptions(include_header=True, quoting_style="needed")
    with pacsv.CSVWriter(sink, schema, write_options=options) as writer:
        for start in range(0, len(frame), _CSV_CHUNK_ROWS):
            part = frame.iloc[start:start + _CSV_CHUNK_ROWS]
            arrays = [_arrow_values(part.iloc[:, i]).cast(schema.field(i).type) for i in range(part.shape[1])]
            writer.write_table(pa.Table.from_arrays(arrays, schema=schema))


def _arrow_type(values: pd.Series) -> pa.DataType:
    """The CSV type of a column: numbers and booleans as themselves, everything else text."""
    dtype = values.dtype
    if pd.api.types.is_bool_dtype(dtype) or (pd.api.types.is_numeric_dtype(dtype)
                                             and not isinstance(dtype, pd.CategoricalDtype)):
        return pa.array(values.iloc[:0]).type
    return _TEXT


def _arrow_values(values: pd.Series) -> pa.Array | pa.ChunkedArray:
    if _arrow_type(values) != _TEXT:
        return pa.array(values)
    return _neutralise(_arrow_text(values))


def _arrow_text(values: pd.Series) -> pa.Array | pa.ChunkedArray:
    """Any column as Arrow text: dates as "YYYY-MM-DD HH:MM:SS" UTC, categories decoded, objects stringified."""
    if _is_datetime(values):
        # A cast, not strftime: the same text at a thirtieth of the cost.
        seconds = pc.cast(pa.array(_naive_utc(values)), pa.timestamp("s"), safe=False)  # whole seconds
        return pc.cast(seconds, _TEXT)
    if isinstance(values.dtype, pd.CategoricalDtype):
        return pa.array(values).cast(_TEXT)
    if not isinstance(values.dtype, pd.StringDtype):
        values = values.astype("string[pyarrow]")
    return pa.array(values.array).cast(_TEXT)


def _is_datetime(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(values.dtype)


def _naive_utc(values: pd.Series) -> pd.Series:
    return values.dt.tz_convert("UTC").dt.tz_localize(None) if values.dt.tz is not None else values


def _neutralise(text: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    risky = pc.is_in(pc.utf8_slice_codeunits(text, 0, 1), value_set=_TRIGGERS)
    return pc.if_else(risky, pc.binary_join_element_wise(_QUOTE, text, _EMPTY), text)


def _cell_values(values: pd.Series) -> pd.Series:
    """A column as written: text neutralised (as string[pyarrow]), anything else unchanged."""
    if _arrow_type(values) != _TEXT or _is_datetime(values):
        return values
    return pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array(_neutralise(_arrow_text(values)))),
                     index=values.index, name=values.name)


# ---- XLSX -----------------------------------------------------------------------------------------

def _xlsx_values(values: pd.Series) -> list[Any]:
    """One column as Python cell values: None for blanks, datetimes naive UTC, text neutralised."""
    if _is_datetime(values):
        stamps = _naive_utc(values).astype("datetime64[us]").to_numpy().astype(object)  # datetime or None
        return [None if pd.isna(v) else v for v in stamps]
    if _arrow_type(values) != _TEXT:
        numbers = values.astype(object).where(values.notna(), None)
        return [v.item() if isinstance(v, np.generic) else v for v in numbers.tolist()]
    cells: list[Any] = pa.chunked_array(_neutralise(_arrow_text(values))).to_pylist()
    return cells
