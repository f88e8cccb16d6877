"""CSV detection and rejection on a table of well-formed and malformed files."""
from __future__ import annotations

import codecs
import io
import zipfile
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from lib.csv_import import CsvImportError, convert_csv, detect_columns, header_key, sniff_delimiter

MB = 1_000_000


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("sheet.xml", "<x/>")
    return buffer.getvalue()


# name, file bytes, expected rows (as dicts of the email column's values), email column
ACCEPTED = [
    ("plain", b"Email,Name\na@x.com,Ann\nb@x.com,Bob\n", "Email", ["a@x.com", "b@x.com"]),
    ("utf8 BOM", codecs.BOM_UTF8 + b"Email,Name\na@x.com,Ann\n", "Email", ["a@x.com"]),
    ("semicolon", b"Name;Email\nAnn;a@x.com\nBob;b@x.com\n", "Email", ["a@x.com", "b@x.com"]),
    ("tab", b"Name\tEmail address\nAnn\ta@x.com\n", "Email address", ["a@x.com"]),
    ("quoted delimiter and newline", b'Email,Note\n"a@x.com","one, two"\nb@x.com,"line 1\nline 2"\n',
     "Email", ["a@x.com", "b@x.com"]),
    ("CRLF", b"Email,Name\r\na@x.com,Ann\r\n", "Email", ["a@x.com"]),
    ("no final newline", b"Email\na@x.com", "Email", ["a@x.com"]),
    ("blank lines before header", b"\n\nEmail,Name\na@x.com,Ann\n", "Email", ["a@x.com"]),
    ("single column", b"email\na@x.com\n\nb@x.com\n", "email", ["a@x.com", "b@x.com"]),
    ("utf16 with BOM", "Email\tName\na@x.com\tJosé\n".encode("utf-16"), "Email", ["a@x.com"]),
    ("empty values kept", b"Email,Name\n,Ann\nb@x.com,\n", "Email", ["", "b@x.com"]),
]


@pytest.mark.parametrize(("name", "data", "email_column", "emails"), ACCEPTED, ids=[c[0] for c in ACCEPTED])
def test_accepted_files(tmp_path: Path, name, data, email_column, emails) -> None:
    out = convert_csv(io.BytesIO(data), tmp_path / "out.parquet", max_bytes=MB)
    table = pq.read_table(out.path)
    assert out.detected.email == email_column and out.rows == len(emails)
    assert table.column(email_column).to_pylist() == emails
    assert all(str(f.type) == "string" for f in table.schema)
    assert out.notice is None


def test_embedded_values_survive_untouched(tmp_path: Path) -> None:
    data = b'Email;Note\n" A@X.com ";"a;b\nc"\n'
    out = convert_csv(io.BytesIO(data), tmp_path / "o.parquet", max_bytes=MB)
    assert pq.read_table(out.path).to_pylist() == [{"Email": " A@X.com ", "Note": "a;b\nc"}]


def test_path_source_and_many_row_groups(tmp_path: Path) -> None:
    source = tmp_path / "big.csv"
    source.write_text("Identity,Email\n" + "".join(f"{i},u{i}@x.com\n" for i in range(5000)))
    out = convert_csv(source, tmp_path / "o.parquet", max_bytes=MB, block_bytes=16 << 10,
                      row_group_bytes=32 << 10)
    meta = pq.ParquetFile(out.path).metadata
    assert out.rows == 5000 and meta.num_row_groups > 1
    assert pq.read_table(out.path).column("Email").to_pylist()[4999] == "u4999@x.com"


@pytest.mark.parametrize("header", ["Email", "email", "EMAIL", "Emails", "Email address", "Email_Address",
                                    "emailaddress", "E-mail", "e_mail", " Email ", "Email ID"])
def test_email_header_variants(header: str) -> None:
    assert detect_columns(["Name", header, "City"]).email == header


@pytest.mark.parametrize("header", ["MSG-email", "Email verified", "Work mail", "Name"])
def test_not_email_headers(header: str) -> None:
    assert detect_columns(["Name", header]).email is None


def test_identity_object_id_and_msg_email_detection() -> None:
    found = detect_columns(["Identity", "CleverTap ID", "Email", "MSG-email", "User ID"])
    assert (found.identity, found.object_id, found.msg_email) == ("Identity", "CleverTap ID", "MSG-email")
    assert detect_columns(["objectId", "Email"]).object_id == "objectId"
    # Only CleverTap's identity: a "User ID" might create new profiles when exported by it.
    assert detect_columns(["User ID", "Email"]).identity is None
    assert header_key(" E-Mail_Address ") == "emailaddress"


def test_first_preferred_email_column_wins() -> None:
    assert detect_columns(["Email address", "Email"]).email == "Email"


def test_duplicate_and_blank_headers_get_names(tmp_path: Path) -> None:
    out = convert_csv(io.BytesIO(b"Email,Name,Name,\na@x.com,A,B,C\n"), tmp_path / "o.parquet", max_bytes=MB)
    assert out.columns == ("Email", "Name", "Name (2)", "Column 4")


def test_cp1252_is_read_with_a_notice(tmp_path: Path) -> None:
    data = "Email;Name\na@x.com;José Müller\n".encode("cp1252")
    out = convert_csv(io.BytesIO(data), tmp_path / "o.parquet", max_bytes=MB)
    assert out.encoding == "cp1252" and "not UTF-8" in out.notice
    assert pq.read_table(out.path).column("Name").to_pylist() == ["José Müller"]


def test_sniffer_prefers_consistent_delimiter() -> None:
    assert sniff_delimiter("Name;Email\nSmith, Ann;a@x.com\nLee, Bo;b@x.com\n", True) == ";"
    assert sniff_delimiter("Email\na@x.com\n", True) == ","


REJECTED = [
    ("no email column", b"Name,Phone\nAnn,1\n", "No email column found. The file has the columns: Name, Phone"),
    ("empty", b"", "The file is empty"),
    ("whitespace only", b"\n \r\n", "The file is empty"),
    ("header only", b"Email,Name\n", "has a header (Email, Name) but no rows"),
    ("png", b"\x89PNG\r\n\x1a\n" + bytes(64), "PNG image"),
    ("zip / xlsx", zip_bytes(), "Excel workbook or a zip archive"),
    ("other binary", b"Email\x00\x01\x02garbage", "binary"),
    ("ragged row", b"Email,Name\na@x.com,Ann\nb@x.com,Bob,extra\n", "Row 3 of the file"),
    ("short row", b"Email,Name,City\na@x.com,Ann,Pune\nb@x.com\n", "has 1 values where the header has 3"),
    ("too big", b"Email\n" + b"a@x.com\n" * 200, "the limit is"),
]


@pytest.mark.parametrize(("name", "data", "message"), REJECTED, ids=[c[0] for c in REJECTED])
def test_rejected_files_leave_nothing(tmp_path: Path, name, data, message) -> None:
    destination = tmp_path / "o.parquet"
    with pytest.raises(CsvImportError) as err:
        convert_csv(io.BytesIO(data), destination, max_bytes=1000)
    assert message in err.value.message
    assert not destination.exists()
