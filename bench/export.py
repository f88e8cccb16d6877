"""`python -m bench export [--profiles N]`: unsubscribe 1,000,000 profiles through the app's own runner.

The sandbox runs as a subprocess (`python -m lib.sandbox --latency-ms 100`), so its CPU does not
compete with ours for one GIL, like the real CleverTap. The plan is built and recorded exactly as the
Export page does (`build_plan` then `start_run`: every change and batch in the store), then applied by
`RunApplier` with 15 calls in flight, recording every batch in the store.

Ideal throughput: 15 calls in flight x 1000 profiles per call / 0.1 s latency = 150,000 profiles/s.
"""
from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import requests

from bench._harness import emit, peak_rss_mb, start_sandbox, timer
from lib import columns as co
from lib.access import local_user
from lib.clevertap import CleverTapClient
from lib.export.applier import RunApplier
from lib.export.payloads import upload_body
from lib.export.plan import KEY_IDENTITY, ExportOptions, build_plan
from lib.export.readback import record_read_back
from lib.export.runs import start_run
from lib.merge import append_verdicts
from lib.store import Store

BENCH = "export"
LATENCY_MS = 100
IN_FLIGHT = 15
IDEAL = IN_FLIGHT * 1000 / (LATENCY_MS / 1000)


def process_cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, or of another one from /proc (Linux)."""
    if pid is None:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return usage.ru_utime + usage.ru_stime
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bare_client_rate(client: CleverTapClient, tag: str, calls: int = 450) -> float:
    """Profiles/s of the bare client alone (bodies encoded beforehand, 15 threads, no store): the
    most the sandbox lets any caller reach, to compare the runner against."""
    bodies = [upload_body([(KEY_IDENTITY, f"bare-{b}-{i}", True, None) for i in range(1000)], tag)
              for b in range(calls)]
    started = time.perf_counter()
    with ThreadPoolExecutor(IN_FLIGHT) as pool:
        list(pool.map(lambda body: client.upload_encoded(*body), bodies))
    return calls * 1000 / (time.perf_counter() - started)


def audience_rows(profiles: int) -> pd.DataFrame:
    """An audience-shaped verified list: every profile invalid, all subscribed (1M unsubscribes)."""
    ids = pd.Series(np.arange(profiles)).astype("string[pyarrow]")
    rows = pd.DataFrame({"identity": "bench-" + ids,
                         "objectId": pd.Series(pd.NA, index=ids.index, dtype="string[pyarrow]"),
                         "email": "person" + ids + "@example.com",
                         "MSG-email": pd.array(np.ones(profiles, dtype=bool), dtype="boolean")})
    verdicts = pd.DataFrame({"email": rows["email"]})
    for column in co.CLEAROUT_COLUMNS:
        verdicts[column.name] = pd.Series(pd.NA, index=ids.index, dtype=column.dtype)
    verdicts[co.STATUS] = pd.Categorical.from_codes(np.full(profiles, 1), dtype=co.STATUS_DTYPE)  # Invalid
    verdicts[co.SAFE_TO_SEND] = pd.Categorical.from_codes(np.full(profiles, 2), dtype=co.SAFE_TO_SEND_DTYPE)
    verdicts[co.REASON] = pd.Series("Mailbox not found", index=ids.index, dtype="string[pyarrow]")
    verdicts[co.VERDICT_SOURCE] = pd.Categorical.from_codes(np.zeros(profiles, dtype=int), dtype=co.SOURCE_DTYPE)
    return append_verdicts(rows, "email", verdicts)


def main(argv: list[str]) -> int | None:
    parser = argparse.ArgumentParser(prog="python -m bench export")
    parser.add_argument("--profiles", type=int, default=1_000_000)
    args = parser.parse_args(argv)

    merged = audience_rows(args.profiles)
    process, info = start_sandbox("--latency-ms", str(LATENCY_MS), "--profiles", "0")
    admin = info["clevertap_base"].split("/clevertap/")[0] + "/_sandbox"
    try:
        with tempfile.TemporaryDirectory() as data_dir:
            store = Store(Path(data_dir))
            record = store.create_list(name="bench", mode="sandbox", source_kind="audience", source="bench",
                                       state="ready")
            connection = store.add_connection(name="bench", account_id=info["account_id"],
                                              region=info["region"].upper(), mode="sandbox",
                                              passcode_storage="memory")
            with timer() as planning:
                plan = build_plan(merged, list_id=record.id, job_id=0, list_name="bench", email_column="email",
                                  identity_column="identity", object_id_column="objectId",
                                  msg_email_column="MSG-email", options=ExportOptions(), guardrail_pct=100.0)
            with timer() as recording:
                run = start_run(store, plan, connection, user=local_user())
            del merged
            emit(BENCH, "plan_seconds", planning[0], "s")
            emit(BENCH, "plan_record_seconds", recording[0], "s")
            requests.post(admin + "/reset-stats", timeout=10)
            with CleverTapClient(info["account_id"], info["passcode"], info["region"],
                                 base_url=info["clevertap_base"].rsplit("/", 1)[0] + "/{region}") as client:
                cpu_ours, cpu_sandbox = process_cpu_seconds(), process_cpu_seconds(process.pid)
                started = time.perf_counter()
                run = RunApplier(store, run.id, client, concurrency=IN_FLIGHT, read_back_sample=0).apply()
                elapsed = time.perf_counter() - started
                cpu_ours = process_cpu_seconds() - cpu_ours
                cpu_sandbox = process_cpu_seconds(process.pid) - cpu_sandbox
                stats = requests.get(admin + "/stats", timeout=10).json()
                with timer() as reading:
                    checks = record_read_back(store, run, client)
                bare = bare_client_rate(client, run.tag)
            sent = run.processed + run.unprocessed
            if run.state != "done" or sent != plan.summary.changes:
                print(f"run {run.state}: {sent:,} of {plan.summary.changes:,} sent ({run.error})", file=sys.stderr)
                return 1
            rate = sent / elapsed
            emit(BENCH, "profiles", sent, "profiles")
            emit(BENCH, "apply_seconds", elapsed, "s")
            emit(BENCH, "profiles_per_s", rate, "profiles/s", f">= {0.9 * IDEAL:,.0f}")
            emit(BENCH, "share_of_ideal", rate / IDEAL, "ratio", ">= 0.9")
            # Where the time goes: CPU per 1000-record call on each side. One process (one GIL) can
            # do at most 1 CPU-second per second, so 1000 / (ms per call) calls/s is its ceiling.
            calls = max(1, run.batches_total)
            emit(BENCH, "our_cpu_ms_per_call", 1000 * cpu_ours / calls, "ms")
            emit(BENCH, "our_ceiling_profiles_per_s", 1000 * calls / cpu_ours if cpu_ours else 0.0, "profiles/s")
            emit(BENCH, "sandbox_cpu_ms_per_call", 1000 * cpu_sandbox / calls, "ms")
            emit(BENCH, "sandbox_ceiling_profiles_per_s", 1000 * calls / cpu_sandbox if cpu_sandbox else 0.0,
                 "profiles/s")
            emit(BENCH, "bare_client_profiles_per_s", bare, "profiles/s")
            emit(BENCH, "runner_share_of_bare_client", rate / bare, "ratio")
            emit(BENCH, "max_in_flight", stats["max_uploads_in_flight"], "requests", "<= 15")
            emit(BENCH, "upload_requests", stats["requests"].get("clevertap.upload", 0), "requests")
            emit(BENCH, "rejected_429", stats["concurrency_rejected"], "requests")
            emit(BENCH, "read_back_seconds", reading[0], "s")
            emit(BENCH, "read_back_confirmed", sum(c.confirmed for c in checks), f"of {len(checks)}")
            emit(BENCH, "peak_rss_mb", peak_rss_mb(), "MB", "<= 1000")
    finally:
        process.terminate()
        process.wait(30)
    return 0
