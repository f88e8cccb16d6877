"""Connect step: test-and-save CleverTap projects, remove them, and the Clearout token.

Secrets go to the vault only (process memory, or `.env` 0600 when "remember" is ticked), and only
after the credentials were proven to work; the store keeps the non-secret fields.
"""
from __future__ import annotations

from dataclasses import dataclass

from lib import actions
from lib.access import ADMIN, User, require
from lib.clearout import ClearoutError, Credits
from lib.clevertap import REGIONS, CleverTapError, CleverTapWrongRegionError, region_from_dashboard_url
from lib.errors import UserError
from lib.ratelimit import GateClosed
from lib.runtime import Runtime
from lib.settings import Settings
from lib.store import Connection, StoreError
from lib.vault import TOKEN_KEY, passcode_env_key
from lib.verification.balance import current_balance

SANDBOX_NAME = "Sandbox demo"
REGION_HINT = "Your dashboard URL tells: https://in1.dashboard.clevertap.com/... is IN1."
# A credentials check is interactive: fail fast rather than retry for a minute behind a spinner.
CHECK_TIMEOUT_S = 20.0
CHECK_RETRIES = 1


class ConnectError(UserError):
    """Credentials could not be saved; `message` says what to fix. `region` names the right region
    when CleverTap knows the project elsewhere."""

    def __init__(self, message: str, *, region: str | None = None) -> None:
        super().__init__(message)
        self.region = region


@dataclass(frozen=True)
class FormDefaults:
    account_id: str
    region: str
    name: str
    passcode: str  # only ever the sandbox's printable demo passcode; never a real one
    passcode_hint: str | None
    can_remember: bool


@dataclass(frozen=True)
class ConnectionView:
    connection: Connection
    secret: str  # sandbox | settings | env | memory | needed
    origin: str = ""  # for settings and env: where the value was read, e.g. "the environment (CLEVERTAP_PASSCODE)"

    @property
    def secret_label(self) -> str:
        return {"sandbox": "the sandbox demo passcode, set by the app at every start",
                "env": f"passcode remembered in {self.origin}" if self.origin.startswith(".env")
                       else f"passcode from {self.origin}",
                "memory": "passcode entered here, kept in memory until the app restarts",
                "settings": f"passcode from {self.origin}",
                "needed": "passcode needed: the app restarted and it was not remembered"}[self.secret]


@dataclass(frozen=True)
class ClearoutView:
    storage: str  # sandbox | settings | env | memory | none
    credits: int | None  # the balance as last read, None while unknown
    message: str | None  # why it is unknown (or is being read)
    origin: str = ""  # for settings: where the value was read, e.g. ".env (CLEAROUT_API_TOKEN)"

    @property
    def storage_label(self) -> str:
        return {"sandbox": "sandbox token, active automatically",
                "settings": f"token from {self.origin}",
                "env": "token remembered in .env",
                "memory": "token entered here, kept in memory until the app restarts",
                "none": "no token yet"}[self.storage]


def secret_origin(settings: Settings, name: str) -> str:
    """Where a setting's value was read: the process environment wins over the .env file."""
    return f"the environment ({name})" if name in settings.from_environment else f".env ({name})"


def region_label(code: str) -> str:
    return f"{code} · {REGIONS[code].label}"


def resolve_region(selected: str | None, dashboard_url: str | None) -> str:
    """The region code: from a pasted dashboard URL when there is one, else the one selected."""
    if dashboard_url and dashboard_url.strip():
        code = region_from_dashboard_url(dashboard_url)
        if code is None:
            raise ConnectError("That is not a CleverTap dashboard URL: it looks like "
                               "https://in1.dashboard.clevertap.com/... (the part before .dashboard is the region).")
        return code
    code = (selected or "").strip().upper()
    if code not in REGIONS:
        raise ConnectError(f"Choose a region: {', '.join(REGIONS)}. {REGION_HINT}")
    return code


def can_remember(runtime: Runtime) -> bool:
    """Sandbox credentials are known anyway, and writing .env would start the next run in live mode."""
    return not runtime.settings.is_sandbox


def form_defaults(runtime: Runtime) -> FormDefaults:
    """What the Connect form starts with: the sandbox project, or the project configured in settings."""
    settings, sandbox = runtime.settings, runtime.sandbox
    connected = {(c.account_id, c.region) for c in runtime.store.list_connections(runtime.mode)}
    if sandbox is not None:
        if (sandbox.account_id, sandbox.region.upper()) not in connected:
            return FormDefaults(sandbox.account_id, sandbox.region.upper(), SANDBOX_NAME, sandbox.passcode,
                                None, False)
    elif settings.clevertap_account_id and (
            settings.clevertap_account_id, settings.clevertap_region or "") not in connected:
        hint = ("Leave empty to use CLEVERTAP_PASSCODE from your settings."
                if settings.clevertap_passcode else None)
        return FormDefaults(settings.clevertap_account_id, settings.clevertap_region or "IN1",
                            settings.clevertap_account_name or settings.clevertap_account_id, "", hint, True)
    return FormDefaults("", "IN1", "", "", None, can_remember(runtime))


def connection_views(runtime: Runtime) -> list[ConnectionView]:
    """This mode's connections, with where each passcode is (or that it is needed)."""
    vault, settings, sandbox = runtime.vault, runtime.settings, runtime.sandbox
    views = []
    for connection in runtime.store.list_connections(runtime.mode):
        passcode, origin = vault.passcode(connection.account_id), ""
        if vault.is_remembered(connection.account_id):
            secret, origin = "env", secret_origin(settings, passcode_env_key(connection.account_id))
        elif passcode is None:
            secret = "needed"
        elif sandbox is not None and connection.account_id == sandbox.account_id and passcode == sandbox.passcode:
            secret = "sandbox"
        elif (connection.account_id == settings.clevertap_account_id and settings.clevertap_passcode
              and passcode == settings.clevertap_passcode):
            secret, origin = "settings", secret_origin(settings, "CLEVERTAP_PASSCODE")
        else:
            secret = "memory"
        views.append(ConnectionView(connection, secret, origin))
    return views


def check_and_save(runtime: Runtime, *, name: str, account_id: str, passcode: str, region: str,
                   user: User, remember: bool = False) -> Connection:
    """Check the credentials against CleverTap, then save the connection and keep the passcode.

    An empty passcode means the one this process already holds for the project (from settings,
    or entered before). Nothing is saved when the check fails.

    Raises:
        NotAllowed: `user` is not an admin (a passcode is the key to the CRM).
        ConnectError: missing field, rejected credentials (wrong region: `region` says the right
            one), CleverTap unreachable, or the name is taken.
    """
    require(user, ADMIN, "Connecting a CleverTap project")
    name, account_id, typed = " ".join(name.split()), account_id.strip(), passcode.strip()
    if not account_id:
        raise ConnectError("Enter the Project ID (CleverTap dashboard → Settings → Project).")
    passcode = typed or runtime.vault.passcode(account_id) or ""
    if not passcode:
        raise ConnectError("Enter the passcode (CleverTap dashboard → Settings → Passcode).")
    if not name:
        raise ConnectError("Give the connection a name, e.g. the app or brand it belongs to.")
    region = resolve_region(region, None)
    taken = [c for c in runtime.store.list_connections(runtime.mode)
             if c.name == name and (c.account_id, c.region) != (account_id, region)]
    if taken:
        raise ConnectError(f"A connection named {name!r} already exists: pick another name.")
    # The one CleverTap call made from the page's process: the passcode just typed must not pass
    # through the store to reach the worker, and the check is short (CHECK_TIMEOUT_S, one retry).
    client = runtime.clients.clevertap_with(account_id, passcode, region, timeout=CHECK_TIMEOUT_S,
                                            max_retries=CHECK_RETRIES)
    try:
        client.check_credentials()
    except CleverTapWrongRegionError as exc:
        raise ConnectError(exc.message, region=exc.working_region) from None
    except (CleverTapError, GateClosed) as exc:  # GateClosed: the page does not wait on a rate limit
        raise ConnectError(exc.message) from None
    finally:
        client.close()
    remember = remember and can_remember(runtime)
    # A passcode the app already held (nothing typed) stays where it came from (the environment, .env)
    # unless "remember" asks to write it to .env.
    keep = not typed and not remember
    stored = "env" if remember or (keep and runtime.vault.is_remembered(account_id)) else "memory"
    try:
        connection = runtime.store.add_connection(name=name, account_id=account_id, region=region,
                                                  mode=runtime.mode, passcode_storage=stored)
    except StoreError as exc:
        raise ConnectError(exc.message) from None
    if not keep:
        runtime.vault.set_passcode(account_id, passcode, remember=remember)
    kept = ("passcode remembered in .env" if stored == "env" else
            "passcode already held by the app" if keep else "passcode kept in memory")
    actions.record(runtime.store, user, "connect", target=f"{connection.name} ({account_id}, {region})",
                   detail=kept, mode=runtime.mode)
    return connection


def remove_connection(runtime: Runtime, connection_id: int, *, user: User) -> None:
    """Remove a connection and its saved audiences; lists pulled from it stay. Its passcode is
    forgotten (and removed from .env) unless another connection uses the same project.

    Raises:
        NotAllowed: `user` is not an admin.
    """
    require(user, ADMIN, "Removing a connection")
    connection = runtime.store.get_connection(connection_id)
    if connection is None:
        return
    runtime.store.delete_connection(connection_id)
    still_used = any(c.account_id == connection.account_id
                     for mode in ("sandbox", "live") for c in runtime.store.list_connections(mode))
    if not still_used:
        runtime.vault.forget_passcode(connection.account_id)
    actions.record(runtime.store, user, "connection_removed",
                   target=f"{connection.name} ({connection.account_id}, {connection.region})", mode=connection.mode)


# ---- Clearout ------------------------------------------------------------------------------------
def clearout_view(runtime: Runtime) -> ClearoutView:
    """Where the token is and the credit balance as the worker last read it (or why it is not known)."""
    token = runtime.vault.clearout_token()
    if not token:
        return ClearoutView("none", None, None)
    if runtime.sandbox is not None and token == runtime.sandbox.clearout_token:
        storage = "sandbox"
    elif runtime.settings.clearout_api_token and token == runtime.settings.clearout_api_token:
        storage = "settings"
    else:
        storage = "env" if runtime.vault.is_token_remembered() else "memory"
    balance = current_balance(runtime.store, runtime.mode, has_token=True)
    origin = secret_origin(runtime.settings, TOKEN_KEY) if storage == "settings" else ""
    return ClearoutView(storage, balance.available, balance.message, origin)


def save_clearout_token(runtime: Runtime, token: str, *, user: User, remember: bool = False) -> Credits:
    """Check a Clearout token by reading its balance, then keep it. Nothing changes on failure.

    The check is made from the page's process, like the CleverTap one: the token just typed must not
    pass through the store.

    Raises:
        NotAllowed: `user` is not an admin.
        ConnectError: empty or rejected token, or Clearout unreachable (Clearout's message).
    """
    require(user, ADMIN, "Saving the Clearout token")
    token = token.strip()
    if not token:
        raise ConnectError("Enter the Clearout API token (app.clearout.io → Developer → API token).")
    try:
        with runtime.clients.clearout_with(token, timeout=CHECK_TIMEOUT_S, max_retries=CHECK_RETRIES) as client:
            credits = client.get_credits()
    except (ClearoutError, GateClosed) as exc:  # GateClosed: the page does not wait on a rate limit
        raise ConnectError(exc.message) from None
    remember = remember and can_remember(runtime)
    runtime.vault.set_clearout_token(token, remember=remember)
    runtime.store.record_balance(runtime.mode, available=credits.available, error=None)
    actions.record(runtime.store, user, "token_saved", target="Clearout API token",
                   detail="remembered in .env" if remember else "kept in memory", mode=runtime.mode)
    return credits
