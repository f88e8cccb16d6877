"""The Clearout credit balance: read by the worker within the token's rate budget, shown from the store.

Pages never call Clearout for it. They show the figure the worker last read (with its age) and,
when it is older than BALANCE_TTL_S, ask for a fresh one; the worker also refreshes it when a job
ends, since that is when credits were spent.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

from lib.clearout import ClearoutAuthError, ClearoutClient, ClearoutError
from lib.store import Store

BALANCE_TTL_S = 60.0  # the balance moves when jobs run, and each read costs a Clearout request
ASK_AGAIN_S = 5.0     # a page asks for a fresh figure at most this often
NO_TOKEN = "No Clearout API token yet: enter it on the Connect page."
READING = "Reading the balance from Clearout…"


@dataclass(frozen=True)
class Balance:
    available: int | None  # None when not known (yet)
    message: str | None    # why not, or that it is being read, in words a user can act on
    as_of: float | None = None  # epoch seconds of the figure


def current_balance(store: Store, mode: str, *, has_token: bool, now: float | None = None) -> Balance:
    """The balance as the worker last read it; asks for a fresh one when it is stale."""
    if not has_token:
        return Balance(None, NO_TOKEN)
    now = time.time() if now is None else now
    record = store.balance(mode)
    stale = record is None or record.fetched_at is None or now - record.fetched_at > BALANCE_TTL_S
    if stale and (record is None or record.wanted_at is None or now - record.wanted_at > ASK_AGAIN_S):
        store.want_balance(mode)
    if record is None or record.fetched_at is None:
        return Balance(None, READING)
    return Balance(record.available, record.error if record.error else None, record.fetched_at)


def balance_wanted(store: Store, mode: str, now: float | None = None) -> bool:
    """Has a page (or a finished job) asked for a figure newer than the last one read?"""
    record = store.balance(mode)
    if record is None or record.wanted_at is None:
        return False
    return record.fetched_at is None or record.wanted_at > record.fetched_at


def refresh_balance(store: Store, mode: str, client: ClearoutClient) -> None:
    """Read the balance from Clearout (in the worker) and keep it for the pages."""
    try:
        credits = client.get_credits()
    except ClearoutAuthError as exc:
        store.record_balance(mode, available=None, error=exc.message)
    except ClearoutError as exc:
        store.record_balance(mode, available=None, error=exc.message, keep_figure=True)
    else:
        store.record_balance(mode, available=credits.available, error=None)
