"""A local, deterministic CleverTap + Clearout server: the app's zero-configuration default and the
test bed of both clients.

    from lib.sandbox import Sandbox, SandboxConfig
    with Sandbox(SandboxConfig(seed=7, profiles=20_000)) as sb:
        sb.clevertap_base, sb.clearout_base, sb.account_id, sb.passcode, sb.clearout_token
        sb.stats()   # requests per route, in-flight maxima, bulk lists, credits, faults...

`python -m lib.sandbox --help` runs it standalone. Choices made where the real APIs are not
documented are listed in lib/sandbox/README.md.
"""
from __future__ import annotations

from lib.sandbox.config import REGIONS, SandboxConfig
from lib.sandbox.server import Sandbox
from lib.sandbox.state import StateDirBusy, StateMismatch

__all__ = ["REGIONS", "Sandbox", "SandboxConfig", "StateDirBusy", "StateMismatch"]
