"""`python -m bench scale [--rows N]`: a ten-million-row list through the whole review, each step in
its own process so each process's peak RSS is its own.

1. `lists`: the list Parquet (realistic addresses: repeats in other case, blanks, broken ones; with
   identities and MSG-email, as a pulled audience) is recorded as a ready list and its keys written.
2. `verify` (the worker's role): Start, then the worker until done: plan, one upload file per part
   of 500,000, the parts through the sandbox's three slots, results into the cache, the verdicts
   file, the merged file.
3. `merge`: the merged file written again, timed alone; `duckdb`: DuckDB's plain join of the same
   list and verdicts files (on lower(trim(email))) into Parquet, the reference.
4. `results` (Streamlit's role): the Results page through AppTest, first render then reruns.
5. `two-sessions`: two sessions (AppTests) in one process on two different ten-million-row lists.
6. `export`: the dry run of Unsubscribe + Append over every profile.

One JSON line per figure (bench/_harness.py). The sandbox runs as its own process.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from bench._harness import emit, peak_rss_mb, start_sandbox, timer

BENCH = "scale"
PART_ROWS = 500_000
ROOT = Path(__file__).resolve().parent.parent


def generate(path: Path, rows: int, seed: int = 11) -> None:
    """The list file: written in slices, so the generator itself stays small."""
    from bench.verify_upload import _addresses

    rng = np.random.default_rng(seed)
    cells = _addresses(rng, rows)
    schema = pa.schema([("Customer ID", pa.string()), ("Email", pa.string()), ("First Name", pa.string()),
                        ("Country", pa.string()), ("identity", pa.string()), ("objectId", pa.string()),
                        ("MSG-email", pa.bool_())])
    names = pa.array(["Asha", "Ben", "Chen", "Dara", "Eli", "=HYPERLINK(\"x\")", "Zoë", "Femi"])
    with pq.ParquetWriter(path, schema) as writer:
        step = 1_000_000
        for start in range(0, rows, step):
            n = min(step, rows - start)
            ids = np.arange(start, start + n)
            writer.write_table(pa.table({
                "Customer ID": pa.array(ids + 100_000).cast(pa.string()),
                "Email": cells.slice(start, n).cast(pa.string()),
                "First Name": names.take(rng.integers(0, len(names), n)),
                "Country": pa.array(["IN", "GB", "US", "NG"]).take(rng.integers(0, 4, n)),
                "identity": pa.array(ids).cast(pa.string()),
                "objectId": pa.array([f"-{i:x}" for i in ids], pa.string()),  # CleverTap ids may start with "-"
                "MSG-email": pa.array(rng.random(n) > 0.03)}, schema=schema))


# ---- the steps, each run in a child process --------------------------------------------------------

def step_generate(path: Path, rows: int) -> dict[str, Any]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with timer() as t:
        generate(path, rows)
    return {"generate_seconds": t[0]}


def step_lists(data_dir: Path, source: Path, name: str) -> dict[str, Any]:
    """What a pull or a CSV import leaves: a ready list with its keys file (the list file is moved in)."""
    from lib.listkeys import write_keys
    from lib.store import Store

    store = Store(data_dir)
    record = store.create_list(name=name, mode="sandbox", source_kind="audience", source=name, state="ready")
    path = store.list_path(record.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    source.replace(path)
    with timer() as t:
        stats = write_keys(path, "Email", store.list_keys_path(record.id), data_dir=data_dir)
    store.update_list(record.id, email_column="Email", identity_column="identity", object_id_column="objectId",
                      msg_email_column="MSG-email", **stats.as_changes())
    return {"list_id": record.id, "keys_seconds": t[0],
            "unique_emails": stats.unique_emails, "lists_peak_rss_mb": peak_rss_mb()}


def step_verify(data_dir: Path, list_id: int, sandbox: dict[str, str]) -> dict[str, Any]:
    import time

    from lib.access import local_user
    from lib.clearout import ClearoutClient
    from lib.store import Store
    from lib.verification import plan as P
    from lib.verification import start as S
    from lib.verification.worker import VerificationWorker

    store = Store(data_dir)
    client = ClearoutClient(sandbox["clearout_token"], base_url=sandbox["clearout_base"])
    with timer() as t:
        price = P.plan_verification(store, list_id, cache_days=30)
    plan_seconds = t[0]
    with timer() as total:
        job = S.start_verification(store, price, available_credits=client.get_credits().available,
                                   mode="sandbox", user=local_user())
        with timer() as t:
            S.prepare_job(store, store.job(job.id), cache_days=30, part_rows=PART_ROWS)
        prepare_seconds = t[0]
        worker = VerificationWorker(store, lambda: client, mode="sandbox", owner="bench", poll_seconds=1.0,
                                    part_rows=PART_ROWS)
        most_active = 0
        while not store.job(job.id).is_final:
            worker.run_once()
            most_active = max(most_active, sum(1 for part in store.list_jobs(parts_of=job.id)
                                               if part.state in ("uploading", "verifying", "downloading")))
            time.sleep(0.2)
    done = store.job(job.id)
    if done.state != "done":
        raise RuntimeError(f"verification ended {done.state}: {done.error}")
    return {"job_id": job.id, "to_verify": done.to_verify, "parts": done.parts, "most_parts_at_once": most_active,
            "plan_seconds": plan_seconds, "prepare_seconds": prepare_seconds, "verify_seconds": total[0],
            "credits_spent": done.credits_spent, "worker_peak_rss_mb": peak_rss_mb()}


def step_merge(data_dir: Path, list_id: int, job_id: int) -> dict[str, Any]:
    from lib import resultset
    from lib.store import Store

    store = Store(data_dir)
    with timer() as t:
        resultset.materialise(store, store.list_record(list_id), store.job(job_id))
    return {"merge_seconds": t[0], "merge_peak_rss_mb": peak_rss_mb()}


def step_duckdb(data_dir: Path, list_id: int, job_id: int) -> dict[str, Any]:
    from lib import engine
    from lib.store import Store

    store = Store(data_dir)
    out = data_dir / "tmp" / "reference.parquet"
    with timer() as t, engine.connect(data_dir) as con:
        con.execute(f"COPY (SELECT l.*, v.* EXCLUDE (email) FROM {engine.parquet(store.list_path(list_id))} l "
                    f"LEFT JOIN {engine.parquet(store.job_verdicts_path(job_id))} v "
                    f"ON lower(trim(l.\"Email\")) = v.email) TO '{engine.literal(out)}' (FORMAT parquet)")
    out.unlink()
    return {"duckdb_join_seconds": t[0], "duckdb_peak_rss_mb": peak_rss_mb()}


def _app_env(data_dir: Path) -> None:
    os.environ.update({"DATA_DIR": str(data_dir), "ENV_FILE": str(data_dir / ".env"), "APP_MODE": "sandbox",
                       "SANDBOX_PROFILES": "1000"})
    for name in ("CLEAROUT_API_TOKEN", "CLEVERTAP_PASSCODE", "CLEAROUT_API_BASE", "CLEVERTAP_API_BASE"):
        os.environ.pop(name, None)


def _open_results(list_id: int) -> Any:
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=900)
    at.session_state["results_list_id"] = list_id
    at.run()
    at.switch_page("pages/results.py")
    return at


def _check(at: Any) -> None:
    if at.exception:
        raise RuntimeError(f"the Results page failed: {at.exception[0].value}")
    if not at.metric:
        raise RuntimeError("the Results page drew no figures: " + "; ".join(i.value for i in at.info))


def step_results(data_dir: Path, list_id: int, rows: int) -> dict[str, Any]:
    from lib import columns as co

    _app_env(data_dir)
    at = _open_results(list_id)
    with timer() as first:
        at.run()
    _check(at)
    # A million or more is shown short ("1M"), the exact figure in the card's help.
    shown = " ".join(f"{metric.value} ({metric.proto.help})" for metric in at.metric if metric.label == "Rows")
    if f"{rows:,}" not in shown:
        raise RuntimeError(f"the Results page shows {shown or 'no'} rows instead of {rows:,}")
    reruns, filters = [], []
    for _ in range(3):
        with timer() as t:
            at.run()
        reruns.append(t[0])
    for change in ([co.INVALID], [co.INVALID, co.CATCH_ALL], []):
        at.multiselect(key=f"results_status_{at.session_state['results_list']}").set_value(change)
        with timer() as t:
            at.run()
        filters.append(t[0])
    for change in ([co.INVALID], [co.INVALID, co.CATCH_ALL], []):  # the same filters again: cached
        at.multiselect(key=f"results_status_{at.session_state['results_list']}").set_value(change)
        with timer() as t:
            at.run()
        reruns.append(t[0])
    _check(at)
    return {"results_first_render_seconds": first[0], "results_rerun_seconds": statistics.median(reruns),
            "results_rerun_slowest_seconds": max(reruns), "results_new_filter_seconds": statistics.median(filters),
            "streamlit_peak_rss_mb": peak_rss_mb()}


def step_two_sessions(data_dir: Path, first_id: int, second_id: int) -> dict[str, Any]:
    _app_env(data_dir)
    sessions = [_open_results(first_id), _open_results(second_id)]
    with timer() as t:
        for at in sessions:
            at.run()
            _check(at)
        for at in sessions:
            at.run()
    labels = [at.selectbox(key="results_list").value for at in sessions]
    if labels != [first_id, second_id]:
        raise RuntimeError(f"the sessions show lists {labels}")
    return {"two_sessions_seconds": t[0], "two_sessions_peak_rss_mb": peak_rss_mb()}


def step_export(data_dir: Path, list_id: int) -> dict[str, Any]:
    from lib.export.plan import ExportOptions
    from lib.export.planfile import plan_export
    from lib.store import Store

    store = Store(data_dir)
    with timer() as t:
        plan = plan_export(store, list_id, ExportOptions(unsubscribe=True, append=True), guardrail_pct=100)
    if plan.errors:
        raise RuntimeError(f"the plan has errors: {plan.errors}")
    return {"export_plan_seconds": t[0], "export_profiles": plan.summary.profiles,
            "export_unsubscribes": plan.summary.to_unsubscribe, "export_changes": plan.summary.changes,
            "export_peak_rss_mb": peak_rss_mb()}


STEPS = {"generate": step_generate, "lists": step_lists, "verify": step_verify, "merge": step_merge,
         "duckdb": step_duckdb, "results": step_results, "two-sessions": step_two_sessions, "export": step_export}


def child(step: str, *args: Any) -> dict[str, Any]:
    """Run one step in a fresh process; its answer is the last line it prints."""
    done = subprocess.run([sys.executable, "-m", "bench", BENCH, "--step", step, json.dumps([str(a) if isinstance(
        a, Path) else a for a in args])], capture_output=True, text=True, cwd=ROOT)
    if done.returncode:
        raise RuntimeError(f"step {step} failed:\n{done.stderr[-4000:]}")
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


def second_list(data_dir: Path, list_id: int, job_id: int) -> int:
    """Another verified ten-million-row list (a copy of the first under a new id): for two sessions."""
    from lib.store import Store, utc_now

    store = Store(data_dir)
    first, job = store.list_record(list_id), store.job(job_id)
    record = store.create_list(name="Second big list", mode="sandbox", source_kind="audience", source="copy",
                               state="ready")
    shutil.copyfile(store.list_path(list_id), store.list_path(record.id))
    shutil.copyfile(store.list_keys_path(list_id), store.list_keys_path(record.id))
    store.update_list(record.id, email_column="Email", identity_column="identity", object_id_column="objectId",
                      msg_email_column="MSG-email", rows=first.rows, valid_emails=first.valid_emails,
                      unique_emails=first.unique_emails, duplicates=first.duplicates,
                      missing_emails=first.missing_emails)
    copy = store.create_job(list_id=record.id, unique_emails=job.unique_emails, cached=job.cached,
                            syntax_invalid=job.syntax_invalid, to_verify=job.to_verify)
    store.job_dir(copy.id).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(store.job_verdicts_path(job_id), store.job_verdicts_path(copy.id))
    store.update_job(copy.id, state="done", percent=100.0, finished_at=utc_now(), credits_spent=0)
    return record.id


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench scale", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--keep", metavar="DIR", help="work in DIR and keep it (default: a temporary folder)")
    parser.add_argument("--step", help=argparse.SUPPRESS)
    parser.add_argument("args", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.step:
        values = json.loads(args.args or "[]")
        function = STEPS[args.step]
        typed = [Path(v) if isinstance(v, str) and "/" in v else v for v in values]
        print(json.dumps(function(*typed)), flush=True)
        return 0

    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench-scale-"))
    data_dir = workdir / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    sandbox = None
    try:
        emit(BENCH, "rows", args.rows, "rows")
        source = workdir / "source.parquet"
        made = child("generate", source, args.rows)
        emit(BENCH, "generate_seconds", made["generate_seconds"], "s")
        listed = child("lists", data_dir, source, "Big list")
        emit(BENCH, "keys_seconds", listed["keys_seconds"], "s")
        emit(BENCH, "lists_peak_rss_mb", listed["lists_peak_rss_mb"], "MB", "<= 2000")
        sandbox, sb = start_sandbox("--credits", "50000000", "--profiles", "100", "--bulk-seconds", "2")
        verified = child("verify", data_dir, listed["list_id"], sb)
        for name, unit, target in (("to_verify", "emails", None), ("parts", "files", None),
                                   ("most_parts_at_once", "files", "<= 3"), ("plan_seconds", "s", None),
                                   ("prepare_seconds", "s", None), ("verify_seconds", "s", None),
                                   ("worker_peak_rss_mb", "MB", "<= 2000")):
            emit(BENCH, name, verified[name], unit, target)
        ids = (listed["list_id"], verified["job_id"])
        merged = child("merge", data_dir, *ids)
        reference = child("duckdb", data_dir, *ids)
        emit(BENCH, "merge_seconds", merged["merge_seconds"], "s")
        emit(BENCH, "duckdb_join_seconds", reference["duckdb_join_seconds"], "s")
        emit(BENCH, "merge_vs_duckdb_join", merged["merge_seconds"] / reference["duckdb_join_seconds"], "x",
             "<= 1.0")
        emit(BENCH, "merge_peak_rss_mb", merged["merge_peak_rss_mb"], "MB", "<= 2000")
        emit(BENCH, "duckdb_peak_rss_mb", reference["duckdb_peak_rss_mb"], "MB")
        shown = child("results", data_dir, listed["list_id"], args.rows)
        for name, target in (("results_first_render_seconds", "<= 15"), ("results_rerun_seconds", "<= 0.5"),
                             ("results_rerun_slowest_seconds", None), ("results_new_filter_seconds", None)):
            emit(BENCH, name, shown[name], "s", target)
        emit(BENCH, "streamlit_peak_rss_mb", shown["streamlit_peak_rss_mb"], "MB", "<= 2000")
        other = second_list(data_dir, *ids)
        child("merge", data_dir, other, _latest_job(data_dir, other))
        both = child("two-sessions", data_dir, listed["list_id"], other)
        emit(BENCH, "two_sessions_first_render_seconds", both["two_sessions_seconds"], "s")
        emit(BENCH, "two_sessions_peak_rss_mb", both["two_sessions_peak_rss_mb"], "MB", "<= 3000")
        exported = child("export", data_dir, listed["list_id"])
        emit(BENCH, "export_plan_seconds", exported["export_plan_seconds"], "s", "<= 30")
        emit(BENCH, "export_changes", exported["export_changes"], "records")
        emit(BENCH, "export_peak_rss_mb", exported["export_peak_rss_mb"], "MB", "<= 2000")
    finally:
        if sandbox is not None:
            sandbox.terminate()
            sandbox.wait(10)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _latest_job(data_dir: Path, list_id: int) -> int:
    from lib.store import Store

    job = Store(data_dir).latest_done_job(list_id)
    assert job is not None
    return job.id
