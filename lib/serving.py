"""Whether the app may serve where it is asked to listen: sign-in, the loopback zero-config, or a refusal.

* Sign-in configured (an `[auth]` section in Streamlit's secrets): everyone signs in (lib.access).
* No sign-in, listening on a loopback address: one local user, with every right (zero-config).
* No sign-in, listening beyond this machine: refused, unless ALLOW_UNAUTHENTICATED_NETWORK=1 says
  someone else guards the door (an SSO proxy); then every page says so.

`python -m lib.serve` decides before it starts anything; the app decides again on every page (it
may have been started with plain `streamlit run`).
"""
from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

AUTH_KEYS = ("redirect_uri", "cookie_secret", "client_id", "client_secret", "server_metadata_url")
CALLBACK_PATH = "/oauth2callback"
OPT_OUT = "ALLOW_UNAUTHENTICATED_NETWORK"

Serving = Literal["signin", "local", "open", "refuse"]


def streamlit_options(argv: Sequence[str], name: str) -> list[str]:
    """Every value of a Streamlit option on a command line (`--server.address X` or `--server.address=X`)."""
    found, flag = [], f"--{name}"
    for i, arg in enumerate(argv):
        if arg == flag and i + 1 < len(argv):
            found.append(argv[i + 1])
        elif arg.startswith(flag + "="):
            found.append(arg.split("=", 1)[1])
    return found


def _toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except FileNotFoundError:
        return {}
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path} is not valid TOML: {exc}") from None


def server_address(argv: Sequence[str], environ: Mapping[str, str], config_files: Sequence[Path]) -> str:
    """Where Streamlit will listen: the command line, else STREAMLIT_SERVER_ADDRESS, else the last
    config.toml that sets it; "" (every interface, Streamlit's default) when nothing does."""
    given = streamlit_options(argv, "server.address")
    if given:
        return given[-1]
    if environ.get("STREAMLIT_SERVER_ADDRESS"):
        return environ["STREAMLIT_SERVER_ADDRESS"]
    address = ""
    for path in config_files:
        address = str(_toml(path).get("server", {}).get("address", address))
    return address


def default_files(name: str, cwd: Path, home: Path) -> list[Path]:
    """Where Streamlit looks for config.toml and secrets.toml: the user's, then the project's (which wins)."""
    return [home / ".streamlit" / name, cwd / ".streamlit" / name]


def secrets_files(argv: Sequence[str], environ: Mapping[str, str], cwd: Path, home: Path) -> list[Path]:
    """The secrets files Streamlit will read: `--secrets.files` (tests point it at a temporary one),
    else STREAMLIT_SECRETS_FILES, else the default places."""
    given = streamlit_options(argv, "secrets.files")
    if not given and environ.get("STREAMLIT_SECRETS_FILES"):
        given = [environ["STREAMLIT_SECRETS_FILES"]]
    return [Path(p) for p in given] if given else default_files("secrets.toml", cwd, home)


def auth_section(files: Sequence[Path | str]) -> dict[str, Any] | None:
    """The `[auth]` section the secrets files give (later files win, as in Streamlit), or None."""
    section: dict[str, Any] | None = None
    for path in files:
        found = _toml(Path(path)).get("auth")
        if isinstance(found, dict):
            section = {**(section or {}), **found}
    return section


def auth_problem(section: Mapping[str, Any]) -> str | None:
    """What is wrong with an `[auth]` section (for the default provider), or None."""
    missing = [key for key in AUTH_KEYS if not str(section.get(key) or "").strip()]
    if missing:
        return f"The [auth] section of .streamlit/secrets.toml lacks {', '.join(missing)} (see secrets.toml.example)."
    if not str(section["redirect_uri"]).rstrip("/").endswith(CALLBACK_PATH):
        return f"[auth] redirect_uri must end in {CALLBACK_PATH} (e.g. http://localhost:8501{CALLBACK_PATH})."
    return None


def is_loopback(address: str) -> bool:
    """127.0.0.0/8, ::1 and localhost reach this machine only; "" and 0.0.0.0 mean every interface."""
    address = address.strip().strip("[]")
    if address == "localhost":
        return True
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class Decision:
    serving: Serving
    address: str
    message: str = ""


def decide(address: str, *, signin: bool, allow_unauthenticated: bool) -> Decision:
    """How the app serves on `address`: sign-in, one local user, open to a network (opted out), or not at all."""
    if signin:
        return Decision("signin", address)
    if is_loopback(address):
        return Decision("local", address)
    shown = address or "every network interface"
    if allow_unauthenticated:
        return Decision("open", address, f"No sign-in, and this app listens on {shown}: anyone who can reach it "
                                         f"may read every list and write to CleverTap ({OPT_OUT}=1).")
    return Decision("refuse", address, (
        f"Refusing to serve on {shown} without sign-in: anyone who can reach the port could read every list, "
        "spend Clearout credits and unsubscribe CleverTap profiles. Configure sign-in: copy "
        ".streamlit/secrets.toml.example to .streamlit/secrets.toml and fill in [auth] for your identity "
        "provider (README, \"Sign-in\"). Or listen on 127.0.0.1 only. To serve without sign-in anyway "
        f"(behind your own SSO proxy), set {OPT_OUT}=1."))


def decide_for_command(argv: Sequence[str], *, allow_unauthenticated: bool, cwd: Path | None = None,
                       environ: Mapping[str, str] | None = None, home: Path | None = None) -> Decision:
    """The decision for `streamlit run <argv> app.py` started from `cwd` (what lib.serve is about to do).

    A broken `[auth]` section refuses too: the app would offer a sign-in that cannot work.
    """
    cwd = cwd or Path.cwd()
    environ = os.environ if environ is None else environ
    home = home or Path.home()
    address = server_address(argv, environ, default_files("config.toml", cwd, home))
    try:
        section = auth_section(secrets_files(argv, environ, cwd, home))
    except ValueError as exc:
        return Decision("refuse", address, str(exc))
    if section is not None and (problem := auth_problem(section)):
        return Decision("refuse", address, problem)
    return decide(address, signin=section is not None, allow_unauthenticated=allow_unauthenticated)
