"""Two callers at the same instant, for real: threads released by a barrier, or processes started
together (`python -m tests.race_support ACTION ...`, each waiting for the same moment)."""
from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any
from collections.abc import Callable

from lib.errors import UserError
from lib.store import Store
from tests.access_support import OPERATOR

ROOT = Path(__file__).resolve().parent.parent


def in_threads(action: Callable[[], Any], count: int = 2) -> list[Any]:
    """Run `action` in `count` threads released together; each result, or the UserError it raised."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = action()
        except UserError as exc:
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def in_processes(*args: str, count: int = 2) -> list[dict[str, Any]]:
    """Run this module's ACTION in `count` processes that act at the same moment; their answers."""
    start_at = time.time() + 3.0  # after every interpreter has started and imported
    children = [subprocess.Popen([sys.executable, "-m", "tests.race_support", *args, f"{start_at}"], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(count)]
    answers = []
    for child in children:
        out, err = child.communicate(timeout=120)
        assert child.returncode == 0, err
        answers.append(json.loads(out.strip().splitlines()[-1]))
    return answers


def _at(start_at: float) -> None:
    while (left := start_at - time.time()) > 0:
        time.sleep(min(left, 0.001))


def main(argv: list[str]) -> int:
    action, data_dir, *rest = argv
    store = Store(data_dir)
    try:
        if action == "verify":
            from lib.verification.plan import plan_verification
            from lib.verification.start import start_verification

            list_id, start_at = int(rest[0]), float(rest[1])
            price = plan_verification(store, list_id, cache_days=30)
            _at(start_at)
            job = start_verification(store, price, available_credits=1_000_000, mode="sandbox", user=OPERATOR)
            answer: dict[str, Any] = {"job": job.id}
        elif action == "apply":
            from lib.export.plan import ExportOptions
            from lib.export.planfile import plan_export
            from lib.export.runs import start_run

            list_id, connection_id, tag, start_at = int(rest[0]), int(rest[1]), rest[2], float(rest[3])
            plan = plan_export(store, list_id, ExportOptions(), guardrail_pct=100, tag=tag)
            _at(start_at)
            run = start_run(store, plan, store.connection(connection_id), user=OPERATOR)
            answer = {"run": run.id}
        elif action == "add_csv":
            from lib.lists import add_csv_list

            source, start_at = Path(rest[0]), float(rest[1])
            _at(start_at)
            record, _ = add_csv_list(store, "live", source, file_name=source.name, max_bytes=10**6, user=OPERATOR)
            answer = {"name": record.name}
        else:
            raise SystemExit(f"unknown action {action}")
    except UserError as exc:
        answer = {"refused": exc.message}
    print(json.dumps(answer))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
