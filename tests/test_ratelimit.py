"""lib/ratelimit.py: one budget per Clearout token and CleverTap account, across threads and processes."""
from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from lib import http
from lib.ratelimit import GateClosed, Gates, announced_wait

ROOT = Path(__file__).resolve().parent.parent


def hint(headers):
    return http.retry_after_seconds(headers)


def test_what_an_answer_announces() -> None:
    assert announced_wait(429, {"x-ratelimit-reset": "12", "x-ratelimit-remaining": "0"}, hint=hint) == 12
    assert announced_wait(503, {"Retry-After": "2"}, hint=hint) == 2
    assert announced_wait(200, {"x-ratelimit-remaining": "0", "x-ratelimit-reset": "40"}, hint=hint) == 40
    assert announced_wait(200, {"x-ratelimit-remaining": "3", "x-ratelimit-reset": "40"}, hint=hint) is None
    assert announced_wait(500, {}, hint=hint) is None and announced_wait(None, None, hint=hint) is None


def test_a_closed_window_holds_every_caller_until_it_ends(tmp_path: Path) -> None:
    now = [1000.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds

    gates = Gates(tmp_path, clock=lambda: now[0], sleep=sleep)
    with gates.clearout("token-a").call() as report:
        report(429, {"x-ratelimit-reset": "30", "x-ratelimit-remaining": "0"})
    with gates.clearout("token-a").call() as report:  # another client of the same token waits it out
        report(200, {"x-ratelimit-remaining": "4"})
    assert slept == [30.0]
    with gates.clearout("token-b").call():  # another token: its own budget
        pass
    assert slept == [30.0]
    with gates.clearout("token-a").call() as report:
        report(503, {"Retry-After": "5"})
    with pytest.raises(GateClosed, match="wait until"):
        with gates.clearout("token-a", max_wait=1).call():
            pass
    assert not any("token-a" in p.name for p in tmp_path.iterdir())  # file names are hashes, not tokens


def test_clearout_calls_of_one_token_go_one_at_a_time_across_threads(tmp_path: Path) -> None:
    gates = Gates(tmp_path)
    inside, most = [0], [0]
    lock = threading.Lock()

    def call() -> None:
        with gates.clearout("t").call():
            with lock:
                inside[0] += 1
                most[0] = max(most[0], inside[0])
            time.sleep(0.02)
            with lock:
                inside[0] -= 1

    threads = [threading.Thread(target=call) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert most[0] == 1


def test_clevertap_slots_bound_the_calls_in_flight_across_processes(tmp_path: Path) -> None:
    """Two processes of four threads each, three slots: never more than three calls at once."""
    script = (
        "import sys, threading, time\n"
        "from pathlib import Path\n"
        "from lib.ratelimit import Gates\n"
        "gates = Gates(Path(sys.argv[1]))\n"
        "log = Path(sys.argv[2])\n"
        "def call():\n"
        "    with gates.clevertap('W8R-1', 'profile', 3).call():\n"
        "        with log.open('a') as f: f.write(f'{time.monotonic()} +1\\n')\n"
        "        time.sleep(0.05)\n"
        "        with log.open('a') as f: f.write(f'{time.monotonic()} -1\\n')\n"
        "ts = [threading.Thread(target=call) for _ in range(4)]\n"
        "[t.start() for t in ts]; [t.join() for t in ts]\n")
    log = tmp_path / "calls.log"
    children = [subprocess.Popen([sys.executable, "-c", script, str(tmp_path / "gates"), str(log)], cwd=ROOT)
                for _ in range(2)]
    for child in children:
        assert child.wait(60) == 0
    events = sorted((float(t), int(d)) for t, d in (line.split() for line in log.read_text().splitlines()))
    running, most = 0, 0
    for _, delta in events:
        running += delta
        most = max(most, running)
    assert len(events) == 16 and 1 < most <= 3


class Heard:
    """A lib.activity reporter that keeps what it hears."""

    def __init__(self) -> None:
        self.heard: list[tuple] = []

    def step(self, *args) -> None:
        self.heard.append(("step", *args))

    def waiting(self, *args) -> None:
        self.heard.append(("waiting", *args))

    def retrying(self, *args) -> None:
        self.heard.append(("retrying", *args))


def test_a_wait_for_a_window_is_told_to_the_work_s_reporter(tmp_path: Path) -> None:
    from lib import activity

    now, slept = [1000.0], []
    gates = Gates(tmp_path, clock=lambda: now[0], sleep=lambda s: (slept.append(s), now.__setitem__(0, now[0] + s)))
    with gates.clearout("t").call() as report:
        report(429, {"x-ratelimit-reset": "20"})
    heard = Heard()
    with activity.reporting(heard), gates.clearout("t").call():
        pass
    assert heard.heard == [("waiting", "Clearout", 20.0, "rate limit")] and slept == [20.0]


def test_a_page_never_waits_on_a_rate_limit(tmp_path: Path) -> None:
    """A caller that may not wait (max_wait 0: a page's credentials check) is refused at once by a closed
    window, and waits only briefly for the app's own call holding the budget (that may be sleeping out
    a minute-long window)."""
    gates = Gates(tmp_path)
    with gates.clearout("t").call() as report:
        report(503, {"Retry-After": "30"})
    started = time.monotonic()
    with pytest.raises(GateClosed, match="asked the app to wait until"):
        with gates.clearout("t", max_wait=0).call():
            pass
    assert time.monotonic() - started < 0.5

    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with gates.clearout("u").call():  # the worker: inside its call (or sleeping in a window)
            holding.set()
            release.wait(10)

    worker = threading.Thread(target=hold)
    worker.start()
    holding.wait(5)
    started = time.monotonic()
    with pytest.raises(GateClosed, match="other Clearout calls") as caught:
        with gates.clearout("u", max_wait=0).call():
            pass
    waited = time.monotonic() - started
    release.set()
    worker.join()
    assert caught.value.busy and 1.5 < waited < 4
