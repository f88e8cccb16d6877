"""`python -m lib.sandbox [--port N] ...`: serve the sandbox until SIGTERM/SIGINT.

Prints one JSON line with the base URLs and the (fake, demo) credentials, then serves.
"""
from __future__ import annotations

import argparse
import gc
import json
import signal
import sys
import threading

from lib.sandbox import Sandbox, SandboxConfig, StateDirBusy, StateMismatch


def parse_args(argv: list[str]) -> SandboxConfig:
    defaults = SandboxConfig()
    parser = argparse.ArgumentParser(prog="python -m lib.sandbox",
                                     description="Local CleverTap + Clearout sandbox server (127.0.0.1).")
    parser.add_argument("--port", type=int, default=defaults.port, help="0 picks a free port")
    parser.add_argument("--latency-ms", type=float, default=defaults.latency_ms,
                        help="answer no sooner than this after a request arrives (the sandbox's own "
                             "processing counts towards it)")
    parser.add_argument("--fault-rate", type=float, default=defaults.fault_rate)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--profiles", type=int, default=defaults.profiles)
    parser.add_argument("--rpm", type=int, default=defaults.rpm, help="Clearout requests per minute")
    parser.add_argument("--rpm-window-s", type=float, default=defaults.rpm_window_s,
                        help="length of Clearout's rate-limit window in seconds (shorter only for tests)")
    parser.add_argument("--fault-retry-after-s", type=int, default=defaults.fault_retry_after_s,
                        help="Retry-After (whole seconds) of an injected Clearout 503")
    parser.add_argument("--bulk-seconds", type=float, default=defaults.bulk_seconds)
    parser.add_argument("--credits", type=int, default=defaults.credits)
    parser.add_argument("--state-dir", default=None, help="persist changes here (else in memory)")
    parser.add_argument("--region", default=defaults.region)
    parser.add_argument("--in-progress-polls", type=int, default=defaults.in_progress_polls)
    args = parser.parse_args(argv)
    return SandboxConfig(seed=args.seed, profiles=args.profiles, latency_ms=args.latency_ms,
                         fault_rate=args.fault_rate, rpm=args.rpm, rpm_window_s=args.rpm_window_s,
                         fault_retry_after_s=args.fault_retry_after_s, bulk_seconds=args.bulk_seconds,
                         credits=args.credits, port=args.port, state_dir=args.state_dir,
                         region=args.region, in_progress_polls=args.in_progress_polls)


def main(argv: list[str]) -> int:
    config = parse_args(argv)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    sandbox = Sandbox(config)
    try:
        sandbox.start()
    except (StateDirBusy, StateMismatch) as exc:
        print(f"python -m lib.sandbox: {exc}", file=sys.stderr)
        return 2
    with sandbox:
        # Everything allocated so far (modules, the dataset) lives as long as the process. Each
        # upload call allocates thousands of short-lived containers (its parsed records), which
        # trigger collections: frozen, the long-lived heap is not walked by each of them (1.3 of
        # 3.6 ms of CPU per 1000-record upload), and with a first threshold above a call's records
        # the young ones are rarely walked either (0.4 ms per call). Process-wide, so only here and
        # not when the sandbox runs in a test or in the app's own process.
        gc.freeze()
        gc.set_threshold(10_000)
        print(json.dumps({"clevertap_base": sandbox.clevertap_base, "clearout_base": sandbox.clearout_base,
                          "account_id": sandbox.account_id, "passcode": sandbox.passcode,
                          "region": sandbox.region, "clearout_token": sandbox.clearout_token}), flush=True)
        while not stop.is_set():
            stop.wait(0.5)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
