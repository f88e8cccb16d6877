"""lib/export/planfile.py: the dry run of a list of any size, a chunk at a time, is exactly the plan
built in memory (lib.export.plan.build_plan) of the same rows; and it travels as a task answer."""
from __future__ import annotations

import os
import time
from pathlib import Path

import pandas as pd
import pytest

from lib import columns as C
from lib import merge
from lib.export import planfile
from lib.export.plan import ExportOptions, ExportPlan, build_plan
from lib.export.properties import DEFAULT_APPEND
from lib.store import Store
from tests.export.support import make_verified_list

STATUSES = [C.INVALID, C.VALID, C.CATCH_ALL, C.UNKNOWN, C.INVALID, C.VALID, C.VALID]


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data")


def rows(n: int) -> pd.DataFrame:
    """An audience with repeats: identities named twice (some only by their objectId), blank keys,
    a subscribed flag that is sometimes unknown."""
    identity = [f"u{i % 40}" if i % 9 else None for i in range(n)]  # repeats across chunks, some missing
    frame = pd.DataFrame({
        "identity": pd.Series([f" {v} " if v and i % 5 == 0 else v for i, v in enumerate(identity)],
                              dtype="string[pyarrow]"),
        "objectId": pd.Series([f"-obj{i % 45}" if i % 4 else None for i in range(n)], dtype="string[pyarrow]"),
        "email": pd.Series([f"Person{i % 50}@Example.com " for i in range(n)], dtype="string[pyarrow]"),
        "MSG-email": pd.array([None if i % 7 == 0 else i % 3 != 0 for i in range(n)], dtype="boolean")})
    return frame


@pytest.mark.parametrize("options", [
    ExportOptions(), ExportOptions(rules=("invalid", "catch_all", "unknown"), append=True, columns=DEFAULT_APPEND),
    ExportOptions(unsubscribe=False, append=True)])
def test_a_plan_in_chunks_equals_the_plan_in_memory(store: Store, options: ExportOptions) -> None:
    listing = rows(120)
    record = make_verified_list(store, listing, lambda i: STATUSES[i % len(STATUSES)])
    job = store.latest_done_job(record.id)
    verdicts = pd.read_parquet(store.job_verdicts_path(job.id))
    reference = build_plan(merge.append_verdicts(listing, "email", verdicts), list_id=record.id, job_id=job.id,
                           list_name=record.name, email_column="email", identity_column="identity",
                           object_id_column="objectId", msg_email_column="MSG-email", options=options,
                           guardrail_pct=30, tag="20260101-abcdef")
    plan = planfile.plan_export(store, record.id, options, guardrail_pct=30, tag="20260101-abcdef", chunk_rows=17)
    assert plan.summary == reference.summary and reference.summary.duplicates > 0
    assert (plan.errors, plan.warnings, plan.notes) == (reference.errors, reference.warnings, reference.notes)
    pd.testing.assert_frame_equal(plan.read_changes(), reference.read_changes(), check_dtype=False)
    pd.testing.assert_frame_equal(plan.reasons, reference.reasons, check_dtype=False)
    again = ExportPlan.from_json(plan.to_json())  # as the worker hands it to the page
    assert again.summary == plan.summary and again.options == plan.options
    pd.testing.assert_frame_equal(again.read_changes(), plan.read_changes())
    pd.testing.assert_frame_equal(again.head(2), plan.read_changes().head(2))


def test_dry_runs_older_than_a_day_are_forgotten(store: Store) -> None:
    folder = store.data_dir / "plans"
    folder.mkdir(parents=True)
    old, new = folder / "old.rest.parquet", folder / "new.rest.parquet"
    old.write_bytes(b"x")
    new.write_bytes(b"x")
    then = time.time() - planfile.PLAN_KEEP_S - 60
    os.utime(old, (then, then))
    planfile.forget_old_plans(folder)
    assert not old.exists() and new.exists()
