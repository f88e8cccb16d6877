from __future__ import annotations

import io
import logging
import subprocess
import sys
from pathlib import Path

import pytest

from lib.logs import install_secret_filter, mask, register_secret
from lib.settings import Settings, SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent
SECRET_PASSCODE = "pc-SEKRIT-1f4e9a77"
SECRET_TOKEN = "tok-SEKRIT-0b3c5d9e:abcdef"


def write_env(path: Path, **values: str) -> Path:
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()))
    return path


def test_environment_wins_over_env_file(tmp_path: Path) -> None:
    env = write_env(tmp_path / ".env", CLEVERTAP_REGION="eu1", DATA_DIR="/from/file", VERIFY_CACHE_DAYS="7")
    settings = load_settings(env, environ={"CLEVERTAP_REGION": "in1"})
    assert settings.clevertap_region == "IN1"
    assert settings.data_dir == Path("/from/file")
    assert settings.verify_cache_days == 7


def test_missing_env_file_is_fine(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "absent.env", environ={})
    assert settings.data_dir == Path("./data")
    assert settings.verify_cache_days == 30


@pytest.mark.parametrize("values, mode", [
    ({}, "sandbox"),
    ({"CLEVERTAP_ACCOUNT_ID": "W8R-8R5-K55Z"}, "sandbox"),  # an id alone is no credential
    ({"CLEVERTAP_PASSCODE": SECRET_PASSCODE}, "live"),
    ({"CLEAROUT_API_TOKEN": SECRET_TOKEN}, "live"),
    ({"CLEVERTAP_PASSCODE_W8R_8R5_K55Z": SECRET_PASSCODE}, "live"),  # remembered on Connect
    ({"CLEAROUT_API_TOKEN": SECRET_TOKEN, "APP_MODE": "sandbox"}, "sandbox"),
    ({"APP_MODE": "LIVE"}, "live"),
])
def test_mode_detection(tmp_path: Path, values: dict[str, str], mode: str) -> None:
    assert load_settings(tmp_path / "none", environ=values).app_mode == mode


def test_mode_from_env_file(tmp_path: Path) -> None:
    env = write_env(tmp_path / ".env", CLEAROUT_API_TOKEN=SECRET_TOKEN)
    assert load_settings(env, environ={}).app_mode == "live"


def test_bad_values_name_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="APP_MODE"):
        load_settings(tmp_path / "none", environ={"APP_MODE": "prod"})
    with pytest.raises(SettingsError, match="UPLOAD_MAX_MB"):
        load_settings(tmp_path / "none", environ={"UPLOAD_MAX_MB": "lots"})


def test_repr_and_str_are_redacted(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / "none", environ={
        "CLEVERTAP_PASSCODE": SECRET_PASSCODE, "CLEAROUT_API_TOKEN": SECRET_TOKEN,
        "CLEVERTAP_PASSCODE_ABC": SECRET_PASSCODE + "x", "CLEVERTAP_ACCOUNT_ID": "W8R-8R5-K55Z"})
    for text in (repr(settings), str(settings), f"{settings}", repr([settings])):
        assert SECRET_PASSCODE not in text and SECRET_TOKEN not in text
        assert "W8R-8R5-K55Z" in text  # non-secret fields stay readable
    assert isinstance(settings, Settings) and settings.clevertap_passcode == SECRET_PASSCODE


def test_log_records_are_masked_on_handlers_outside_lib(caplog: pytest.LogCaptureFixture) -> None:
    register_secret(SECRET_TOKEN)
    install_secret_filter()  # caplog's handler sits on the root logger during the test
    assert any(f for f in caplog.handler.filters)
    logger = logging.getLogger("someone.else")
    with caplog.at_level(logging.INFO):
        logger.info("calling with token %s", SECRET_TOKEN)
        try:
            raise ValueError(f"boom {SECRET_TOKEN}")
        except ValueError:
            logger.exception("failed")
    assert SECRET_TOKEN not in caplog.text
    assert "calling with token ***" in caplog.text and "boom ***" in caplog.text


def test_lib_loggers_go_through_the_masked_handler_only() -> None:
    """Importing lib installed it (lib/__init__.py): every lib.* record meets the mask, and none
    propagates to handlers we do not control."""
    register_secret(SECRET_TOKEN)
    lib_logger = logging.getLogger("lib")
    [handler] = [h for h in lib_logger.handlers if h.get_name() == "lib-masked"]
    assert lib_logger.propagate is False
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        logger = logging.getLogger("lib.clearout")
        logger.warning("calling with token %s", SECRET_TOKEN)
        try:
            raise ValueError(f"boom {SECRET_TOKEN}")
        except ValueError:
            logger.exception("failed")
    finally:
        handler.setStream(previous)
    assert SECRET_TOKEN not in buffer.getvalue()
    assert "calling with token ***" in buffer.getvalue() and "boom ***" in buffer.getvalue()


def test_a_fresh_process_masks_lib_loggers_from_the_first_import() -> None:
    """A process that only imports a lib module and logs (as a worker, a bench or `streamlit run`
    would): the token is masked in what it prints."""
    script = ("import logging, lib.clearout\n"
              "from lib.logs import register_secret\n"
              f"register_secret({SECRET_TOKEN!r})\n"
              f"logging.getLogger('lib.clearout').warning('token=%s', {SECRET_TOKEN!r})\n"
              f"logging.getLogger('lib.some.deep.module').error('again %s', {SECRET_TOKEN!r})\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert SECRET_TOKEN not in output
    assert "lib.clearout: token=***" in output and "lib.some.deep.module: again ***" in output


def test_mask_ignores_trivially_short_values() -> None:
    register_secret("ab")
    assert mask("about a cab") == "about a cab"
