"""A list's join keys: Arrow's normalisation and syntax check agree with lib.emails row for row."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lib import listkeys
from lib.emails import normalise_emails, valid_syntax_mask
from lib.store import Store

MESSY = ["a@x.com", " A@X.com ", "b@x.com", "", None, "not-an-address", "c@x.com", "C@x.COM", "\u00a0d@x.com\t",
         "ZOË@x.com", "e@x.com\u2003", "   ", "x" * 250 + "@x.com", "f@x", "g@x.co.uk", "İ@x.com", "h@-x.com"]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    s = Store(tmp_path / "data")
    yield s
    s.close()


def test_keys_agree_with_pandas_row_for_row(tmp_path: Path) -> None:
    path, keys = tmp_path / "l.parquet", tmp_path / "l.keys.parquet"
    pq.write_table(pa.table({"Email": pa.array(MESSY, pa.string()), "n": list(range(len(MESSY)))}), path)
    listkeys.write_keys(path, "Email", keys, data_dir=tmp_path, batch_rows=5)  # several batches
    written = pq.read_table(keys).to_pydict()
    expected = normalise_emails(pd.Series(MESSY))
    assert written["row"] == list(range(len(MESSY)))
    assert written["key"] == [None if pd.isna(v) else v for v in expected]
    assert written["valid"] == valid_syntax_mask(expected).tolist()


def test_stats_follow_the_contract(tmp_path: Path) -> None:
    path = tmp_path / "l.parquet"
    emails = ["a@x.com", " A@X.com ", "b@x.com", "", None, "not-an-address", "c@x.com", "C@x.COM"]
    pq.write_table(pa.table({"Email": pa.array(emails, pa.string())}), path)
    stats = listkeys.write_keys(path, "Email", tmp_path / "k.parquet", data_dir=tmp_path)
    # distinct addresses: a@x.com, b@x.com, c@x.com and the malformed "not-an-address"
    assert stats == listkeys.EmailStats(rows=8, valid_emails=5, unique_emails=3, duplicates=2, missing_emails=2,
                                        distinct_addresses=4)


def test_ensure_keys_writes_missing_and_stale_keys_only(store: Store) -> None:
    record = store.create_list(name="old", mode="sandbox", source_kind="csv", source="old.csv")
    record = store.update_list(record.id, state="ready", email_column="Email")
    store.list_path(record.id).parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"Email": ["a@x.com", "B@x.com"]}), store.list_path(record.id))
    keys = listkeys.ensure_keys(store, record)
    assert pq.read_table(keys).column("key").to_pylist() == ["a@x.com", "b@x.com"]
    written = keys.stat().st_mtime_ns
    assert listkeys.ensure_keys(store, record).stat().st_mtime_ns == written  # fresh: left alone
    pq.write_table(pa.table({"Email": ["c@x.com"]}), store.list_path(record.id))
    os.utime(store.list_path(record.id), ns=(written + 10**9, written + 10**9))
    assert pq.read_table(listkeys.ensure_keys(store, record)).column("key").to_pylist() == ["c@x.com"]
