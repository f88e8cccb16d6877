"""A list's join keys: each row's normalised address and whether it passes the syntax check.

Written once per list beside its rows (`store.list_keys_path`: row, key, valid), in the list's row
order, streaming its row groups; everything that joins a list to verdicts or counts its addresses
reads this file instead of normalising millions of addresses again. The key is exactly
`lib.emails.normalise_emails` (Arrow's whitespace trim and lower-casing), and `valid` exactly
`lib.emails.valid_syntax_mask`, so the engine and pandas agree row for row.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lib import engine
from lib.emails import MAX_LENGTH, SYNTAX
from lib.store import ListRecord, Store

KEYS_SCHEMA = pa.schema([("row", pa.int64()), ("key", pa.string()), ("valid", pa.bool_())])
BATCH_ROWS = 256_000


@dataclass(frozen=True)
class EmailStats:
    rows: int
    valid_emails: int    # rows whose address passes the syntax check
    unique_emails: int   # distinct normalised addresses among them
    duplicates: int      # valid_emails - unique_emails
    missing_emails: int  # rows with no address at all
    distinct_addresses: int = 0  # distinct normalised addresses, syntax errors included

    def as_changes(self) -> dict[str, int]:
        return {"rows": self.rows, "valid_emails": self.valid_emails, "unique_emails": self.unique_emails,
                "duplicates": self.duplicates, "missing_emails": self.missing_emails,
                "distinct_addresses": self.distinct_addresses}


def normalise(values: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """`lib.emails.normalise_emails` on Arrow data: trimmed, lower-cased, null when empty."""
    text = pc.utf8_lower(pc.utf8_trim_whitespace(values.cast(pa.string())))
    return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.string()), text)


def valid(keys: pa.Array | pa.ChunkedArray) -> pa.Array | pa.ChunkedArray:
    """`lib.emails.valid_syntax_mask` on Arrow keys (null counts as invalid)."""
    ok = pc.and_(pc.match_substring_regex(keys, SYNTAX), pc.less_equal(pc.utf8_length(keys), MAX_LENGTH))
    return pc.fill_null(ok, False)


def write_keys(list_path: Path, email_column: str, keys_path: Path, *, data_dir: Path,
               batch_rows: int = BATCH_ROWS) -> EmailStats:
    """Write the keys of a list file, a batch at a time, and return its address statistics."""
    partial = engine.partial(keys_path)
    rows = 0
    with pq.ParquetWriter(partial, KEYS_SCHEMA) as writer:
        for batch in pq.ParquetFile(list_path).iter_batches(batch_size=batch_rows, columns=[email_column]):
            key = normalise(batch.column(0))
            writer.write_table(pa.table({"row": pa.array(range(rows, rows + batch.num_rows), pa.int64()),
                                         "key": key, "valid": valid(key)}, schema=KEYS_SCHEMA))
            rows += batch.num_rows
    os.replace(partial, keys_path)
    return stats(keys_path, data_dir=data_dir)


def stats(keys_path: Path, *, data_dir: Path) -> EmailStats:
    """Rows, valid and missing addresses, and distinct valid ones, counted by the engine."""
    with engine.connect(data_dir) as con:
        found = engine.one_row(
            con, f"SELECT count(*), count(*) FILTER (WHERE valid), count(*) FILTER (WHERE key IS NULL), "
                 f"count(DISTINCT key) FILTER (WHERE valid), count(DISTINCT key) FROM {engine.parquet(keys_path)}")
    rows, valid_count, missing, unique, distinct = (int(v or 0) for v in found)
    return EmailStats(rows=rows, valid_emails=valid_count, unique_emails=unique, duplicates=valid_count - unique,
                      missing_emails=missing, distinct_addresses=distinct)


def with_distinct_addresses(store: Store, record: ListRecord) -> ListRecord:
    """The record with its distinct addresses counted (lists made before the count existed get it
    on first view, from the keys file)."""
    if record.distinct_addresses is not None or record.state != "ready" or not record.email_column:
        return record
    counted = stats(ensure_keys(store, record), data_dir=store.data_dir)
    return store.update_list(record.id, distinct_addresses=counted.distinct_addresses)


def ensure_keys(store: Store, record: ListRecord) -> Path:
    """The list's keys file, written first when it is missing or older than the list file (lists made
    before keys existed; a list file replaced in place)."""
    if not record.email_column:
        raise ValueError(f"list {record.id} has no email column")
    keys, rows = store.list_keys_path(record.id), store.list_path(record.id)
    try:
        fresh = keys.stat().st_mtime_ns >= rows.stat().st_mtime_ns
    except FileNotFoundError:
        fresh = False
    if not fresh:
        write_keys(rows, record.email_column, keys, data_dir=store.data_dir)
    return keys
