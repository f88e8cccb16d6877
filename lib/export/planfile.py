"""The dry run of an export of a verified list of any size: the plan of lib.export.plan, built a chunk
at a time from the list's merged file (lib.resultset) and written to `DATA_DIR/plans/<tag>.parquet`.

Two passes keep memory flat: the first writes each row's profile key, from which the engine finds the
rows naming a profile an earlier row already named (usually few); the second plans each chunk with
that knowledge and writes its changes into two files, the unsubscribes and the rest, which are read
in that order: the order of a plan in memory.
"""
from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lib import columns as co
from lib import engine, resultset
from lib.export.properties import RUN_SOURCE
from lib.export.plan import (METHOD_UPLOAD, ExportOptions, ExportPlan, PlanContext, PlanCounts, PlanError,
                             finish_plan, new_tag, plan_chunk, plan_context, profile_key, reason_table)
from lib.store import ListRecord, Store

CHUNK_ROWS = 250_000
PLAN_KEEP_S = 24 * 3600
CHANGES_SCHEMA = pa.schema([
    ("key_type", pa.string()), ("key_value", pa.string()), ("email", pa.string()), ("unsubscribe", pa.bool_()),
    ("prior_msg_email", pa.bool_()), ("properties_json", pa.string()), ("rule", pa.string()),
    ("status", pa.string()), ("reason", pa.string())])


def verified_lists(store: Store, mode: str) -> list[ListRecord]:
    """Ready lists of this mode with a finished verification: what can be exported."""
    return [r for r in store.list_lists(mode, states=["ready"])
            if r.email_column and store.latest_done_job(r.id) is not None]


def plan_paths(store: Store, tag: str) -> tuple[Path, Path]:
    """A dry run's changes: its unsubscribes, then the rest."""
    folder = store.data_dir / "plans"
    return folder / f"{tag}.unsubscribe.parquet", folder / f"{tag}.rest.parquet"


def plan_export(store: Store, list_id: int, options: ExportOptions, *, guardrail_pct: float,
                tag: str | None = None, chunk_rows: int = CHUNK_ROWS) -> ExportPlan:
    """The dry run of exporting a verified list with `options`, its changes in a file.

    Raises:
        PlanError: the list does not exist, has no email column or no finished verification, or its
            files are missing.
    """
    runs_seen = store.last_export_run_id()  # before reading: a run starting meanwhile makes this plan stale
    record = store.get_list(list_id)
    job = store.latest_done_job(list_id) if record is not None else None
    if record is None or job is None or not record.email_column:
        raise PlanError("This list has no finished verification: verify it on Verify first.")
    merged = resultset.merged_path(store, job.id)
    try:
        if not merged.exists():
            resultset.materialise(store, record, job)
    except OSError:
        raise PlanError("The files of this list or of its verification are missing: verify it again.") from None
    context, errors, notes = plan_context(
        email_column=record.email_column, identity_column=record.identity_column,
        object_id_column=record.object_id_column, msg_email_column=record.msg_email_column, options=options,
        tag=tag or new_tag())
    targets = plan_paths(store, context.tag)
    targets[0].parent.mkdir(parents=True, exist_ok=True)
    forget_old_plans(targets[0].parent)
    repeated = _repeated_rows(store, merged, context, chunk_rows)
    counts, reasons = PlanCounts(), []
    partials = [engine.partial(path) for path in targets]
    try:
        # Two files, the unsubscribes and the rest, read one after the other: the send order of a plan
        # in memory (unsubscribes first) without sorting or copying ten million changes.
        with pq.ParquetWriter(partials[0], CHANGES_SCHEMA, compression="lz4") as first_part, \
                pq.ParquetWriter(partials[1], CHANGES_SCHEMA, compression="lz4") as rest:
            for offset, chunk in _chunks(merged, _columns(record, context), chunk_rows):
                first = ~np.isin(np.arange(offset, offset + len(chunk)), repeated, assume_unique=True)
                changes, chunk_counts = plan_chunk(chunk, first, context)
                counts.add(chunk_counts)
                unsubscribe = changes["unsubscribe"].to_numpy(dtype=bool)
                first_part.write_table(_table(changes[unsubscribe]))
                rest.write_table(_table(changes[~unsubscribe]))
                reasons.append(changes.loc[unsubscribe, ["rule", "reason"]].value_counts(dropna=False)
                               .rename("Profiles").reset_index())
        for partial, target in zip(partials, targets):
            partial.replace(target)
    finally:
        for partial in partials:
            partial.unlink(missing_ok=True)
    summary, errors_out, warnings, notes_out = finish_plan(counts, context, errors, notes,
                                                           guardrail_pct=guardrail_pct)
    found = pd.concat(reasons, ignore_index=True) if reasons else pd.DataFrame(columns=["rule", "reason", "Profiles"])
    return ExportPlan(list_id=list_id, job_id=job.id, list_name=record.name, method=context.method,
                      options=context.options, tag=context.tag, changes=None, changes_files=targets, summary=summary,
                      errors=errors_out, warnings=warnings, notes=notes_out, reasons=reason_table(found),
                      runs_seen=runs_seen)


def forget_old_plans(folder: Path, *, now: float | None = None) -> None:
    """Delete dry runs older than PLAN_KEEP_S: an applied run keeps its changes in the store, and a
    dry run nobody applied within a day is made again (the data may have changed meanwhile)."""
    now = time.time() if now is None else now
    for path in folder.glob("*.parquet"):
        try:
            if now - path.stat().st_mtime > PLAN_KEEP_S:
                path.unlink()
        except FileNotFoundError:
            pass  # another process removed it first


def _columns(record: ListRecord, context: PlanContext) -> list[str]:
    """The merged file's columns a plan reads: the keys, and the verdict columns it decides on."""
    appended = [c.source for c in context.options.columns if c.source != RUN_SOURCE] if context.append_ok else []
    wanted = [record.email_column, record.identity_column, record.object_id_column, record.msg_email_column,
              co.STATUS, co.SAFE_TO_SEND, co.REASON, co.BOUNCE_TYPE, co.DISPOSABLE, co.VERDICT_SOURCE,
              *appended]
    return list(dict.fromkeys(c for c in wanted if c))


def _chunks(merged: Path, columns: list[str], rows: int) -> Iterator[tuple[int, pd.DataFrame]]:
    """(first row number, rows) of the merged file, `rows` at a time, with the declared dtypes."""
    offset = 0
    for batch in pq.ParquetFile(merged).iter_batches(batch_size=rows, columns=columns):
        # Text stays Arrow strings (the plan compares words; no categorical needed).
        frame = batch.to_pandas(types_mapper={pa.string(): pd.StringDtype("pyarrow"),
                                              pa.large_string(): pd.StringDtype("pyarrow")}.get)
        if co.VERIFIED_AT in frame.columns:
            frame[co.VERIFIED_AT] = frame[co.VERIFIED_AT].astype(
                co.CLEAROUT_COLUMNS[co.CLEAROUT_COLUMN_NAMES.index(co.VERIFIED_AT)].dtype)
        yield offset, frame
        offset += len(frame)


def _repeated_rows(store: Store, merged: Path, context: PlanContext, rows: int) -> np.ndarray:
    """Row numbers (sorted) of the rows naming a profile an earlier row named already."""
    keys_file = engine.partial(store.data_dir / "plans" / f"{context.tag}.keys")
    columns = [c for c in (context.email_column, context.identity_column, context.object_id_column) if c]
    try:
        with pq.ParquetWriter(keys_file, pa.schema([("key", pa.string())])) as writer:
            if context.method == METHOD_UPLOAD:  # the profile key in Arrow, as lib.export.plan reads it
                for batch in pq.ParquetFile(merged).iter_batches(batch_size=rows, columns=columns):
                    writer.write_table(pa.table({"key": _upload_key(batch, context).cast(pa.string())}))
            else:
                for _, chunk in _chunks(merged, columns, rows):
                    key_value = profile_key(chunk, context)
                    writer.write_table(pa.table({"key": pa.array(key_value.astype("string[pyarrow]").array,
                                                                 pa.string())}))
        with engine.connect(store.data_dir) as con:
            found = con.execute(
                f"SELECT file_row_number FROM (SELECT file_row_number, row_number() OVER (PARTITION BY key "
                f"ORDER BY file_row_number) AS seen FROM read_parquet('{engine.literal(keys_file)}', "
                "file_row_number = true) WHERE key IS NOT NULL) WHERE seen > 1 ORDER BY 1").fetchnumpy()
    finally:
        keys_file.unlink(missing_ok=True)
    return np.asarray(found["file_row_number"], dtype=np.int64)


def _upload_key(batch: pa.RecordBatch, context: PlanContext) -> pa.Array:
    """`lib.export.plan._profile_keys`' value in Arrow: the identity, else the objectId, each trimmed
    (pandas' strip is this same Arrow kernel) and null when blank."""
    def present(column: str | None) -> pa.Array:
        if not column:
            return pa.nulls(batch.num_rows, pa.large_string())
        text = pc.utf8_trim_whitespace(batch.column(column).cast(pa.large_string()))
        return pc.if_else(pc.equal(text, ""), pa.scalar(None, pa.large_string()), text)
    return pc.coalesce(present(context.identity_column), present(context.object_id_column))


def _table(changes: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(changes, schema=CHANGES_SCHEMA, preserve_index=False)
