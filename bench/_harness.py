"""What every benchmark shares: one JSON line per figure, peak RSS, a timer."""
from __future__ import annotations

import json
import resource
import sys
import time
from contextlib import contextmanager
from collections.abc import Iterator


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
