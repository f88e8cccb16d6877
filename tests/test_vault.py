from __future__ import annotations

import stat
from pathlib import Path

from lib.logs import mask
from lib.settings import load_settings
from lib.vault import Vault, passcode_env_key

PASSCODE = "XQZ-secret-passcode-77"


def make_vault(tmp_path: Path, **environ: str) -> Vault:
    return Vault(load_settings(tmp_path / ".env", environ=environ))


def test_memory_only_by_default(tmp_path: Path) -> None:
    vault = make_vault(tmp_path)
    vault.set_passcode("W8R-1", PASSCODE, remember=False)
    assert vault.passcode("W8R-1") == PASSCODE
    assert not (tmp_path / ".env").exists()
    assert make_vault(tmp_path).passcode("W8R-1") is None  # gone with the process


def test_remember_writes_a_private_env_file_read_at_next_start(tmp_path: Path) -> None:
    vault = make_vault(tmp_path)
    vault.set_passcode("W8R-1", PASSCODE, remember=True)
    env = tmp_path / ".env"
    assert stat.S_IMODE(env.stat().st_mode) == 0o600
    assert passcode_env_key("W8R-1") in env.read_text()
    restarted = make_vault(tmp_path)
    assert restarted.passcode("W8R-1") == PASSCODE and restarted.is_remembered("W8R-1")
    restarted.forget_passcode("W8R-1")
    assert PASSCODE not in env.read_text()
    assert make_vault(tmp_path).passcode("W8R-1") is None


def test_secrets_are_masked_once_known(tmp_path: Path) -> None:
    vault = make_vault(tmp_path)
    vault.set_clearout_token("tok-" + PASSCODE, remember=False)
    assert mask(f"token tok-{PASSCODE}") == "token ***"


def test_configured_passcode_belongs_to_configured_project(tmp_path: Path) -> None:
    vault = make_vault(tmp_path, CLEVERTAP_ACCOUNT_ID="W8R-9", CLEVERTAP_PASSCODE=PASSCODE)
    assert vault.passcode("W8R-9") == PASSCODE and vault.passcode("W8R-1") is None
