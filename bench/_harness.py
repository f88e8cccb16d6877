"""What every benchmark shares: one JSON line per figure, peak RSS, a timer, a sandbox in its own process."""
from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from contextlib import contextmanager
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def emit(bench: str, metric: str, value: float, unit: str, target: str | None = None) -> None:
    """Print one figure as a JSON line: {"bench", "metric", "value", "unit", "target"}."""
    line = {"bench": bench, "metric": metric, "value": round(value, 4) if isinstance(value, float) else value,
            "unit": unit, "target": target}
    print(json.dumps(line), flush=True)


def peak_rss_mb() -> float:
    """Peak resident set size of this process so far, in MB (ru_maxrss is KiB on Linux)."""
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kib / 1024 if sys.platform != "darwin" else kib / (1024 * 1024)


@contextmanager
def timer() -> Iterator[list[float]]:
    """`with timer() as t: ...` then `t[0]` holds the elapsed seconds."""
    elapsed = [0.0]
    start = time.perf_counter()
    try:
        yield elapsed
    finally:
        elapsed[0] = time.perf_counter() - start


def start_sandbox(*options: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """`python -m lib.sandbox --port 0 OPTIONS…` in its own process (so that its CPU is not the
    benchmark's); returns it and its startup line (base URLs and credentials)."""
    process = subprocess.Popen([sys.executable, "-m", "lib.sandbox", "--port", "0", *options],
                               stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.kill()
        process.wait(10)
        raise RuntimeError("the sandbox did not start")
    return process, json.loads(line)
