"""The out-of-core engine for big frames: DuckDB over the Parquet files in DATA_DIR.

A ten-million-row list does not fit a pandas frame in the memory this app may use, so joins, counts,
filters and file writes of whole lists run in DuckDB, which reads and writes Parquet in place and
spills to `DATA_DIR/tmp` under a memory limit. pandas keeps what the browser sees: previews and small
aggregates come out of here as small frames.

A connection is cheap and not thread-safe: every operation opens its own and closes it.
"""
from __future__ import annotations

import os
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import duckdb

# Per operation, per process: a worker and the Streamlit process each stay under 2 GB with this.
MEMORY_LIMIT = os.environ.get("ENGINE_MEMORY_LIMIT", "900MB")
THREADS = max(1, min(4, os.cpu_count() or 1))


@contextmanager
def connect(data_dir: Path, *, memory_limit: str = MEMORY_LIMIT) -> Iterator[duckdb.DuckDBPyConnection]:
    """An in-memory DuckDB connection that spills to DATA_DIR/tmp/engine; closed afterwards."""
    spill = data_dir / "tmp" / "engine"
    spill.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(config={"threads": THREADS, "memory_limit": memory_limit,
                                 "temp_directory": str(spill), "preserve_insertion_order": True,
                                 "enable_external_access": True})
    try:
        con.execute("SET enable_progress_bar = false")  # a session option: no bar in the worker's log
        yield con
    finally:
        con.close()


def one_row(con: duckdb.DuckDBPyConnection, sql: str, args: Sequence[Any] = ()) -> tuple[Any, ...]:
    """The single row of a query. fetchall, not fetchone: DuckDB refuses further work on a connection
    whose last result was not read to the end."""
    rows = con.execute(sql, list(args)).fetchall()
    return tuple(rows[0]) if rows else ()


def partial(path: Path) -> Path:
    """A private name beside `path` to write it under before renaming it into place: two processes
    writing the same file at once each rename a whole one (the same content; the last one stays)."""
    return path.with_name(f"{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.part")


def quote(name: str) -> str:
    """A column name as a DuckDB identifier (list headers can hold anything, quotes included)."""
    return '"' + name.replace('"', '""') + '"'


def literal(path: Path) -> str:
    """A path inside a SQL string literal (quotes doubled)."""
    return str(path).replace("'", "''")


def parquet(path: Path) -> str:
    """A Parquet file as a DuckDB table expression (the path as a string literal)."""
    return f"read_parquet('{literal(path)}')"
