"""The Clearout credit balance: a ledger of charges, persisted when the sandbox has a state_dir."""
from __future__ import annotations

import threading
from collections.abc import Callable

from lib.sandbox.state import StateStore


class CreditLedger:
    def __init__(self, initial: int, state: StateStore | None, clock: Callable[[], float]) -> None:
        self._lock = threading.Lock()
        self._state = state
        self._clock = clock
        if state is not None:
            stored = state.get_meta("credits_initial")
            if stored is None:
                state.set_meta("credits_initial", str(initial))
            else:
                initial = int(stored)  # the first start's grant stands, like a real account
            self._balance = initial + state.ledger_total()
        else:
            self._balance = initial
        self.charged = 0

    @property
    def balance(self) -> int:
        with self._lock:
            return self._balance

    def charge(self, amount: int, reason: str, ref: str | None = None) -> None:
        """Spend credits (never below zero: a list's final charge may exceed what is left)."""
        if amount <= 0:
            return
        with self._lock:
            amount = min(amount, self._balance)
            self._balance -= amount
            self.charged += amount
            if self._state is not None:
                self._state.add_ledger(self._clock(), -amount, reason, ref)
