"""A finished job's verdicts file: one row per distinct address of its list, whatever its source
(bought now, reused from the cache, or failed the syntax check); and what a result cost."""
from __future__ import annotations

import logging
import os
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from lib import columns as C
from lib import engine, resultset
from lib.listkeys import ensure_keys
from lib.store import Store, VerificationJob
from lib.verification import addresses
from lib.verification.plan import member_mask, upload_path

log = logging.getLogger(__name__)

SYNTAX_REASON = "Syntax error"

MISSING_REASON = "Not in the Clearout result"


# Clearout's documented test addresses (`<x>@example.com`) answer fixed verdicts for free.
FREE_TEST_ADDRESSES = frozenset(f"{x}@example.com" for x in (
    "valid", "invalid", "catch_all", "unknown", "safe_to_send_yes", "safe_to_send_no", "safe_to_send_risky",
    "disposable", "role", "free", "gibberish", "hard_bounce", "soft_bounce", "suggested_email_address",
    "syntax_error", "greylisted", "spamtrap", "blocklist_email_address", "allowlist_email_address",
    "blocklist_domain", "allowlist_domain", "domain_not_found", "not_a_mailserver", "mailbox_not_found",
    "mailbox_quota_exceeded", "dns_query_timeout", "unroutable_mailserver", "overquota_and_inactive",
    "receiving_limit_reached"))


def credits_spent(new_verdicts: pd.DataFrame) -> int:
    """Credits a result cost: one per address, except Unknown results and Clearout's test addresses."""
    charged = (new_verdicts[C.STATUS] != C.UNKNOWN).fillna(True).to_numpy()
    free = member_mask(new_verdicts["email"], sorted(FREE_TEST_ADDRESSES)).to_numpy()
    return int((charged & ~free).sum())


RESULT_FILE = "result.parquet"


def result_path(store: Store, job: VerificationJob) -> Path:
    """What Clearout answered for a job's upload (`email` + the 15 columns), kept until the job's
    verdicts are written: a part's result waits there for the other parts."""
    return store.job_dir(job.id) / RESULT_FILE


def write_result(store: Store, job: VerificationJob, result: pd.DataFrame) -> Path:
    """Keep a downloaded result (at most one part: ~500,000 rows), atomically."""
    path = result_path(store, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = engine.partial(path)
    frame = C.conform_clearout_columns(result, keep=("email",))
    frame["email"] = frame["email"].astype("string[pyarrow]")
    frame.to_parquet(partial, index=False)
    os.replace(partial, path)
    return path


def parts_of(store: Store, job: VerificationJob) -> list[VerificationJob]:
    """The latest attempt at each part of a job, by part number (none for a job sent whole)."""
    latest: dict[int, VerificationJob] = {}
    for part in store.list_jobs(parts_of=job.id):  # newest first
        latest.setdefault(part.part_no or 0, part)
    return [latest[number] for number in sorted(latest)]


def write_job_verdicts(store: Store, job: VerificationJob) -> int:
    """Write the verdicts file of a finished job: one row per distinct address of its list.

    New verdicts (each uploaded address, from its part's result), cached ones for the rest of the
    valid addresses, and syntax failures; an uploaded address missing from the result is Unknown, a
    cached one gone from the cache too. Out of core: a ten-million-row list is joined on disk.
    Returns the row count.
    """
    record = store.list_record(job.list_id)
    parts = parts_of(store, job)
    uploads = [upload_path(store, part) for part in parts] if parts else [upload_path(store, job)]
    uploads = [path for path in uploads if path.exists()]
    results = [result_path(store, attempt) for attempt in (parts or [job])]
    results = [path for path in results if path.exists()]
    target = store.job_verdicts_path(job.id)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = engine.partial(target)
    with engine.connect(store.data_dir) as con:
        addresses.load_addresses(con, ensure_keys(store, record))
        header = addresses.UPLOAD_HEADER
        con.execute("CREATE TABLE uploaded AS " + (
            f"SELECT DISTINCT {header} AS email FROM read_csv([{_paths(uploads)}], header = true, "
            f"columns = {{'{header}': 'VARCHAR'}})" if uploads else "SELECT NULL::VARCHAR AS email LIMIT 0"))
        con.execute(f"CREATE TABLE new AS SELECT email, {_typed('r')} FROM " + (
            f"read_parquet([{_paths(results)}]) r WHERE email IN (SELECT email FROM uploaded) "
            "QUALIFY row_number() OVER (PARTITION BY email) = 1" if results else f"{_empty_verdicts()} r"))
        _load_cached(con, store)
        sources = [
            f"SELECT email, {_columns()}, '{C.SOURCE_NEW}' AS source FROM new",
            f"SELECT email, {_fixed(C.UNKNOWN, C.UNKNOWN, MISSING_REASON)}, '{C.SOURCE_NEW}' FROM uploaded "
            "WHERE email NOT IN (SELECT email FROM new)",
            f"SELECT email, {_columns()}, '{C.SOURCE_CACHED}' FROM cached",
            f"SELECT key, {_fixed(C.UNKNOWN, C.UNKNOWN, MISSING_REASON)}, '{C.SOURCE_CACHED}' FROM addresses "
            "WHERE valid AND key NOT IN (SELECT email FROM uploaded) AND key NOT IN (SELECT email FROM cached)",
            f"SELECT key, {_fixed(C.INVALID, C.NO, SYNTAX_REASON)}, '{C.SOURCE_SYNTAX}' FROM addresses WHERE NOT valid",
        ]
        union = " UNION ALL ".join(sources)
        con.execute(f"COPY (SELECT email, {_columns()}, source AS {engine.quote(C.VERDICT_SOURCE)} FROM ({union})) "
                    f"TO '{engine.literal(partial)}' (FORMAT parquet, COMPRESSION zstd)")
        rows = addresses._scalar(con, f"SELECT count(*) FROM {engine.parquet(partial)}")
    os.replace(partial, target)
    return rows


def finish_verdicts(store: Store, job: VerificationJob) -> int:
    """Write a finished job's verdicts, then its merged file for Results (lib.resultset). A merged
    file that fails is logged and left to the Results page to ask for again: the verdicts are what
    was paid for. Returns the verdict count."""
    count = write_job_verdicts(store, job)
    try:
        resultset.materialise(store, store.list_record(job.list_id), job)
    except Exception:
        log.exception("writing the merged file of job %s failed", job.id)
    return count


_SQL_TYPES = {c.name: "VARCHAR" for c in C.CLEAROUT_COLUMNS} | {C.VERIFIED_AT: "TIMESTAMPTZ", C.TIME_TAKEN: "BIGINT"}


def _paths(paths: list[Path]) -> str:
    return ", ".join(f"'{engine.literal(path)}'" for path in paths)


def _columns() -> str:
    return ", ".join(engine.quote(c.name) for c in C.CLEAROUT_COLUMNS)


def _typed(alias: str) -> str:
    return ", ".join(f"CAST({alias}.{engine.quote(name)} AS {kind}) AS {engine.quote(name)}"
                     for name, kind in _SQL_TYPES.items())


def _empty_verdicts() -> str:
    return "(SELECT NULL::VARCHAR AS email, " + ", ".join(
        f"NULL::{kind} AS {engine.quote(name)}" for name, kind in _SQL_TYPES.items()) + " LIMIT 0)"


def _fixed(status: str, safe_to_send: str, reason: str) -> str:
    """The same verdict for every address, with nothing else known about them."""
    known = {C.STATUS: status, C.SAFE_TO_SEND: safe_to_send, C.REASON: reason}
    return ", ".join(f"'{known[name]}'::VARCHAR AS {engine.quote(name)}" if name in known
                     else f"NULL::{kind} AS {engine.quote(name)}" for name, kind in _SQL_TYPES.items())


def _load_cached(con: duckdb.DuckDBPyConnection, store: Store) -> None:
    """Table `cached`: the cache's verdicts of the valid addresses not uploaded, asked a chunk at a time."""
    con.execute(f"CREATE TABLE cached AS SELECT email, {_typed('e')} FROM {_empty_verdicts()} e")
    wanted = con.cursor().sql("SELECT key FROM addresses WHERE valid AND key NOT IN (SELECT email FROM uploaded)") \
        .to_arrow_reader(addresses.LOOKUP_CHUNK)
    for batch in wanted:
        found = store.cached_verdicts(batch.column(0).to_pylist()).drop(columns="verified_on")
        if len(found):
            con.register("incoming", pa.Table.from_pandas(found, preserve_index=False))
            con.execute(f"INSERT INTO cached SELECT email, {_typed('i')} FROM incoming i")
            con.unregister("incoming")
