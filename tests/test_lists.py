"""My lists: CSV lists end to end in the store, statistics of the data contract, preview, rename, delete."""
from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

from lib import lists
from lib.csv_import import CsvImportError
from lib.store import Store
from tests.access_support import ADMIN, OPERATOR
from tests.race_support import in_processes, in_threads

MB = 1_000_000


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "data")
    yield s
    s.close()


def list_files(store: Store) -> list[str]:
    folder = store.data_dir / "lists"
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def test_csv_list_is_created_with_stats_and_columns(store: Store) -> None:
    data = b"Identity,Email,MSG-email\n1,a@x.com,true\n2,A@x.com ,false\n3,,true\n4,broken@,true\n"
    record, notice = lists.add_csv_list(store, "sandbox", io.BytesIO(data), file_name="segment_export.csv",
                                        max_bytes=MB, user=OPERATOR)
    assert notice is None and record.state == "ready" and record.name == "segment export"
    assert (record.source_kind, record.source) == ("csv", "segment_export.csv")
    assert (record.email_column, record.identity_column, record.msg_email_column) == ("Email", "Identity", "MSG-email")
    assert (record.rows, record.valid_emails, record.unique_emails, record.duplicates, record.missing_emails) == \
        (4, 2, 1, 1, 1)
    frame = pd.read_parquet(store.list_path(record.id))
    assert frame["Email"].tolist() == ["a@x.com", "A@x.com ", "", "broken@"]  # originals untouched
    assert list_files(store) == [f"{record.id}.keys.parquet", f"{record.id}.parquet"]


@pytest.mark.parametrize("data", [b"Name\nAnn\n", b"", b"Email\n", b"\x89PNG\r\n" + bytes(20),
                                  b"Email,Name\na@x.com,A,B\n"])
def test_rejection_leaves_no_list_and_no_file(store: Store, data: bytes) -> None:
    with pytest.raises(CsvImportError):
        lists.add_csv_list(store, "sandbox", io.BytesIO(data), file_name="bad.csv", max_bytes=MB, user=OPERATOR)
    assert store.list_lists("sandbox") == [] and list_files(store) == []


def test_size_limit_leaves_nothing(store: Store) -> None:
    with pytest.raises(CsvImportError, match="limit"):
        lists.add_csv_list(store, "sandbox", io.BytesIO(b"Email\n" + b"a@x.com\n" * 50), file_name="x.csv",
                           max_bytes=100, user=OPERATOR)
    assert store.list_lists("sandbox") == [] and list_files(store) == []


def test_lists_are_per_mode(store: Store) -> None:
    lists.add_csv_list(store, "sandbox", io.BytesIO(b"Email\na@x.com\n"), file_name="s.csv", max_bytes=MB,
                       user=OPERATOR)
    assert [r.name for r in store.list_lists("sandbox")] == ["s"] and store.list_lists("live") == []


def test_preview_reads_at_most_100_rows(store: Store) -> None:
    data = ("Email\n" + "".join(f"u{i}@x.com\n" for i in range(1000))).encode()
    record, _ = lists.add_csv_list(store, "live", io.BytesIO(data), file_name="big.csv", max_bytes=MB, user=OPERATOR)
    frame = lists.preview(store, record)
    assert len(frame) == 100 and frame["Email"].iloc[99] == "u99@x.com"


def test_rename_and_delete(store: Store) -> None:
    record, _ = lists.add_csv_list(store, "live", io.BytesIO(b"Email\na@x.com\n"), file_name="x.csv",
                                   max_bytes=MB, name="  First   name ", user=OPERATOR)
    assert record.name == "First name"
    assert lists.rename_list(store, record.id, " Better ", user=OPERATOR).name == "Better"
    with pytest.raises(lists.ListError):
        lists.rename_list(store, record.id, "   ", user=OPERATOR)
    lists.delete_list(store, record.id, user=ADMIN)
    assert store.get_list(record.id) is None and list_files(store) == []
    with pytest.raises(lists.ListError):
        lists.rename_list(store, record.id, "Gone", user=OPERATOR)


def test_the_same_file_twice_gets_a_name_of_its_own(store: Store) -> None:
    names = []
    for _ in range(3):
        record, notice = lists.add_csv_list(store, "live", io.BytesIO(b"Email\na@x.com\n"), file_name="messy.csv",
                                            max_bytes=MB, user=OPERATOR)
        names.append((record.name, notice))
    assert names == [("messy", None),
                     ("messy (2)", "A list named messy exists already: this one is called messy (2). Rename "
                                   "either under My lists."),
                     ("messy (3)", "A list named messy exists already: this one is called messy (3). Rename "
                                   "either under My lists.")]
    lists.add_csv_list(store, "sandbox", io.BytesIO(b"Email\na@x.com\n"), file_name="messy.csv", max_bytes=MB,
                       user=OPERATOR)
    assert [r.name for r in store.list_lists("sandbox")] == ["messy"]  # names are unique per mode
    first = store.list_lists("live")[-1]
    with pytest.raises(lists.ListError, match="A list named MESSY \\(2\\) exists already"):
        lists.rename_list(store, first.id, "MESSY (2)", user=OPERATOR)
    assert lists.rename_list(store, first.id, "messy", user=OPERATOR).name == "messy"  # its own name is fine


def test_two_people_adding_the_same_file_at_once_get_two_names(store: Store) -> None:
    added = in_threads(lambda: lists.add_csv_list(store, "live", io.BytesIO(b"Email\na@x.com\n"),
                                                  file_name="messy.csv", max_bytes=MB, user=OPERATOR), count=4)
    assert sorted(record.name for record, _ in added) == ["messy", "messy (2)", "messy (3)", "messy (4)"]


def test_two_processes_adding_the_same_file_at_once_get_two_names(tmp_path: Path) -> None:
    source = tmp_path / "messy.csv"
    source.write_bytes(b"Email\na@x.com\n")
    Store(tmp_path / "data").close()  # the schema, before both start
    answers = in_processes("add_csv", str(tmp_path / "data"), str(source))
    assert sorted(answer["name"] for answer in answers) == ["messy", "messy (2)"]


def test_overview_is_one_row_per_list(store: Store) -> None:
    for name in ("a", "b"):
        lists.add_csv_list(store, "live", io.BytesIO(b"Email\na@x.com\nA@x.com \n\nbroken@\n"),
                           file_name=f"{name}.csv", max_bytes=MB, user=OPERATOR)
    frame = lists.overview(lists.my_lists(store, "live"))
    assert frame["Name"].tolist() == ["b", "a"]
    # The funnel: 3 rows (the blank line is no row), 3 with an address, 2 well-formed, 2 distinct addresses
    # (a@x.com, and broken@ which fails the syntax check).
    assert frame[list(lists.COUNT_COLUMNS)].values.tolist() == [[3, 3, 2, 2, 1]] * 2


def test_the_added_line_counts_what_the_table_counts(store: Store) -> None:
    messy, _ = lists.add_csv_list(store, "live", io.BytesIO(b"Email\na@x.com\nA@x.com \n\nbroken@\n"),
                                  file_name="messy.csv", max_bytes=MB, user=OPERATOR)
    clean, _ = lists.add_csv_list(store, "live", io.BytesIO(b"Email\na@x.com\n"), file_name="one.csv",
                                  max_bytes=MB, user=OPERATOR)
    assert lists.added_line(messy) == "3 rows, 2 distinct addresses (1 with a syntax error)"
    assert lists.added_line(clean) == "1 row, 1 distinct address"
    assert lists.overview([messy])["Distinct addresses"].tolist() == [2]


def test_lists_made_before_the_count_get_it_on_first_view(store: Store) -> None:
    record, _ = lists.add_csv_list(store, "live", io.BytesIO(b"Email\na@x.com\nbad@\nb@x.com\n"),
                                   file_name="old.csv", max_bytes=MB, user=OPERATOR)
    store.update_list(record.id, distinct_addresses=None)  # as an older version left it
    [counted] = lists.my_lists(store, "live")
    assert counted.distinct_addresses == 3 and store.list_record(record.id).distinct_addresses == 3


def test_progress_of_a_pull(store: Store) -> None:
    record = store.create_list(name="p", mode="live", source_kind="audience", source="q", expected_rows=200)
    assert lists.progress(store.update_list(record.id, rows=50)) == 0.25
    assert lists.progress(store.update_list(record.id, expected_rows=None)) is None
