"""Process-wide services: the store, the vault, the sandbox server (in sandbox mode), clients.

One `Runtime` per server process (lib/ui.py caches it with st.cache_resource); pages and workers
reach every durable or shared thing through it, never through module-level globals.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from lib.logs import install_secret_filter
from lib.settings import Settings
from lib.store import Connection, Store
from lib.vault import Vault

if TYPE_CHECKING:
    from lib.clearout import ClearoutClient
    from lib.clevertap import CleverTapClient
    from lib.sandbox import Sandbox

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    store: Store
    vault: Vault
    sandbox: "Sandbox | None" = None
    services: dict[str, Any] = field(default_factory=dict)  # workers, started by their modules

    @property
    def mode(self) -> str:
        return self.settings.app_mode

    def clevertap_base(self) -> str | None:
        """The CleverTap base URL (may hold `{region}`); None means the real regional hosts."""
        if self.settings.clevertap_api_base:
            return self.settings.clevertap_api_base
        return self.sandbox.clevertap_base_template if self.sandbox else None

    def clearout_base(self) -> str | None:
        if self.settings.clearout_api_base:
            return self.settings.clearout_api_base
        return self.sandbox.clearout_base if self.sandbox else None

    def clevertap_client(self, connection: Connection, passcode: str | None = None) -> "CleverTapClient":
        """A client for a saved connection; raises MissingSecretError if its passcode is unknown."""
        from lib.clevertap import CleverTapClient

        passcode = passcode or self.vault.passcode(connection.account_id)
        if not passcode:
            raise MissingSecretError(
                f"The passcode of {connection.name} is not known to this server (it was kept in memory "
                "and the app has restarted): enter it again on the Connect page.")
        return CleverTapClient(connection.account_id, passcode, connection.region,
                               base_url=self.clevertap_base())

    def clearout_client(self) -> "ClearoutClient":
        from lib.clearout import ClearoutClient

        token = self.vault.clearout_token()
        if not token:
            raise MissingSecretError("No Clearout API token yet: enter it on the Connect page.")
        return ClearoutClient(token, base_url=self.clearout_base())

    def close(self) -> None:
        for service in list(self.services.values()):
            stop = getattr(service, "stop", None)
            if stop:
                stop()
        self.services.clear()
        if self.sandbox is not None:
            self.sandbox.stop()
        self.store.close()


class MissingSecretError(RuntimeError):
    """A passcode or token is needed and this process does not hold it."""


def start_runtime(settings: Settings) -> Runtime:
    """Open the store, load secrets, and in sandbox mode start the local sandbox server."""
    install_secret_filter("streamlit", "lib")
    store = Store(settings.data_dir)
    vault = Vault(settings)
    sandbox = None
    if settings.is_sandbox:
        from lib.sandbox import Sandbox, SandboxConfig

        sandbox = Sandbox(SandboxConfig(
            seed=settings.sandbox_seed, profiles=settings.sandbox_profiles,
            latency_ms=settings.sandbox_latency_ms, fault_rate=settings.sandbox_fault_rate,
            bulk_seconds=settings.sandbox_bulk_seconds,
            # Keeps the simulated services' state beside ours, so an app restart finds its
            # bulk lists and profile changes where it left them, as it would with the real ones.
            state_dir=str(settings.data_dir / "sandbox"))).start()
        if not vault.clearout_token():
            vault.set_clearout_token(sandbox.clearout_token, remember=False)
        log.info("sandbox mode: simulated CleverTap and Clearout at %s", sandbox.clearout_base)
    runtime = Runtime(settings=settings, store=store, vault=vault, sandbox=sandbox)
    _start_workers(runtime)
    return runtime


def _start_workers(runtime: Runtime) -> None:
    """Background workers resume whatever the store says is in flight (after a restart too)."""
    from lib.pulls import start_pull_service

    start_pull_service(runtime)  # audience pulls; those a restart interrupted are marked failed
    from lib.jobs import start_worker

    start_worker(runtime)  # verification jobs: resumes uploads, polls and downloads in flight
    from lib.export import start_export_worker

    start_export_worker(runtime)  # export runs: resumes the batches a restart interrupted
