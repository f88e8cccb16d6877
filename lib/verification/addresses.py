"""A list's addresses against the verification cache, out of core: what a run costs, and the upload
files of what it buys (one, or one per part of at most `part_rows`).

The list's keys file (lib.listkeys) gives each row's normalised address and syntax check; the
engine takes the distinct ones, marks those with a fresh verdict in the cache (SQLite, read a chunk
at a time), and writes the rest, in the order they first appear in the list, as CSV files with the
header Clearout requires. Nothing here holds the list in pandas, so a ten-million-row list plans in
bounded memory.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from lib import engine
from lib.listkeys import ensure_keys
from lib.store import ListRecord, Store

UPLOAD_HEADER = "Email"  # Clearout requires an Email column (1004 otherwise)
LOOKUP_CHUNK = 200_000  # addresses asked of the cache at a time, when the cache is much bigger than the list


@dataclass(frozen=True)
class Counts:
    """`unique_emails = cached + syntax_invalid + to_verify`."""
    unique_emails: int   # distinct normalised addresses of the list
    cached: int          # with a fresh verdict in the cache: free
    syntax_invalid: int  # failing the local syntax check: marked Invalid for free
    to_verify: int       # to buy


def load_addresses(con: duckdb.DuckDBPyConnection, keys: Path) -> None:
    """Table `addresses` (key, valid, first_row): the list's distinct addresses."""
    con.execute(f"CREATE TABLE addresses AS SELECT key, bool_or(valid) AS valid, min(row) AS first_row "
                f"FROM {engine.parquet(keys)} WHERE key IS NOT NULL GROUP BY key")


def mark_fresh(con: duckdb.DuckDBPyConnection, store: Store, fresh_since: str) -> None:
    """Table `fresh` (email): the valid addresses with a reusable verdict in the cache.

    Whichever is smaller is read: the fresh part of the cache (streamed), or the list's addresses
    asked of the cache a chunk at a time.
    """
    con.execute("CREATE TABLE fresh (email VARCHAR)")
    size = store.cache_size()
    if size == 0:
        return
    candidates = _scalar(con, "SELECT count(*) FROM addresses WHERE valid")
    if size <= 4 * candidates:
        for chunk in store.iter_fresh_emails(fresh_since=fresh_since):
            _insert(con, "fresh", chunk)
        con.execute("DELETE FROM fresh WHERE email NOT IN (SELECT key FROM addresses WHERE valid)")
        return
    reader = con.cursor().sql("SELECT key FROM addresses WHERE valid").to_arrow_reader(LOOKUP_CHUNK)
    for batch in reader:
        _insert(con, "fresh", store.fresh_cached_emails(batch.column(0).to_pylist(), fresh_since=fresh_since))


def _insert(con: duckdb.DuckDBPyConnection, table: str, emails: list[str]) -> None:
    if emails:
        chunk = pa.table({"email": pa.array(emails, pa.string())})
        con.register("incoming", chunk)
        con.execute(f"INSERT INTO {table} SELECT email FROM incoming")
        con.unregister("incoming")


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    found = engine.one_row(con, sql)
    return int(found[0]) if found and found[0] is not None else 0


def _counts(con: duckdb.DuckDBPyConnection) -> Counts:
    found = engine.one_row(con, "SELECT count(*), count_if(NOT valid), (SELECT count(*) FROM fresh) FROM addresses")
    unique, invalid, cached = (int(v or 0) for v in found)
    return Counts(unique_emails=unique, cached=cached, syntax_invalid=invalid, to_verify=unique - invalid - cached)


def count(store: Store, record: ListRecord, *, fresh_since: str) -> Counts:
    """What verifying the list costs now."""
    with engine.connect(store.data_dir) as con:
        load_addresses(con, ensure_keys(store, record))
        mark_fresh(con, store, fresh_since)
        return _counts(con)


def write_uploads(store: Store, record: ListRecord, *, fresh_since: str, part_rows: int,
                  folder: Path) -> tuple[Counts, list[tuple[Path, int]]]:
    """Count again and write the upload files into `folder`: `upload.csv` when the addresses to buy fit
    one part, else `part-1.csv`, `part-2.csv`... of at most `part_rows` each. Returns the counts and
    (file, rows) per file; no file when nothing is to be bought. Each file is written atomically."""
    folder.mkdir(parents=True, exist_ok=True)
    with engine.connect(store.data_dir) as con:
        load_addresses(con, ensure_keys(store, record))
        mark_fresh(con, store, fresh_since)
        counts = _counts(con)
        if not counts.to_verify:
            return counts, []
        con.execute("CREATE TABLE to_buy AS SELECT key, row_number() OVER (ORDER BY first_row) AS n FROM addresses "
                    "WHERE valid AND key NOT IN (SELECT email FROM fresh)")
        if counts.to_verify <= part_rows:
            names = [("upload.csv", 0, counts.to_verify)]
        else:
            names = [(f"part-{number}.csv", start, min(start + part_rows, counts.to_verify))
                     for number, start in enumerate(range(0, counts.to_verify, part_rows), start=1)]
        written = []
        for name, start, end in names:
            path = folder / name
            partial = engine.partial(path)
            # Valid addresses hold no comma, quote or newline: DuckDB quotes nothing, as Clearout expects.
            con.execute(f"COPY (SELECT key AS {UPLOAD_HEADER} FROM to_buy WHERE n > {start} AND n <= {end} ORDER BY n) "
                        f"TO '{engine.literal(partial)}' (FORMAT csv, HEADER true)")
            os.replace(partial, path)
            written.append((path, end - start))
    return counts, written
