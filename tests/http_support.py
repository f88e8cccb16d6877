"""A scripted HTTP server for the client tests: each request gets the next scripted reply."""
from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class ScriptedServer:
    """Answers each request with the next scripted (status, headers, body); the last one repeats."""
    script: list[tuple[int, dict[str, str], object]]
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def next_reply(self) -> tuple[int, dict[str, str], object]:
        return self.script.pop(0) if len(self.script) > 1 else self.script[0]


class _Handler(BaseHTTPRequestHandler):
    server_version = "scripted/1"

    def _answer(self) -> None:
        scripted: ScriptedServer = self.server.scripted  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        scripted.seen.append(Seen(self.command, self.path, dict(self.headers.items()), body))
        status, headers, payload = scripted.next_reply()
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _answer

    def log_message(self, *args: object) -> None:  # keep test output quiet
        pass


@contextmanager
def scripted_servers() -> Iterator[Callable[[list[tuple[int, dict[str, str], object]]], ScriptedServer]]:
    """`start([(status, headers, body), ...])` starts a server on 127.0.0.1, port 0; all stop at the end."""
    servers: list[ThreadingHTTPServer] = []

    def start(script: list[tuple[int, dict[str, str], object]]) -> ScriptedServer:
        state = ScriptedServer(list(script))
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.scripted = state  # type: ignore[attr-defined]
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        servers.append(server)
        state.url = f"http://127.0.0.1:{server.server_address[1]}"
        return state

    try:
        yield start
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


def free_port() -> int:
    """A port nothing listens on (bound then released), for connection-refused tests."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
