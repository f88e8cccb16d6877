"""`python -m bench pull [--profiles N]`: pull every profile of a sandbox project into a list.

The sandbox runs as a subprocess (`python -m lib.sandbox`, no latency) so its CPU is not charged to
this process; the pull goes through the app's own path (check_and_save, save_audience, the pull
service thread, chunked Parquet writing, list statistics). The query is `event_name "-1"`, "all
users", which the sandbox supports (CleverTap's support is UNCONFIRMED): no single event covers
every generated profile (App Launched, the most common, covers about 88%).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

from bench._harness import emit, peak_rss_mb, start_sandbox, timer
from lib import audiences, connections
from lib.access import local_user
from lib.pulls import PullWorker, count_audience
from lib.runtime import start_runtime
from lib.settings import load_settings

BENCH = "pull"
ALL_USERS = "-1"


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), to see which side is the bottleneck."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench pull")
    parser.add_argument("--profiles", type=int, default=200_000)
    args = parser.parse_args(argv)

    sandbox, info = start_sandbox("--profiles", str(args.profiles))
    try:
        with tempfile.TemporaryDirectory() as folder:
            settings = load_settings(Path(folder) / ".env", environ={
                "APP_MODE": "live", "DATA_DIR": folder,
                "CLEVERTAP_API_BASE": info["clevertap_base"].rsplit("/", 1)[0] + "/{region}",
                "CLEAROUT_API_BASE": info["clearout_base"]})
            runtime = start_runtime(settings, role="worker")
            connection = connections.check_and_save(runtime, name="Bench", account_id=info["account_id"],
                                                    passcode=info["passcode"], region=info["region"],
                                                    user=local_user())
            today = date.today()
            query = audiences.build_query(connection.id, ALL_USERS, today - timedelta(days=90), today)
            client = runtime.clients.clevertap(connection)
            with timer() as counting:
                expected = count_audience(client, query)
            audience = audiences.save_audience(runtime.store, query, "Everyone", user=local_user())
            worker = PullWorker(runtime.store, runtime.clients.clevertap, mode=runtime.mode, owner="bench")
            cpu_before, sandbox_before = time.process_time(), _cpu_seconds(sandbox.pid)
            with timer() as pulling:
                record = audiences.start_pull(runtime.store, runtime.mode, audience, "Everyone",
                                              expected_rows=expected, user=local_user())
                worker.run_once()  # the worker process's round: the whole pull
            own_cpu = time.process_time() - cpu_before
            sandbox_cpu = _cpu_seconds(sandbox.pid) - sandbox_before
            record = runtime.store.get_list(record.id)
            if record.state != "ready" or record.rows != expected:
                print(f"pull ended {record.state} with {record.rows} of {expected} rows: {record.error}",
                      file=sys.stderr)
                return 1
            seconds = pulling[0]
            emit(BENCH, "profiles", record.rows, "profiles")
            emit(BENCH, "profiles_per_second", record.rows / seconds, "profiles/s", ">= 20000")
            emit(BENCH, "seconds", seconds, "s")
            emit(BENCH, "count_seconds", counting[0], "s")
            emit(BENCH, "peak_rss_mb", peak_rss_mb(), "MB", "< 500")
            emit(BENCH, "app_cpu_seconds", own_cpu, "s")
            emit(BENCH, "sandbox_cpu_seconds", sandbox_cpu, "s")
            emit(BENCH, "list_file_mb", runtime.store.list_path(record.id).stat().st_size / 1e6, "MB")
            runtime.close()
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=30)
    return 0
