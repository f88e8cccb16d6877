"""A process's composition root: settings, the store, the vault, where the APIs are, and the clients.

Both processes build one `Runtime`: the Streamlit server (`lib.ui.runtime()`, cached for every
session) and the worker (`python -m lib.worker`). Services receive what they need from it (the
store, `Clients`, the mode) as arguments; nothing reaches into it from below.
"""
from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from collections.abc import Callable

from lib.clearout import ClearoutClient
from lib.clevertap import API_CONCURRENCY, CleverTapClient
from lib.errors import UserError
from lib.logs import configure_logging
from lib.ratelimit import Gates, SerialGate, SlotGate
from lib.sandbox.endpoint import SandboxEndpoint
from lib.secret_relay import RelayClient, RelayServer, relay_address
from lib.settings import Mode, Settings
from lib.store import Connection, Store
from lib.vault import Vault

log = logging.getLogger(__name__)


class MissingSecretError(UserError):
    """A passcode or token is needed and this app does not hold it (the message says where to enter it)."""


def _fingerprint(secret: str) -> str:
    # Keys the shared clients by secret without keeping the secret itself as a dict key.
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


class Clients:
    """The one place that puts secrets into API clients; shares one client (one Session) per secret.

    `clearout()` and `clevertap(connection)` return a long-lived shared client: callers must not
    close it. `clearout_with()`/`clevertap_with()` make a private client for a secret someone just
    typed (a credentials check); those are the caller's to close.
    """

    def __init__(self, vault: Vault, *, clevertap_base: str | None, clearout_base: str | None,
                 gates: Gates | None = None) -> None:
        self.vault = vault
        self.clevertap_base = clevertap_base  # may hold {region}; None: the real regional hosts
        self.clearout_base = clearout_base
        self.gates = gates  # the rate budgets every process of the installation shares
        self._slot_gates: dict[tuple[str, str], SlotGate] = {}
        self._lock = threading.Lock()
        self._clearout: dict[str, ClearoutClient] = {}
        self._clevertap: dict[tuple[str, str, str], CleverTapClient] = {}

    def has_clearout_token(self) -> bool:
        return bool(self.vault.clearout_token())

    def clearout(self) -> ClearoutClient:
        """The shared client of the Clearout token this app holds.

        Raises:
            MissingSecretError: no token yet.
        """
        token = self.vault.clearout_token()
        if not token:
            raise MissingSecretError("No Clearout API token yet: enter it on the Connect page.")
        key = _fingerprint(token)
        with self._lock:
            client = self._clearout.get(key)
            if client is None:
                client = self._clearout[key] = ClearoutClient(token, base_url=self.clearout_base,
                                                              gate=self._clearout_gate(token, None))
        return client

    def _clearout_gate(self, token: str, max_wait: float | None) -> SerialGate | None:
        return None if self.gates is None else self.gates.clearout(token, max_wait=max_wait)

    def _clevertap_gates(self, account_id: str, *, max_wait: float | None = None) -> Callable[[str], SlotGate | None]:
        def gate(api: str) -> SlotGate | None:
            if self.gates is None:
                return None
            if max_wait is not None:  # a caller that may not wait: a gate of its own, not the shared one
                return self.gates.clevertap(account_id, api, API_CONCURRENCY[api], max_wait=max_wait)
            with self._lock:
                found = self._slot_gates.get((account_id, api))
                if found is None:
                    found = self._slot_gates[(account_id, api)] = self.gates.clevertap(
                        account_id, api, API_CONCURRENCY[api])
            return found
        return gate

    def clevertap(self, connection: Connection) -> CleverTapClient:
        """The shared client of a saved connection.

        Raises:
            MissingSecretError: the passcode is not known to this app (kept in memory, then a restart).
        """
        passcode = self.vault.passcode(connection.account_id)
        if not passcode:
            raise MissingSecretError(
                f"The passcode of {connection.name} is not known to this app (it was kept in memory and the "
                "app has restarted): enter it again on the Connect page.")
        key = (connection.account_id, connection.region, _fingerprint(passcode))
        with self._lock:
            client = self._clevertap.get(key)
            if client is None:
                client = self._clevertap[key] = CleverTapClient(
                    connection.account_id, passcode, connection.region, base_url=self.clevertap_base,
                    gates=self._clevertap_gates(connection.account_id))
        return client

    def clearout_with(self, token: str, *, timeout: float, max_retries: int) -> ClearoutClient:
        """For a check while a person waits on a page: a page never waits on a rate limit. A window the
        API announced is refused at once (lib.ratelimit.GateClosed says until when), and the app's
        own calls holding the budget are waited for only briefly (BUSY_WAIT_S)."""
        return ClearoutClient(token, base_url=self.clearout_base, timeout=timeout, max_retries=max_retries,
                              gate=self._clearout_gate(token, 0.0))

    def clevertap_with(self, account_id: str, passcode: str, region: str, *, timeout: float,
                       max_retries: int) -> CleverTapClient:
        """For a credentials check on a page: like `clearout_with`, it never waits on a rate limit."""
        return CleverTapClient(account_id, passcode, region, base_url=self.clevertap_base, timeout=timeout,
                               max_retries=max_retries, gates=self._clevertap_gates(account_id.strip(), max_wait=0.0))

    def close(self) -> None:
        with self._lock:
            clients: list[ClearoutClient | CleverTapClient] = [*self._clearout.values(), *self._clevertap.values()]
            self._clearout.clear()
            self._clevertap.clear()
        for client in clients:
            client.close()


@dataclass
class Runtime:
    settings: Settings
    store: Store
    vault: Vault
    clients: Clients
    sandbox: SandboxEndpoint | None = None  # in sandbox mode: the simulated services and their demo credentials
    _closers: list[Callable[[], None]] = field(default_factory=list, repr=False)

    @property
    def mode(self) -> Mode:
        return self.settings.app_mode

    def close(self) -> None:
        for close in reversed(self._closers):
            try:
                close()
            except Exception:
                log.exception("closing the runtime")
        self._closers.clear()
        self.clients.close()
        self.store.close()


def _sandbox(settings: Settings, closers: list[Callable[[], None]]) -> SandboxEndpoint:
    """The sandbox this process talks to: SANDBOX_URL (the run script starts one for both processes),
    or one started here, in this process, which keeps its state in DATA_DIR/sandbox."""
    if settings.sandbox_url:
        return SandboxEndpoint.at(settings.sandbox_url, seed=settings.sandbox_seed)
    from lib.sandbox import Sandbox, SandboxConfig

    server = Sandbox(SandboxConfig(
        seed=settings.sandbox_seed, profiles=settings.sandbox_profiles,
        latency_ms=settings.sandbox_latency_ms, fault_rate=settings.sandbox_fault_rate,
        bulk_seconds=settings.sandbox_bulk_seconds, rpm=settings.sandbox_rpm,
        state_dir=str(settings.data_dir / "sandbox"))).start()
    closers.append(server.stop)
    log.info("sandbox mode: simulated CleverTap and Clearout in this process at %s", server.base_url)
    return SandboxEndpoint.at(server.base_url, seed=settings.sandbox_seed, region=server.region)


def start_runtime(settings: Settings, *, role: str = "app") -> Runtime:
    """Open the store and the vault, find the APIs (in sandbox mode, the sandbox), build the clients.

    Args:
        role: "app" (the Streamlit server: it lends secrets kept in its memory to the worker) or
            "worker" (asks the app for them).
    """
    configure_logging()
    store = Store(settings.data_dir)
    closers: list[Callable[[], None]] = []
    address = relay_address(settings.data_dir)
    vault = Vault(settings, relay=RelayClient(address) if role == "worker" else None)
    sandbox = _sandbox(settings, closers) if settings.is_sandbox else None
    if sandbox is not None:
        # The demo credentials are known to every process: a restart never asks for them.
        if not vault.clearout_token():
            vault.set_clearout_token(sandbox.clearout_token, remember=False)
        if vault.passcode(sandbox.account_id) is None:
            vault.set_passcode(sandbox.account_id, sandbox.passcode, remember=False)
    if role == "app" and (relay := RelayServer.try_start(address, vault)) is not None:
        closers.append(relay.close)
    clients = Clients(
        vault,
        clevertap_base=settings.clevertap_api_base or (sandbox.clevertap_base_template if sandbox else None),
        clearout_base=settings.clearout_api_base or (sandbox.clearout_base if sandbox else None),
        gates=Gates(settings.data_dir / "run" / "gates"))
    return Runtime(settings=settings, store=store, vault=vault, clients=clients, sandbox=sandbox, _closers=closers)
