"""The Clearout credit balance as the worker last read it, and when a page last asked for a fresh one.

Pages never call Clearout for it: they read this row (a few hundred bytes) on every render, and ask
for a fresh figure when it is older than a minute; the worker reads it within its rate budget.
"""
from __future__ import annotations

import time

from lib.store.db import Database
from lib.store.records import BalanceRecord, from_row


class BalancesStore(Database):
    def balance(self, mode: str) -> BalanceRecord | None:
        return from_row(BalanceRecord, self._one("SELECT * FROM balances WHERE mode = ?", (mode,)))

    def want_balance(self, mode: str) -> None:
        """Ask the worker for a fresh balance (a page found it stale, or credits were just spent)."""
        with self._tx() as con:
            con.execute("INSERT INTO balances (mode, wanted_at) VALUES (?, ?) "
                        "ON CONFLICT (mode) DO UPDATE SET wanted_at = excluded.wanted_at", (mode, time.time()))

    def record_balance(self, mode: str, *, available: int | None, error: str | None,
                       keep_figure: bool = False) -> None:
        """The worker's answer: the figure, or why it could not be read (`keep_figure`: the last
        figure still stands, e.g. Clearout was busy; not when the token was rejected)."""
        keep = "COALESCE(excluded.available, balances.available)" if keep_figure else "excluded.available"
        with self._tx() as con:
            con.execute(f"""INSERT INTO balances (mode, available, error, fetched_at) VALUES (?, ?, ?, ?)
                            ON CONFLICT (mode) DO UPDATE SET available = {keep},
                                error = excluded.error, fetched_at = excluded.fetched_at""",
                        (mode, available, error, time.time()))
