"""The out-of-core engine for big frames: DuckDB over the Parquet files in DATA_DIR.

A ten-million-row list does not fit a pandas frame in the memory this app may use, so joins, counts,
filters and file writes of whole lists run in DuckDB, which reads and writes Parquet in place and
spills to `DATA_DIR/tmp` under a memory limit. pandas keeps what the browser sees: previews and small
aggregates come out of here as small frames.

A connection is cheap and not thread-safe: every operation opens its own and closes it.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
        yield con
    finally:
        con.close()


def quote(name: str) -> str:
    """A column name as a DuckDB identifier (list headers can hold anything, quotes included)."""
    return '"' + name.replace('"', '""') + '"'


def parquet(path: Path) -> str:
    """A Parquet file as a DuckDB table expression (the path as a string literal)."""
    return "read_parquet('" + str(path).replace("'", "''") + "')"
