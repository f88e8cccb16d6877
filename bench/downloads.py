"""`python -m bench downloads [--rows N] [--xlsx-rows N]`: CSV and XLSX exports of a merged list."""
from __future__ import annotations

import argparse

from bench._harness import emit, peak_rss_mb, timer
from bench.merge import build_frames
from lib.downloads import to_csv_bytes, to_xlsx_bytes
from lib.merge import append_verdicts

BENCH = "downloads"


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench downloads", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows of the CSV export")
    parser.add_argument("--xlsx-rows", type=int, default=50_000, help="rows of the XLSX export (it is slow)")
    args = parser.parse_args(argv)

    listing, verdicts = build_frames(rows=args.rows)
    merged = append_verdicts(listing, "Email", verdicts)
    del listing, verdicts
    with timer() as elapsed:
        data = to_csv_bytes(merged)
    emit(BENCH, "csv_seconds", elapsed[0], "s", "<= 2.0")
    emit(BENCH, "csv_size", len(data) / 1e6, "MB")
    del data
    with timer() as elapsed:
        data = to_xlsx_bytes(merged.iloc[:args.xlsx_rows])
    emit(BENCH, "xlsx_rows_per_second", args.xlsx_rows / elapsed[0], "rows/s")
    emit(BENCH, "xlsx_size", len(data) / 1e6, "MB")
    emit(BENCH, "peak_rss", peak_rss_mb(), "MB", "<= 1500")
    return 0
