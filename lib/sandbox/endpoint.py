"""A running sandbox as the app sees it: its address and demo credentials, and its stats over HTTP.

The app (Streamlit and the worker, separate processes) reaches one sandbox server, started by the
run script (`python -m lib.serve`) and named by SANDBOX_URL; its credentials derive from the seed.
"""
from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass, field
from typing import Any

from lib.sandbox.config import derive_credentials


@dataclass(frozen=True)
class SandboxEndpoint:
    url: str  # http://127.0.0.1:PORT
    region: str  # upper case, e.g. IN1
    account_id: str
    passcode: str = field(repr=False)  # fake and printable, but the habit stays
    clearout_token: str = field(repr=False)

    @classmethod
    def at(cls, url: str, *, seed: int, region: str = "in1") -> SandboxEndpoint:
        credentials = derive_credentials(seed)
        return cls(url.rstrip("/"), region.upper(), credentials.account_id, credentials.passcode,
                   credentials.clearout_token)

    @property
    def clevertap_base_template(self) -> str:
        return f"{self.url}/clevertap/{{region}}"

    @property
    def clevertap_base(self) -> str:
        return f"{self.url}/clevertap/{self.region.lower()}"

    @property
    def clearout_base(self) -> str:
        return f"{self.url}/clearout/v2"

    def stats(self) -> dict[str, Any]:
        """The server's counters (`Sandbox.stats()`), read over its admin route."""
        with urllib.request.urlopen(f"{self.url}/_sandbox/stats", timeout=10) as answer:
            stats: dict[str, Any] = json.loads(answer.read())
        return stats
