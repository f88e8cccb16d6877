"""Settings from the environment and a `.env` file (the real environment wins)."""
from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal
from collections.abc import Mapping

from dotenv import dotenv_values

from lib.errors import UserError

Mode = Literal["sandbox", "live"]
SECRET_FIELDS = ("clevertap_passcode", "clearout_api_token")
DEFAULT_ENV_FILE = Path(".env")
ROLE_NAMES = ("viewer", "operator", "admin")  # lowest first; lib.access gives them meaning
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


class SettingsError(UserError):
    """A setting has a value we cannot use; the message names the setting."""


@dataclass(frozen=True)
class Settings:
    app_mode: Mode
    data_dir: Path
    env_file: Path
    clevertap_account_id: str | None = None
    clevertap_passcode: str | None = field(default=None, repr=False)
    clevertap_region: str | None = None
    clevertap_account_name: str | None = None
    clevertap_api_base: str | None = None
    clearout_api_token: str | None = field(default=None, repr=False)
    clearout_api_base: str | None = None
    verify_cache_days: int = 30
    verify_part_rows: int = 500_000  # Clearout advises at most this many rows per bulk file
    upload_max_mb: int = 200
    export_guardrail_pct: float = 30.0
    sandbox_latency_ms: int = 0
    sandbox_bulk_seconds: float = 20.0
    sandbox_profiles: int = 20_000
    sandbox_seed: int = 7
    sandbox_fault_rate: float = 0.0
    sandbox_rpm: int = 600  # Clearout requests per minute the sandbox allows per token
    sandbox_url: str | None = None  # a running sandbox (the run script starts one for both processes)
    sandbox_port: int = 0  # the port the run script starts the sandbox on (0: any free one)
    # Sign-in roles: lower-cased e-mail addresses and "@domain" entries (lib.access reads them).
    auth_admins: tuple[str, ...] = ()
    auth_operators: tuple[str, ...] = ()
    auth_viewers: tuple[str, ...] = ()
    auth_default_role: str | None = None  # the role of a signed-in person on no list; None: no access
    allow_unauthenticated_network: bool = False  # serve beyond loopback without sign-in (loudly labelled)
    # Every `<NAME>=value` of the .env and environment, for remembered per-project passcodes
    # (CLEVERTAP_PASSCODE_<ACCOUNT>); never rendered.
    extra_secrets: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)
    # Which settings came from the process environment rather than the .env file, so the Connect page
    # says where a passcode or token really comes from.
    from_environment: frozenset[str] = field(default_factory=frozenset, repr=False, compare=False)

    @property
    def is_sandbox(self) -> bool:
        return self.app_mode == "sandbox"

    @property
    def upload_max_bytes(self) -> int:
        """UPLOAD_MAX_MB in bytes, counted as Streamlit's uploader counts a megabyte (2**20 bytes): the
        uploader (its max_upload_size) and the import then refuse the same files."""
        return self.upload_max_mb * 2**20

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in SECRET_FIELDS:
                shown.append(f"{f.name}={'***' if value else None}")
            elif f.name == "extra_secrets":
                shown.append(f"extra_secrets=<{len(value)} hidden>")
            elif f.name == "from_environment":
                continue
            else:
                shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    __str__ = __repr__


def _merged(env_file: Path, environ: Mapping[str, str]) -> dict[str, str]:
    values = {k: v for k, v in dotenv_values(env_file).items() if v is not None} if env_file.is_file() else {}
    values.update(environ)  # the real environment wins over .env
    return values


def _text(values: Mapping[str, str], name: str) -> str | None:
    value = values.get(name, "").strip()
    return value or None


def _number(values: Mapping[str, str], name: str, default: float, cast: type[int] | type[float] = int) -> float:
    raw = _text(values, name)
    if raw is None:
        return default
    try:
        return float(cast(raw))
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def _flag(values: Mapping[str, str], name: str) -> bool:
    raw = (_text(values, name) or "").lower()
    if raw in _TRUE or raw in _FALSE:
        return raw in _TRUE
    raise SettingsError(f"{name} must be 1 or 0, got {raw!r}")


def _people(values: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list of e-mail addresses and @domain entries, lower-cased."""
    entries = []
    for entry in (_text(values, name) or "").replace(";", ",").split(","):
        entry = entry.strip().lower()
        if not entry:
            continue
        local, at, domain = entry.rpartition("@")
        if not at or not domain or "." not in domain or " " in entry or "@" in local:
            raise SettingsError(f"{name} takes e-mail addresses and @domain entries separated by commas "
                                f"(e.g. ana@example.com, @example.com), got {entry!r}")
        entries.append(entry)
    return tuple(entries)


def _role(values: Mapping[str, str], name: str) -> str | None:
    raw = (_text(values, name) or "").lower()
    if raw in ("", "none"):
        return None
    if raw not in ROLE_NAMES:
        raise SettingsError(f"{name} must be one of {', '.join(ROLE_NAMES)} or none, got {raw!r}")
    return raw


def load_settings(env_file: Path | str | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    """Read settings; `env_file` defaults to ENV_FILE or ./.env, `environ` to os.environ."""
    environ = os.environ if environ is None else environ
    env_path = Path(env_file or environ.get("ENV_FILE") or DEFAULT_ENV_FILE)
    values = _merged(env_path, environ)

    passcode = _text(values, "CLEVERTAP_PASSCODE")
    token = _text(values, "CLEAROUT_API_TOKEN")
    remembered = {k: v for k, v in values.items() if k.startswith("CLEVERTAP_PASSCODE_") and v}
    mode = (_text(values, "APP_MODE") or "").lower()
    if mode and mode not in ("sandbox", "live"):
        raise SettingsError(f"APP_MODE must be 'sandbox' or 'live', got {mode!r}")
    if not mode:
        has_credentials = bool(passcode or token or remembered)
        mode = "live" if has_credentials else "sandbox"
    region = _text(values, "CLEVERTAP_REGION")
    return Settings(
        app_mode=mode,  # type: ignore[arg-type]
        data_dir=Path(_text(values, "DATA_DIR") or "./data"),
        env_file=env_path,
        clevertap_account_id=_text(values, "CLEVERTAP_ACCOUNT_ID"),
        clevertap_passcode=passcode,
        clevertap_region=region.upper() if region else None,
        clevertap_account_name=_text(values, "CLEVERTAP_ACCOUNT_NAME"),
        clevertap_api_base=_text(values, "CLEVERTAP_API_BASE"),
        clearout_api_token=token,
        clearout_api_base=_text(values, "CLEAROUT_API_BASE"),
        verify_cache_days=int(_number(values, "VERIFY_CACHE_DAYS", 30)),
        verify_part_rows=int(_number(values, "VERIFY_PART_ROWS", 500_000)),
        upload_max_mb=int(_number(values, "UPLOAD_MAX_MB", 200)),
        export_guardrail_pct=float(_number(values, "EXPORT_GUARDRAIL_PCT", 30.0, float)),
        sandbox_latency_ms=int(_number(values, "SANDBOX_LATENCY_MS", 0)),
        sandbox_bulk_seconds=float(_number(values, "SANDBOX_BULK_SECONDS", 20.0, float)),
        sandbox_profiles=int(_number(values, "SANDBOX_PROFILES", 20_000)),
        sandbox_seed=int(_number(values, "SANDBOX_SEED", 7)),
        sandbox_fault_rate=float(_number(values, "SANDBOX_FAULT_RATE", 0.0, float)),
        sandbox_rpm=int(_number(values, "SANDBOX_RPM", 600)),
        sandbox_url=_text(values, "SANDBOX_URL"),
        sandbox_port=int(_number(values, "SANDBOX_PORT", 0)),
        auth_admins=_people(values, "AUTH_ADMINS"),
        auth_operators=_people(values, "AUTH_OPERATORS"),
        auth_viewers=_people(values, "AUTH_VIEWERS"),
        auth_default_role=_role(values, "AUTH_DEFAULT_ROLE"),
        allow_unauthenticated_network=_flag(values, "ALLOW_UNAUTHENTICATED_NETWORK"),
        extra_secrets=remembered,
        from_environment=frozenset(k for k, v in environ.items() if v and v.strip()),
    )
