"""`python -m bench verify-upload [--emails N]`: from "Start" to the file accepted by Clearout.

A 1,000,000-row list (realistic addresses, ~2% syntax errors, ~5% repeats in other case or padded,
1% blank) and a verification cache holding 100,000 of its addresses. Timed: the Start button's work
(plan: distinct addresses from the list's keys file, cache lookup; create the job), the worker's
preparing step (plan again, write the upload files: two parts of at most 500,000) and its first
round (the uploads), until every part holds Clearout's list id.

The inputs are built in a child process, so the peak RSS reported is that of the Start path alone;
the sandbox runs as another process (`python -m lib.sandbox`) so its CPU and memory are not ours.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from bench._harness import emit, peak_rss_mb, start_sandbox, timer

BENCH = "verify-upload"
CACHE_DAYS = 30
_DOMAINS = (["gmail.com", "yahoo.com", "outlook.com", "hotmail.com", "icloud.com", "rediffmail.com",
             "acme.io", "bigcorp.co.uk", "startup.dev", "shop.in"] + [f"company{i}.com" for i in range(500)])
_WEIGHTS = np.r_[[0.30, 0.08, 0.06, 0.05, 0.03, 0.03, 0.02, 0.01, 0.01, 0.01], np.full(500, 0.40 / 500)]
_FIRST = ["asha", "ben", "chen", "dara", "eli", "femi", "gita", "hugo", "ines", "jun", "kofi", "lena",
          "mohan", "nia", "omar", "priya", "quinn", "ravi", "sara", "tomas"]
_LAST = ["rao", "smith", "li", "okafor", "cohen", "garcia", "kumar", "nguyen", "patel", "mueller"]


def _addresses(rng: np.random.Generator, rows: int) -> pa.Array:
    """`rows` address cells: ~92% distinct, 5% repeats (case/space variants), 2% broken, 1% blank."""
    repeats_n, blank_n = int(rows * 0.05), int(rows * 0.01)
    unique = rows - repeats_n - blank_n
    first = pa.array(_FIRST).take(rng.integers(0, len(_FIRST), unique))
    last = pa.array(_LAST).take(rng.integers(0, len(_LAST), unique))
    ids = pa.array(rng.permutation(unique)).cast(pa.string())
    domains = pa.array(_DOMAINS).take(rng.choice(len(_DOMAINS), size=unique, p=_WEIGHTS / _WEIGHTS.sum()))
    addresses = pc.binary_join_element_wise(first, ".", last, ids, "@", domains, "")
    kind = rng.choice(4, size=unique, p=[0.98, 0.008, 0.006, 0.006])  # ok, " at ", no domain, comma
    addresses = pc.if_else(pa.array(kind == 1), pc.replace_substring(addresses, "@", " at "), addresses)
    addresses = pc.if_else(pa.array(kind == 2), pc.utf8_slice_codeunits(addresses, 0, 12), addresses)
    addresses = pc.if_else(pa.array(kind == 3), pc.replace_substring(addresses, ".", ",", max_replacements=1),
                           addresses)
    repeats = addresses.take(rng.integers(0, unique, repeats_n))
    variant = np.arange(repeats_n) % 3
    repeats = pc.if_else(pa.array(variant == 0), pc.utf8_upper(repeats), repeats)
    repeats = pc.if_else(pa.array(variant == 1), pc.binary_join_element_wise(" ", repeats, " ", ""), repeats)
    blanks = pa.array([None, "", "  "], pa.string()).take(rng.integers(0, 3, blank_n))
    return pa.concat_arrays([addresses, repeats, blanks]).take(rng.permutation(rows))


def prepare(data_dir: Path, emails: int, cached: int, seed: int = 7) -> dict[str, int]:
    """Write the list (Parquet + 'ready' record) and a cache of `cached` of its addresses."""
    from lib import columns as C
    from lib.emails import normalise_emails, valid_syntax_mask
    from lib.store import Store, utc_now

    rng = np.random.default_rng(seed)
    store = Store(data_dir)
    cells = _addresses(rng, emails)
    listing = pd.DataFrame({
        "Customer ID": pd.Series(np.arange(emails) + 100_000).astype("string[pyarrow]"),
        "Email": pd.Series(pd.arrays.ArrowStringArray(cells.cast(pa.large_string()))),
        "Country": pd.Series(pa.array(["IN", "GB", "US", "NG"]).take(rng.integers(0, 4, emails)),
                             dtype="string[pyarrow]"),
    })
    record = store.create_list(name="Benchmark list", mode="sandbox", source_kind="csv",
                               source="benchmark.csv", state="ready")
    path = store.list_path(record.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    listing.to_parquet(path, index=False)
    normalised = normalise_emails(listing["Email"])
    valid = valid_syntax_mask(normalised)
    unique = normalised[valid].drop_duplicates()
    store.update_list(record.id, email_column="Email", rows=emails, valid_emails=int(valid.sum()),
                      unique_emails=len(unique), duplicates=int(valid.sum()) - len(unique),
                      missing_emails=int(normalised.isna().sum()))
    hits = unique.sample(n=min(cached, len(unique)), random_state=seed).astype(str).tolist()
    cache = pd.DataFrame({"email": hits})
    for name in C.CLEAROUT_COLUMN_NAMES:
        cache[name] = None
    cache[C.STATUS], cache[C.SAFE_TO_SEND], cache[C.REASON] = C.VALID, C.YES, "Success"
    store.upsert_cache(cache, verified_on=utc_now())
    store.close()
    return {"list_id": record.id, "rows": emails, "unique_valid": len(unique), "cached": len(hits)}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench verify-upload", description=__doc__.splitlines()[0])
    parser.add_argument("--emails", type=int, default=1_000_000)
    parser.add_argument("--cached", type=int, default=100_000)
    parser.add_argument("--prepare-only", metavar="DATA_DIR", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.prepare_only:
        print(json.dumps(prepare(Path(args.prepare_only), args.emails, args.cached)), flush=True)
        return 0

    workdir = Path(tempfile.mkdtemp(prefix="bench-verify-upload-"))
    sandbox = None
    try:
        with timer() as setup:
            built = subprocess.run([sys.executable, "-m", "bench", BENCH, "--emails", str(args.emails),
                                    "--cached", str(args.cached), "--prepare-only", str(workdir / "data")],
                                   check=True, capture_output=True, text=True)
        facts = json.loads(built.stdout.strip().splitlines()[-1])
        sandbox, sb = start_sandbox("--credits", "2000000", "--profiles", "100", "--bulk-seconds", "3600")
        figures = run(workdir / "data", facts["list_id"], sb)
        emit(BENCH, "rows", facts["rows"], "rows")
        emit(BENCH, "setup_seconds", setup[0], "s")
        for metric, (value, unit, target) in figures.items():
            emit(BENCH, metric, value, unit, target)
    finally:
        if sandbox is not None:
            sandbox.terminate()
            sandbox.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)
    return 0


def run(data_dir: Path, list_id: int, sb: dict[str, str]) -> dict[str, tuple[float, str, str | None]]:
    """The timed part: Start (the page records the request at the price it showed), then the worker's
    first round (plan again, write upload.csv: `prepare`) and second (the upload)."""
    from lib.access import local_user
    from lib.clearout import ClearoutClient
    from lib.store import Store
    from lib.verification import plan as P
    from lib.verification import start as S
    from lib.verification.worker import VerificationWorker

    store = Store(data_dir)
    client = ClearoutClient(sb["clearout_token"], base_url=sb["clearout_base"])
    parts: dict[str, float] = {"plan": 0.0, "write_uploads": 0.0}

    def timed(name: str, function):
        def wrapper(*a, **k):
            with timer() as t:
                result = function(*a, **k)
            parts[name] += t[0]
            return result
        return wrapper

    with timer() as price_time:  # what the page showed before Start (its first call writes the keys file)
        price = P.plan_verification(store, list_id, cache_days=CACHE_DAYS)
    parts["plan"] = price_time[0]
    balance = client.get_credits().available
    # Wrap the module's own steps so the breakdown comes from the real path, run once.
    original = S.addresses.write_uploads
    S.addresses.write_uploads = timed("write_uploads", original)
    worker = VerificationWorker(store, lambda: client, mode="sandbox", owner="bench", poll_seconds=3600,
                                cache_days=CACHE_DAYS)
    try:
        with timer() as start_time:
            job = S.start_verification(store, price, available_credits=balance, mode="sandbox", user=local_user())
            # The worker's first step: plan again, write the upload files (one per part of at most
            # 500,000 addresses), queue (its round then uploads up to three at once).
            S.prepare_job(store, store.job(job.id), cache_days=CACHE_DAYS)
    finally:
        S.addresses.write_uploads = original
    done = store.job(job.id)
    sent = store.list_jobs(parts_of=job.id) or [done]
    with timer() as upload_time:
        worker.run_once()
    sent = [store.job(j.id) for j in sent]
    if not all(j.clearout_list_id for j in sent):
        raise RuntimeError(f"the upload did not complete: {[(j.state, j.error) for j in sent]}")
    total = start_time[0] + upload_time[0]
    upload_bytes = sum(P.upload_path(store, j).stat().st_size for j in sent)
    client.close()
    return {
        "to_verify": (done.to_verify, "emails", None),
        "parts": (len(sent), "files", None),
        "cached": (done.cached, "emails", None),
        "syntax_invalid": (done.syntax_invalid, "emails", None),
        "upload_mb": (upload_bytes / 1e6, "MB", None),
        "price_seconds": (parts["plan"], "s", None),
        "write_uploads_seconds": (parts["write_uploads"], "s", None),
        "start_seconds": (start_time[0], "s", None),
        "upload_seconds": (upload_time[0], "s", None),
        "seconds": (total, "s", "<= 5"),
        "peak_rss_mb": (peak_rss_mb(), "MB", "<= 1000"),
    }
