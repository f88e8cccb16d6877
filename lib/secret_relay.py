"""Secrets held in the Streamlit process's memory, lent to the worker process over a private socket.

A passcode entered on Connect without "remember" lives only in the memory of the process that
received it (the Streamlit server): never in the store, a file or a log. The worker process needs it
to write to CleverTap, so the Streamlit process answers the worker's questions on a Unix socket.
Only processes of the same user may ask: the server checks the peer's uid (SO_PEERCRED), and on
Linux the socket lives in the abstract namespace (no file to leave behind or to race for); elsewhere
it is a file in DATA_DIR/run, in a directory only the user may enter. A process of the same user
could read .env anyway, so this lends nothing they could not reach.

One JSON line asked, one answered: {"want": "passcode", "account_id": "..."} or
{"want": "clearout_token"} → {"value": "..." | null}.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import socketserver
import struct
import sys
import threading
from pathlib import Path
from typing import Protocol

log = logging.getLogger(__name__)

TIMEOUT_S = 2.0
_MAX_LINE = 4096


class SecretSource(Protocol):
    def passcode(self, account_id: str) -> str | None: ...

    def clearout_token(self) -> str | None: ...


def relay_address(data_dir: Path) -> str:
    """The socket address for a data directory: one relay per installation."""
    if sys.platform.startswith("linux"):
        digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:24]
        return f"\0clevertap-clearout-relay-{digest}"
    run = data_dir / "run"
    run.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(run, 0o700)
    return str(run / "relay.sock")


def _peer_uid(sock: socket.socket) -> int | None:
    try:
        raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    except (AttributeError, OSError):
        return None  # not Linux: the socket file's directory (0700) keeps other users out
    return int(struct.unpack("3i", raw)[1])


class _Handler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        uid = _peer_uid(self.connection)
        if uid is not None and uid != os.getuid():
            log.warning("secret relay: refused a process of another user (uid %s)", uid)
            return
        line = self.rfile.readline(_MAX_LINE)
        try:
            ask = json.loads(line)
            want = ask.get("want")
            if want == "passcode":
                value = self.server.source.passcode(str(ask.get("account_id") or ""))
            elif want == "clearout_token":
                value = self.server.source.clearout_token()
            else:
                value = None
        except (ValueError, AttributeError):
            value = None
        self.wfile.write(json.dumps({"value": value}).encode() + b"\n")


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, address: str, source: SecretSource) -> None:
        self.source = source
        super().__init__(address, _Handler)


class RelayServer:
    """Answers the worker's questions from `source` (the Streamlit process's vault) until `close()`."""

    def __init__(self, address: str, source: SecretSource) -> None:
        self.address = address
        if not address.startswith("\0"):
            Path(address).unlink(missing_ok=True)
        self._server = _Server(address, source)
        if not address.startswith("\0"):
            os.chmod(address, 0o600)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="secret-relay", daemon=True)
        self._thread.start()

    @classmethod
    def try_start(cls, address: str, source: SecretSource) -> RelayServer | None:
        """Start serving, or None when another process of this installation already serves."""
        try:
            return cls(address, source)
        except OSError as exc:
            log.warning("secret relay not started (%s): the worker sees only remembered secrets", exc.strerror)
            return None

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if not self.address.startswith("\0"):
            Path(self.address).unlink(missing_ok=True)


class RelayClient:
    """Asks the Streamlit process for a secret; None when it does not hold it or does not answer."""

    def __init__(self, address: str) -> None:
        self.address = address

    def _ask(self, question: dict[str, str]) -> str | None:
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(TIMEOUT_S)
                sock.connect(self.address)
                sock.sendall(json.dumps(question).encode() + b"\n")
                answer = sock.makefile("rb").readline(_MAX_LINE)
        except OSError:
            return None
        try:
            value = json.loads(answer).get("value")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, str) and value else None

    def passcode(self, account_id: str) -> str | None:
        return self._ask({"want": "passcode", "account_id": account_id})

    def clearout_token(self) -> str | None:
        return self._ask({"want": "clearout_token"})
