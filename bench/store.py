"""`python -m bench store [--rows N]`: the verification cache writing and reading back N rows."""
from __future__ import annotations

import argparse
import tempfile

import numpy as np
import pandas as pd

from bench._harness import emit, peak_rss_mb, timer
from lib import columns as C
from lib.store import Store

BENCH = "store"


def cache_frame(rows: int, seed: int = 1) -> pd.DataFrame:
    """`rows` distinct verdicts shaped like a real list's (mostly valid, some invalid/catch-all)."""
    rng = np.random.default_rng(seed)
    ids = pd.Series(np.arange(rows)).astype(str)
    domains = np.array(["gmail.com", "yahoo.com", "outlook.com", "acme.io", "example.org"])
    domain = pd.Series(domains[rng.integers(0, len(domains), rows)])
    status = pd.Series(rng.choice([C.VALID, C.INVALID, C.CATCH_ALL, C.UNKNOWN], rows, p=[.7, .15, .1, .05]))
    safe = status.map({C.VALID: C.YES, C.INVALID: C.NO, C.CATCH_ALL: C.RISKY, C.UNKNOWN: C.UNKNOWN})
    yes_no = lambda p: pd.Series(np.where(rng.random(rows) < p, C.YES, C.NO))
    return pd.DataFrame({
        "email": "user" + ids + "@" + domain,
        C.SAFE_TO_SEND: safe, C.STATUS: status,
        C.REASON: status.map({C.VALID: "Success", C.INVALID: "Mailbox not found",
                              C.CATCH_ALL: "Catch All mail server", C.UNKNOWN: "Greylisting"}),
        C.SUGGESTED: "", C.BOUNCE_TYPE: np.where(status == C.INVALID, "Hard", ""),
        C.DISPOSABLE: yes_no(.02), C.FREE: yes_no(.6), C.ROLE: yes_no(.03), C.GIBBERISH: yes_no(.01),
        C.ACCOUNT: "user" + ids, C.DOMAIN: domain, C.MX_RECORD: "mx." + domain,
        C.SMTP_PROVIDER: "google", C.VERIFIED_AT: "2026-11-20T10:00:00Z",
        C.TIME_TAKEN: rng.integers(50, 3000, rows),
    })


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench store")
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args(argv)
    frame = cache_frame(args.rows)
    with tempfile.TemporaryDirectory() as data_dir:
        store = Store(data_dir)
        with timer() as write:
            store.upsert_cache(frame)
        with timer() as read_all:
            back = store.cached_verdicts()
        assert len(back) == args.rows, (len(back), args.rows)
        wanted = frame["email"].iloc[::10]
        with timer() as lookup:
            hits = store.cached_verdicts(wanted, fresh_since="2000-01-01")
        assert len(hits) == len(wanted)
        store.close()
    emit(BENCH, "write_seconds", write[0], "s", "<= 10")
    emit(BENCH, "write_rows_per_second", args.rows / write[0], "rows/s", None)
    emit(BENCH, "read_all_seconds", read_all[0], "s", "<= 10")
    emit(BENCH, "lookup_seconds", lookup[0], "s", None)
    emit(BENCH, "lookup_rows", float(len(wanted)), "rows", None)
    emit(BENCH, "peak_rss_mb", peak_rss_mb(), "MB", "<= 1500")
    return 0
