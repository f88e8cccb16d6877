"""Sandbox knobs and the fake, seed-derived credentials of its one CleverTap project and Clearout account."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

# CleverTap's regions as they appear in API host names (`in1.api.clevertap.com`); Europe is eu1.
REGIONS = ("eu1", "in1", "us1", "sg1", "aps3", "mec1")

_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O/1/I: demo ids get read aloud and typed


@dataclass(frozen=True)
class SandboxConfig:
    """Every knob of the sandbox; the CLI flags of `python -m lib.sandbox` map onto these fields."""

    seed: int = 7
    profiles: int = 20_000
    latency_ms: float = 0  # answers leave no sooner than this after the request arrived (processing included)
    fault_rate: float = 0.0
    rpm: int = 600
    rpm_window_s: float = 60.0  # Clearout's per-minute window (shorter only for tests)
    fault_retry_after_s: int = 2  # the Retry-After of an injected Clearout 503
    bulk_seconds: float = 20.0
    credits: int = 250_000
    port: int = 0
    state_dir: str | Path | None = None
    region: str = "in1"
    upload_concurrency: int = 15
    read_concurrency: int = 3
    in_progress_polls: int = 1
    result_url_ttl_s: float = 300
    result_retention_days: float = 30

    def __post_init__(self) -> None:
        if self.region.lower() not in REGIONS:
            raise ValueError(f"region must be one of {', '.join(REGIONS)}, not {self.region!r}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError("fault_rate must be between 0 and 1")
        if self.profiles < 0:
            raise ValueError("profiles must be zero or more")
        if not self.rpm_window_s > 0:
            raise ValueError("rpm_window_s must be more than 0")
        if isinstance(self.fault_retry_after_s, bool) or not isinstance(self.fault_retry_after_s, int) \
                or self.fault_retry_after_s < 1:
            raise ValueError("fault_retry_after_s must be a whole number of seconds, 1 or more")


@dataclass(frozen=True)
class Credentials:
    """Obviously fake demo credentials; fine to print, never valid anywhere but this sandbox."""

    account_id: str
    passcode: str
    clearout_token: str

    def __repr__(self) -> str:  # printable by design, but keep the habit of never echoing secrets
        return f"Credentials(account_id={self.account_id!r}, passcode=***, clearout_token=***)"


def _digest(seed: int, purpose: str) -> bytes:
    return hashlib.sha256(f"clevertap-clearout-sandbox:{seed}:{purpose}".encode()).digest()


def _letters(seed: int, purpose: str, count: int) -> str:
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in _digest(seed, purpose)[:count])


def derive_credentials(seed: int) -> Credentials:
    """Credentials shaped like the real ones (`W8R-8R5-K55Z`; Clearout `<32>:<64>`), derived from the seed."""
    account_id = f"W9R-SANDBOX-{_letters(seed, 'account', 4)}"
    passcode = f"SBX-{_letters(seed, 'passcode', 3)}-{_letters(seed, 'passcode2', 4)}"
    token = (hashlib.sha256(f"{seed}:token-a".encode()).hexdigest()[:32] + ":"
             + hashlib.sha256(f"{seed}:token-b".encode()).hexdigest())
    return Credentials(account_id=account_id, passcode=passcode, clearout_token=token)


def derive_key(seed: int, purpose: str) -> bytes:
    """A secret-ish key for HMACs (cursors) that survives restarts with the same seed."""
    return _digest(seed, "key:" + purpose)
