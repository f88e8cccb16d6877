"""The merged result of a verified list, on disk: the list's rows in their order with the Clearout
columns appended (`jobs/<id>/merged.parquet`), written once by the worker when a job finishes and
read by every session, page and download through the engine.

Rows join verdicts on the list's keys file (lib.listkeys), so no address is normalised twice. The
rules are those of the pandas reference (`lib.merge.append_verdicts`), which the tests hold this
file to cell for cell:

* no usable address: status "No Email", safe to send "Unknown", reason "No email address", source
  "No email";
* an address the verdicts do not hold: status and safe to send "Unknown", reason "Not in the
  verification result", no source;
* list columns named like a Clearout column (a list that is itself an old result file) give way to
  the fresh verdict.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lib import columns as co
from lib import engine
from lib.filters import Selection, check_selection
from lib.listkeys import ensure_keys
from lib.merge import NO_EMAIL_REASON, NOT_IN_RESULT_REASON, VERDICT_COLUMNS
from lib.store import ListRecord, Store, VerificationJob

MERGED_FILE = "merged.parquet"
ROW_GROUP_ROWS = 122_880  # DuckDB's own row group: a filtered preview reads few of them

# The SQL type of each verdict column in the merged file (pandas' categoricals become text).
SQL_TYPES: dict[str, str] = {name: "VARCHAR" for name in VERDICT_COLUMNS} | {
    co.VERIFIED_AT: "TIMESTAMPTZ", co.TIME_TAKEN: "BIGINT"}

q = engine.quote


def merged_path(store: Store, job_id: int) -> Path:
    return store.job_dir(job_id) / MERGED_FILE


def _fold(name: object) -> str:
    return "".join(str(name).split()).lower()


def _verdict_select() -> str:
    """The verdict columns of one row, the fillers for rows without an address or without a verdict."""
    no_email = {co.STATUS: co.NO_EMAIL, co.SAFE_TO_SEND: co.UNKNOWN, co.REASON: NO_EMAIL_REASON,
                co.VERDICT_SOURCE: co.SOURCE_NO_EMAIL}
    not_found = {co.STATUS: co.UNKNOWN, co.SAFE_TO_SEND: co.UNKNOWN, co.REASON: NOT_IN_RESULT_REASON}

    def literal(value: str | None, name: str) -> str:
        return f"NULL::{SQL_TYPES[name]}" if value is None else "'" + value.replace("'", "''") + "'"

    parts = []
    for name in VERDICT_COLUMNS:
        parts.append(f"CASE WHEN k.key IS NULL THEN {literal(no_email.get(name), name)} "
                     f"WHEN v.email IS NULL THEN {literal(not_found.get(name), name)} "
                     f"ELSE CAST(v.{q(name)} AS {SQL_TYPES[name]}) END AS {q(name)}")
    return ", ".join(parts)


def materialise(store: Store, record: ListRecord, job: VerificationJob) -> Path:
    """Write the merged file of a finished job (atomically: a reader sees the old file or the new)."""
    if not record.email_column:
        raise ValueError(f"list {record.id} has no email column")
    keys = ensure_keys(store, record)
    rows, verdicts = store.list_path(record.id), store.job_verdicts_path(job.id)
    folded = {_fold(name) for name in VERDICT_COLUMNS}
    own = [name for name in pq.read_schema(rows).names if _fold(name) not in folded]
    target = merged_path(store, job.id)
    partial = engine.partial(target)
    own_select = ", ".join(f"l.{q(name)}" for name in own)
    # Only the narrow part (row number + verdicts) is sorted back into list order; the list's own
    # columns, which may be many and wide, are streamed beside it by position.
    sql = (f"COPY (WITH per_row AS (SELECT k.row, {_verdict_select()} FROM {engine.parquet(keys)} k "
           f"LEFT JOIN {engine.parquet(verdicts)} v ON v.email = k.key ORDER BY k.row) "
           f"SELECT {own_select + ', ' if own_select else ''}per_row.* EXCLUDE (row) "
           f"FROM {engine.parquet(rows)} l POSITIONAL JOIN per_row) "
           f"TO '{engine.literal(partial)}' (FORMAT parquet, ROW_GROUP_SIZE {ROW_GROUP_ROWS})")
    with engine.connect(store.data_dir) as con:
        con.execute(sql)
    os.replace(partial, target)
    return target


# ---- reading it --------------------------------------------------------------------------------

def where(selection: Selection) -> tuple[str, list[Any]]:
    """The SQL condition of a Results selection (lib.filters semantics) and its parameters.

    Raises:
        ValueError: a status, safe-to-send word or flag that does not exist.
    """
    check_selection(selection)
    clauses: list[str] = ["TRUE"]
    args: list[Any] = []

    def any_of(column: str, values: tuple[str, ...]) -> None:
        clauses.append(f"{column} IN ({', '.join('?' * len(values))})")
        args.extend(values)

    if selection.statuses:
        any_of(q(co.STATUS), selection.statuses)
    if selection.safe_to_send:
        any_of(q(co.SAFE_TO_SEND), selection.safe_to_send)
    if selection.reasons:
        any_of(q(co.REASON), selection.reasons)
    if selection.flags:
        clauses.append("(" + " OR ".join(f"{q(co.FLAG_COLUMNS[name])} = 'Yes'" for name in selection.flags) + ")")
    if selection.domains:
        any_of(f"lower({q(co.DOMAIN)})", tuple(str(d).strip().lower() for d in selection.domains))
    return " AND ".join(clauses), args


@dataclass(frozen=True)
class Rows:
    """How many rows of a merged file match a selection, and the first of them for the browser."""
    total: int
    matching: int
    preview: pd.DataFrame


def rows(store: Store, path: Path, selection: Selection, limit: int) -> Rows:
    """The match counts and the first `limit` matching rows, in list order."""
    condition, args = where(selection)
    source = engine.parquet(path)
    with engine.connect(store.data_dir) as con:
        total = _count(con, f"SELECT count(*) FROM {source}", [])
        matching = total if not selection.active else _count(
            con, f"SELECT count(*) FROM {source} WHERE {condition}", args)
        # preserve_insertion_order (lib.engine): a filtered scan keeps the file's order.
        preview = con.execute(f"SELECT * FROM {source} WHERE {condition} LIMIT {int(limit)}", args).df()
    return Rows(total=total, matching=matching, preview=preview)


def _count(con: duckdb.DuckDBPyConnection, sql: str, args: list[Any]) -> int:
    found = engine.one_row(con, sql, args)
    return int(found[0]) if found else 0


def batches(data_dir: Path, path: Path, selection: Selection, *, rows_per_batch: int = 100_000
            ) -> Iterator[pa.RecordBatch]:
    """The matching rows in list order, a batch at a time (downloads): memory stays flat."""
    condition, args = where(selection)
    with engine.connect(data_dir) as con:
        yield from con.sql(f"SELECT * FROM {engine.parquet(path)} WHERE {condition}", params=args) \
            .to_arrow_reader(rows_per_batch)


def schema(path: Path) -> pa.Schema:
    """The columns of a merged file, as its batches carry them."""
    return pq.read_schema(path)
