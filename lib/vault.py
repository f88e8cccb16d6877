"""Where secrets live: process memory, or the `.env` file (mode 0600) when the user says "remember".

Never the SQLite store, never a log line (every secret is registered with the masking filter),
never page output. Passcodes are keyed by CleverTap project id: a project lives in one region.

The worker process has a vault of its own, with a `relay` to the Streamlit process's vault for
secrets entered there and kept in its memory (lib/secret_relay.py); on a miss it also reads `.env`
again, where a passcode may have been remembered since it started.
"""
from __future__ import annotations

import os
import re
import threading
from pathlib import Path

from dotenv import dotenv_values, set_key, unset_key

from lib.logs import register_secret
from lib.secret_relay import SecretSource
from lib.settings import Settings

TOKEN_KEY = "CLEAROUT_API_TOKEN"


def passcode_env_key(account_id: str) -> str:
    """The .env name of a remembered passcode, e.g. CLEVERTAP_PASSCODE_W8R_8R5_K55Z."""
    return "CLEVERTAP_PASSCODE_" + re.sub(r"[^A-Za-z0-9]", "_", account_id).upper()


class Vault:
    """Secrets of this server process; shared by every browser session, like the store."""

    def __init__(self, settings: Settings, relay: SecretSource | None = None) -> None:
        self._env_file = settings.env_file
        self._relay = relay
        self._lock = threading.Lock()
        self._passcodes: dict[str, str] = {}
        self._remembered: dict[str, str] = dict(settings.extra_secrets)
        self._token = settings.clearout_api_token
        if settings.clevertap_account_id and settings.clevertap_passcode:
            self._passcodes[settings.clevertap_account_id] = settings.clevertap_passcode
        for secret in (*self._passcodes.values(), *self._remembered.values(), self._token):
            register_secret(secret)

    # ---- CleverTap passcodes --------------------------------------------------------------
    def set_passcode(self, account_id: str, passcode: str, *, remember: bool) -> None:
        register_secret(passcode)
        with self._lock:
            self._passcodes[account_id] = passcode
            if remember:
                self._write_env(passcode_env_key(account_id), passcode)
                self._remembered[passcode_env_key(account_id)] = passcode
            elif self._remembered.pop(passcode_env_key(account_id), None) is not None:
                self._remove_env(passcode_env_key(account_id))

    def passcode(self, account_id: str) -> str | None:
        with self._lock:
            known = self._passcodes.get(account_id) or self._remembered.get(passcode_env_key(account_id))
        if known is None and self._relay is not None:
            known = self._env_value(passcode_env_key(account_id)) or self._relay.passcode(account_id)
            register_secret(known)
        return known

    def is_remembered(self, account_id: str) -> bool:
        with self._lock:
            return passcode_env_key(account_id) in self._remembered

    def forget_passcode(self, account_id: str) -> None:
        with self._lock:
            self._passcodes.pop(account_id, None)
            if self._remembered.pop(passcode_env_key(account_id), None) is not None:
                self._remove_env(passcode_env_key(account_id))

    # ---- Clearout token -------------------------------------------------------------------
    def set_clearout_token(self, token: str, *, remember: bool) -> None:
        register_secret(token)
        with self._lock:
            self._token = token
            if remember:
                self._write_env(TOKEN_KEY, token)
            elif self._env_has(TOKEN_KEY):
                # Else the old remembered token would come back at the next start.
                self._remove_env(TOKEN_KEY)

    def clearout_token(self) -> str | None:
        with self._lock:
            known = self._token
        if known is None and self._relay is not None:
            known = self._env_value(TOKEN_KEY) or self._relay.clearout_token()
            register_secret(known)
        return known

    def is_token_remembered(self) -> bool:
        with self._lock:
            return self._token is not None and self._env_has(TOKEN_KEY)

    def forget_clearout_token(self) -> None:
        with self._lock:
            self._token = None
            self._remove_env(TOKEN_KEY)

    # ---- .env -----------------------------------------------------------------------------
    def _write_env(self, key: str, value: str) -> None:
        path = Path(self._env_file)
        if not path.exists():
            # Create it private before any secret is written into it.
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
        set_key(str(path), key, value, quote_mode="always")
        os.chmod(path, 0o600)

    def _env_value(self, key: str) -> str | None:
        path = Path(self._env_file)
        return (dotenv_values(path).get(key) or None) if path.is_file() else None

    def _env_has(self, key: str) -> bool:
        path = Path(self._env_file)
        return path.is_file() and bool(dotenv_values(path).get(key))

    def _remove_env(self, key: str) -> None:
        path = Path(self._env_file)
        if path.exists():
            unset_key(str(path), key, quote_mode="always")
            os.chmod(path, 0o600)
