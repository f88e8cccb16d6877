"""Where the app may serve: sign-in, the loopback zero-config, the network opt-out, or a refusal; and
`python -m lib.serve` refusing a network address without sign-in before it starts anything."""
from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from lib import serving
from lib.serve import streamlit_options_for
from lib.settings import load_settings
from tests.e2e_support import ROOT, app_environment

GOOD_AUTH = """[auth]
redirect_uri = "http://localhost:8501/oauth2callback"
cookie_secret = "a-long-random-string-for-tests"
client_id = "app"
client_secret = "secret"
server_metadata_url = "http://127.0.0.1:9/.well-known/openid-configuration"
"""


@pytest.mark.parametrize("address, loopback", [("127.0.0.1", True), ("127.8.0.1", True), ("localhost", True),
                                               ("::1", True), ("[::1]", True), ("0.0.0.0", False), ("", False),
                                               ("10.0.0.5", False), ("::", False), ("example.com", False)])
def test_loopback_addresses(address: str, loopback: bool) -> None:
    assert serving.is_loopback(address) is loopback


def test_the_address_comes_from_the_command_then_the_environment_then_config_toml(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[server]\naddress = "127.0.0.1"\n')
    assert serving.server_address([], {}, [config]) == "127.0.0.1"
    assert serving.server_address([], {}, [tmp_path / "absent.toml"]) == ""  # Streamlit's default: everywhere
    assert serving.server_address([], {"STREAMLIT_SERVER_ADDRESS": "0.0.0.0"}, [config]) == "0.0.0.0"
    assert serving.server_address(["--server.address", "::"], {"STREAMLIT_SERVER_ADDRESS": "x"}, [config]) == "::"
    assert serving.server_address(["--server.address=10.1.1.1"], {}, [config]) == "10.1.1.1"


def test_decisions() -> None:
    assert serving.decide("0.0.0.0", signin=True, allow_unauthenticated=False).serving == "signin"
    assert serving.decide("127.0.0.1", signin=False, allow_unauthenticated=False).serving == "local"
    refused = serving.decide("0.0.0.0", signin=False, allow_unauthenticated=False)
    assert refused.serving == "refuse" and "secrets.toml" in refused.message and serving.OPT_OUT in refused.message
    opened = serving.decide("", signin=False, allow_unauthenticated=True)
    assert opened.serving == "open" and "every network interface" in opened.message


def test_an_auth_section_must_be_complete(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(GOOD_AUTH)
    args = ["--server.address", "0.0.0.0", "--secrets.files", str(secrets)]
    assert serving.decide_for_command(args, allow_unauthenticated=False, cwd=tmp_path, environ={},
                                      home=tmp_path).serving == "signin"
    secrets.write_text(GOOD_AUTH.replace("/oauth2callback", "/callback"))
    broken = serving.decide_for_command(args, allow_unauthenticated=False, cwd=tmp_path, environ={}, home=tmp_path)
    assert broken.serving == "refuse" and "/oauth2callback" in broken.message
    secrets.write_text('[auth]\nclient_id = "app"\n')
    broken = serving.decide_for_command(args, allow_unauthenticated=False, cwd=tmp_path, environ={}, home=tmp_path)
    assert broken.serving == "refuse" and "cookie_secret" in broken.message
    # The project's own .streamlit/secrets.toml counts when no file is named.
    (tmp_path / ".streamlit").mkdir()
    (tmp_path / ".streamlit" / "secrets.toml").write_text(GOOD_AUTH)
    assert serving.decide_for_command(["--server.address", "0.0.0.0"], allow_unauthenticated=False, cwd=tmp_path,
                                      environ={}, home=tmp_path / "home").serving == "signin"


def serve(tmp_path: Path, *args: str, **environ: str) -> subprocess.CompletedProcess[str]:
    env = app_environment(tmp_path / "data", HOME=str(tmp_path / "home"), **environ)  # no ~/.streamlit secrets
    return subprocess.run([sys.executable, "-m", "lib.serve", "--server.headless", "true", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)


def test_serve_refuses_a_network_address_without_sign_in(tmp_path: Path) -> None:
    done = serve(tmp_path, "--server.address", "0.0.0.0")
    assert done.returncode != 0
    assert "Refusing to serve on 0.0.0.0 without sign-in" in done.stderr and "secrets.toml" in done.stderr
    assert "started" not in done.stderr  # nothing was started: no sandbox, no worker, no Streamlit
    done = serve(tmp_path, STREAMLIT_SERVER_ADDRESS="0.0.0.0")
    assert done.returncode != 0 and "Refusing to serve on 0.0.0.0" in done.stderr


def test_streamlit_gets_the_upload_cap_of_upload_max_mb(tmp_path: Path) -> None:
    settings = load_settings(tmp_path / ".env", environ={"UPLOAD_MAX_MB": "50"})
    assert streamlit_options_for(settings, ["--server.port", "1"]) == ["--server.port", "1",
                                                                      "--server.maxUploadSize", "50"]
    given = ["--server.maxUploadSize=10"]
    assert streamlit_options_for(settings, given) == given


def test_config_toml_keeps_loopback_xsrf_and_an_upload_cap_at_the_default_limit() -> None:
    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())["server"]
    assert config["address"] == "127.0.0.1"
    assert config.get("enableXsrfProtection", True) is True
    assert config["maxUploadSize"] == load_settings(ROOT / "absent.env", environ={}).upload_max_mb


def test_no_real_secrets_file_is_committed() -> None:
    ignored = subprocess.run(["git", "check-ignore", "-q", ".streamlit/secrets.toml"], cwd=ROOT)
    assert ignored.returncode == 0, ".streamlit/secrets.toml must be git-ignored"
    example = tomllib.loads((ROOT / ".streamlit" / "secrets.toml.example").read_text())
    assert set(serving.AUTH_KEYS) <= set(example["auth"])
