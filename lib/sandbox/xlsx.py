"""Read the first worksheet of an .xlsx file as rows of text, with the standard library only.

Clearout accepts .xlsx bulk uploads; the project has no spreadsheet reader dependency (XlsxWriter
only writes), and the sandbox needs cell text only: shared strings, inline strings, numbers and
booleans. Dates come through as their serial numbers, as a plain cell read would show them.
"""
from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path
from xml.etree import ElementTree

_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_NS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"
_PKG_REL_NS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_COLUMN_RE = re.compile(r"^([A-Z]+)")


class XlsxError(ValueError):
    """Not a readable .xlsx workbook."""


def _column_index(ref: str) -> int:
    match = _COLUMN_RE.match(ref)
    if not match:
        raise XlsxError(f"bad cell reference {ref!r}")
    index = 0
    for char in match.group(1):
        index = index * 26 + ord(char) - 64
    return index - 1


def _text(element: ElementTree.Element) -> str:
    return "".join(t.text or "" for t in element.iter(f"{_NS}t"))


def _first_sheet(archive: zipfile.ZipFile) -> str:
    try:
        workbook = ElementTree.fromstring(archive.read("xl/workbook.xml"))
        rels = ElementTree.fromstring(archive.read("xl/_rels/workbook.xml.rels"))
    except KeyError:
        return "xl/worksheets/sheet1.xml"
    sheet = workbook.find(f"{_NS}sheets/{_NS}sheet")
    if sheet is None:
        raise XlsxError("the workbook has no sheets")
    rel_id = sheet.get(f"{_REL_NS}id")
    for rel in rels.iter(f"{_PKG_REL_NS}Relationship"):
        if rel.get("Id") == rel_id:
            target = rel.get("Target", "")
            return target.lstrip("/") if target.startswith("/") else "xl/" + target
    return "xl/worksheets/sheet1.xml"


def read_rows(path: Path) -> Iterator[list[str]]:
    """Rows of the first sheet; missing cells are "" so columns stay aligned."""
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise XlsxError("not an .xlsx workbook") from exc
    with archive:
        shared: list[str] = []
        if "xl/sharedStrings.xml" in archive.namelist():
            root = ElementTree.fromstring(archive.read("xl/sharedStrings.xml"))
            shared = [_text(si) for si in root.iter(f"{_NS}si")]
        try:
            sheet = archive.open(_first_sheet(archive))
        except KeyError as exc:
            raise XlsxError("the workbook has no readable sheet") from exc
        with sheet:
            for _, row in ElementTree.iterparse(sheet, events=("end",)):
                if row.tag != f"{_NS}row":
                    continue
                cells: list[str] = []
                for position, cell in enumerate(row.iter(f"{_NS}c")):
                    ref = cell.get("r")
                    column = _column_index(ref) if ref else position
                    kind = cell.get("t", "n")
                    value = cell.find(f"{_NS}v")
                    if kind == "inlineStr":
                        text = _text(cell)
                    elif value is None or value.text is None:
                        text = ""
                    elif kind == "s":
                        text = shared[int(value.text)]
                    elif kind == "b":
                        text = "TRUE" if value.text == "1" else "FALSE"
                    else:
                        text = value.text
                    cells.extend([""] * (column - len(cells)))
                    cells.append(text)
                row.clear()
                yield cells
