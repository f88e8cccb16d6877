"""lib/downloads.py: formula neutralisation, the declaration check, CSV and XLSX that read back."""
from __future__ import annotations

import io
import re
import zipfile
from xml.etree import ElementTree

import pandas as pd
import pytest

from lib import columns as co
from lib import downloads
from lib.merge import append_verdicts

TEXT = "string[pyarrow]"
TRIGGERS = ["=1+1", "+1", "-5", "@SUM(A1)", "\tcmd", "\rcmd"]
HARMLESS = ["a=b", "", " =1", "'=1", "5", "Ünïcode ✓"]


@pytest.fixture
def frame() -> pd.DataFrame:
    """A merged list: text cells that look like formulas, a numeric column, the Clearout columns."""
    notes = TRIGGERS + HARMLESS + [None]
    emails = [f"u{i}@acme.io" for i in range(len(notes) - 1)] + [None]
    rows = pd.DataFrame({"Email": emails, "Note": notes, "=Header": ["x"] * len(notes),
                         "Score": pd.array(range(-6, len(notes) - 6), dtype="Int64")}).astype(
        {"Email": TEXT, "Note": TEXT, "=Header": TEXT})
    verdicts = co.conform_clearout_columns(pd.DataFrame({
        "email": emails[:-1], co.STATUS: "valid", co.SAFE_TO_SEND: "yes", co.REASON: "-Success",
        co.SUGGESTED: None, co.BOUNCE_TYPE: None, co.DISPOSABLE: "No", co.FREE: "No", co.ROLE: "No",
        co.GIBBERISH: "No", co.ACCOUNT: "u", co.DOMAIN: "acme.io", co.MX_RECORD: "mx.acme.io",
        co.SMTP_PROVIDER: "google", co.VERIFIED_AT: "2025-11-01T10:20:30.456Z", co.TIME_TAKEN: "120"}),
        keep=("email",))
    verdicts[co.VERDICT_SOURCE] = pd.Series(co.SOURCE_NEW, index=verdicts.index, dtype=co.SOURCE_DTYPE)
    return append_verdicts(rows, "Email", verdicts).set_axis(range(100, 100 + len(notes)))


@pytest.mark.parametrize("text", TRIGGERS)
def test_each_trigger_character_is_neutralised(text):
    assert downloads.neutralise_text(text) == "'" + text


@pytest.mark.parametrize("text", HARMLESS)
def test_harmless_text_is_left_alone(text):
    assert downloads.neutralise_text(text) == text


def test_neutralise_formulas_touches_text_and_headers_only(frame):
    out = downloads.neutralise_formulas(frame)
    assert "'=Header" in out.columns and "=Header" not in out.columns
    assert out["Note"].tolist()[:len(TRIGGERS)] == ["'" + t for t in TRIGGERS]
    assert out["Note"].tolist()[len(TRIGGERS):-1] == HARMLESS
    assert pd.isna(out["Note"].iloc[-1])
    assert out["Score"].equals(frame["Score"])  # numbers stay numbers, -6 included
    assert out[co.REASON].iloc[0] == "'-Success"
    assert out[co.VERIFIED_AT].equals(frame[co.VERIFIED_AT])


def _read_csv(data: bytes) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False)


def test_csv_reads_back_neutralised(frame):
    before = frame.copy(deep=True)
    back = _read_csv(downloads.to_csv_bytes(frame))
    pd.testing.assert_frame_equal(frame, before)  # input untouched
    assert list(back.columns) == ["Email", "Note", "'=Header", "Score", *co.CLEAROUT_COLUMN_NAMES,
                                  co.VERDICT_SOURCE]
    assert back["Note"].tolist() == ["'" + t for t in TRIGGERS] + HARMLESS + [""]
    assert back["Score"].tolist() == [str(n) for n in range(-6, len(frame) - 6)]
    assert back[co.VERIFIED_AT].iloc[0] == "2025-11-01 10:20:30"
    assert back[co.STATUS].tolist() == [co.VALID] * (len(frame) - 1) + [co.NO_EMAIL]


def test_every_cell_of_the_csv_is_safe(frame):
    back = _read_csv(downloads.to_csv_bytes(frame))
    text_columns = [c for c in back.columns if c != "Score"]
    cells = list(back.columns) + back[text_columns].to_numpy().ravel().tolist()
    assert not [c for c in cells if c[:1] in downloads.FORMULA_TRIGGERS]


def test_csv_clearout_columns_conform_again(frame):
    back = _read_csv(downloads.to_csv_bytes(frame.drop(columns=["=Header"])))
    again = co.conform_clearout_columns(back.replace({"": None}))
    original = frame[list(co.CLEAROUT_COLUMN_NAMES)].reset_index(drop=True)
    pd.testing.assert_frame_equal(again.drop(columns=[co.REASON, co.VERIFIED_AT]),
                                  original.drop(columns=[co.REASON, co.VERIFIED_AT]))
    assert (again[co.VERIFIED_AT].dropna() == pd.Timestamp("2025-11-01 10:20:30", tz="UTC")).all()


def test_chunked_file_equals_the_bytes(frame, monkeypatch):
    whole = downloads.to_csv_bytes(frame)
    monkeypatch.setattr(downloads, "_CHUNK_ROWS", 4)
    assert downloads.to_csv_bytes(frame) == whole
    assert len(_read_csv(downloads.to_csv_bytes(frame.iloc[2:9]))) == 7


def test_spreadsheet_csv_starts_with_a_bom_so_excel_reads_utf8(frame):
    data = downloads.to_csv_bytes(frame.assign(Note="zoë"))
    assert data.startswith(downloads.BOM) and "zoë".encode() in data
    assert not downloads.to_csv_bytes(frame, downloads.EXACT).startswith(downloads.BOM)


def test_exact_csv_keeps_every_value_as_it_is(frame):
    back = _read_csv(downloads.to_csv_bytes(frame.assign(objectId="-3gq2k9"), downloads.EXACT))
    assert list(back.columns)[:3] == ["Email", "Note", "=Header"]
    assert back["Note"].tolist() == TRIGGERS + HARMLESS + [""]
    assert set(back["objectId"]) == {"-3gq2k9"}  # identifiers still match CleverTap's
    assert back[co.REASON].iloc[0] == "-Success"


def test_an_empty_subset_still_has_its_header(frame):
    back = _read_csv(downloads.to_csv_bytes(frame.iloc[:0]))
    assert back.empty and co.STATUS in back.columns


def test_frames_without_the_declared_columns_are_refused(frame):
    with pytest.raises(co.ClearoutColumnsError, match="Clearout Domain"):
        downloads.to_csv_bytes(frame.drop(columns=[co.DOMAIN]))
    with pytest.raises(co.ClearoutColumnsError, match="Clearout Domain"):
        downloads.to_xlsx_bytes(frame.drop(columns=[co.DOMAIN]))
    bad = frame.astype({co.STATUS: object})
    bad.loc[bad.index[0], co.STATUS] = "Probably fine"
    with pytest.raises(co.ClearoutColumnsError, match="Probably fine"):
        downloads.to_csv_bytes(bad)


# ---- XLSX: read the sheet XML directly (openpyxl is not a dependency) --------------------------------

NS = {"m": "http://schemas.openxmlformats.org/spreadsheetml/2006/main"}


def _read_xlsx(data: bytes) -> tuple[list[list[object]], ElementTree.Element]:
    """Rows of cell values (text, float, or None for a blank) of the first sheet, and the sheet element."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert archive.testzip() is None
        assert {"[Content_Types].xml", "xl/workbook.xml", "xl/worksheets/sheet1.xml"} <= set(archive.namelist())
        sheet = ElementTree.fromstring(archive.read("xl/worksheets/sheet1.xml"))
    rows = []
    for row in sheet.iterfind("m:sheetData/m:row", NS):
        values: list[object] = []
        for cell in row.iterfind("m:c", NS):
            column = _column_index(re.match(r"[A-Z]+", cell.get("r")).group())
            values.extend([None] * (column - len(values)))
            if cell.get("t") == "inlineStr":
                text = "".join(cell.find("m:is", NS).itertext())
                values.append(re.sub(r"_x([0-9A-F]{4})_", lambda m: chr(int(m.group(1), 16)), text))
            else:
                values.append(float(cell.find("m:v", NS).text))
        rows.append(values)
    return rows, sheet


def _column_index(letters: str) -> int:
    number = 0
    for letter in letters:
        number = number * 26 + ord(letter) - 64
    return number - 1


def test_xlsx_holds_text_as_text_cells_never_formulas(frame):
    rows, sheet = _read_xlsx(downloads.to_xlsx_bytes(frame))
    assert not sheet.findall(".//m:f", NS)  # no formula anywhere: "=1+1" is a string cell
    header = rows[0]
    assert header == ["Email", "Note", "=Header", "Score", *co.CLEAROUT_COLUMN_NAMES, co.VERDICT_SOURCE]
    assert len(rows) == len(frame) + 1
    note, score, when = header.index("Note"), header.index("Score"), header.index(co.VERIFIED_AT)
    column = [r[note] if note < len(r) else None for r in rows[1:]]
    # XlsxWriter writes an empty string as a blank cell, which is what Excel shows for it anyway.
    assert column == TRIGGERS + [h or None for h in HARMLESS] + [None]
    assert [r[score] for r in rows[1:]] == [float(n) for n in range(-6, len(frame) - 6)]
    # Dates are real dates (Excel serial days, UTC), formatted by the workbook's date style.
    serial = (pd.Timestamp("2025-11-01 10:20:30.456") - pd.Timestamp("1899-12-30")) / pd.Timedelta(days=1)
    assert rows[1][when] == pytest.approx(serial)
    assert sheet.find("m:sheetData/m:row[2]/m:c[@r='" + _cell(when, 2) + "']", NS).get("s")


def _cell(column: int, row: int) -> str:
    letters = ""
    column += 1
    while column:
        column, rest = divmod(column - 1, 26)
        letters = chr(65 + rest) + letters
    return f"{letters}{row}"


def test_xlsx_in_slices_equals_xlsx_at_once(frame, monkeypatch):
    whole, _ = _read_xlsx(downloads.to_xlsx_bytes(frame))
    monkeypatch.setattr(downloads, "_CHUNK_ROWS", 5)
    assert _read_xlsx(downloads.to_xlsx_bytes(frame))[0] == whole


def test_xlsx_refuses_more_rows_than_excel_holds(frame, monkeypatch):
    monkeypatch.setattr(downloads, "EXCEL_MAX_DATA_ROWS", len(frame) - 1)
    with pytest.raises(downloads.TooManyRowsForExcel, match=f"{len(frame):,} rows"):
        downloads.to_xlsx_bytes(frame)
    rows, _ = _read_xlsx(downloads.to_xlsx_bytes(frame.iloc[1:]))
    assert len(rows) == len(frame)


def test_excel_limit_is_excels():
    assert downloads.EXCEL_MAX_DATA_ROWS == 2 ** 20 - 1
