"""What long work is doing right now, for the pages: its step, progress within it, waits and retries.

The worker runs each job's, run's or task's work under a `Reporter` (`reporting(...)`), which keeps
what it hears in the store; pages show it. Below, the code that knows tells the current reporter:
the HTTP retry loop when a call failed and is tried again (`retrying`), the rate-limit gates when a
call waits for a window an API announced (`waiting`), long loops how far they are (`step`). With no
reporter (a page's own credentials check, most tests) these calls do nothing.

The reporter is a context variable, so each thread has its own; work handed to a thread pool takes
the submitter's reporter along with `carry`.
"""
from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


class Reporter(Protocol):
    def step(self, text: str, done: int | None = None, total: int | None = None) -> None:
        """What the work is doing now (`text`), and how far (`done` of `total`) when it counts."""

    def waiting(self, api: str, seconds: float, why: str) -> None:
        """The next call to `api` waits `seconds` (e.g. a rate-limit window the API announced)."""

    def retrying(self, api: str, retry: int, retries: int, why: str, delay: float) -> None:
        """A call to `api` failed (`why`, e.g. "HTTP 503"): retry number `retry` of at most `retries`
        follows in `delay` seconds."""


_current: contextvars.ContextVar[Reporter | None] = contextvars.ContextVar("activity_reporter", default=None)


@contextmanager
def reporting(reporter: Reporter | None) -> Iterator[None]:
    """Report what happens inside this block (in this thread, and in work it `carry`s along) to `reporter`."""
    token = _current.set(reporter)
    try:
        yield
    finally:
        _current.reset(token)


def step(text: str, done: int | None = None, total: int | None = None) -> None:
    reporter = _current.get()
    if reporter is not None:
        reporter.step(text, done, total)


def waiting(api: str, seconds: float, why: str) -> None:
    reporter = _current.get()
    if reporter is not None and seconds > 0:
        reporter.waiting(api, seconds, why)


def retrying(api: str, retry: int, retries: int, why: str, delay: float) -> None:
    reporter = _current.get()
    if reporter is not None:
        reporter.retrying(api, retry, retries, why, delay)


def carry(function: Callable[P, R]) -> Callable[P, R]:
    """`function` to run in other threads with this thread's reporter (for `pool.submit`/`pool.map`).

    The context is captured here; each call runs in its own copy of it, since one context can be
    entered by one thread at a time.
    """
    captured = contextvars.copy_context()

    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        return captured.copy().run(function, *args, **kwargs)

    return run
