"""The sandbox HTTP server: one port for CleverTap (every region), Clearout, result files and stats.

Per request, in this order: route (unknown paths 404), fault injection (decided before anything
changes, so a fault never half-applies), auth, limits (CleverTap concurrency per API, Clearout
requests per minute), the handler, then latency: the answer leaves no sooner than `latency_ms` after
the request line arrived. The sandbox's own work counts towards that time, as a remote service's
processing is part of the latency its callers see; a request holds its in-flight slot until then.
Around the pipeline, a request that arrived inside a wait announced to its caller (a Clearout 429,
a Retry-After) is counted, and the wait its own answer announces is recorded (limits.WaitWindows).
"""
from __future__ import annotations

import hmac
import json
import logging
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from lib.sandbox.bulk import BulkRegistry
from lib.sandbox.clearout_api import ClearoutApi, serve_result_file
from lib.sandbox.clevertap_api import (AUTH_INVALID, NOT_FOUND, TOO_MANY_CONCURRENT, WRONG_REGION, CleverTapApi)
from lib.sandbox.config import REGIONS, SandboxConfig, derive_credentials, derive_key
from lib.sandbox.credits import CreditLedger
from lib.sandbox.dataset import Dataset
from lib.sandbox.limits import (Clock, ConcurrencyLimiter, Counters, FaultInjector, RpmLimiter, WaitWindows)
from lib.sandbox.profiles import ProfileStore
from lib.sandbox.state import StateDirLock, StateStore
from lib.sandbox.wire import Request, Response, json_response

log = logging.getLogger("lib.sandbox")

_MAX_JSON_BODY = 64 << 20
_CLEVERTAP_ERRORS = {
    500: {"status": "fail", "error": "Internal Server Error", "code": 500},
    503: {"status": "fail", "error": "Service Unavailable. Please try again later", "code": 503},
    429: TOO_MANY_CONCURRENT,
}
_CLEAROUT_ERRORS = {
    500: {"status": "failed", "error": {"message": "Internal server error, please try again"}},
    503: {"status": "failed", "error": {"message": "Service unavailable, please try again later"}},
}
_RATE_LIMITED = ("You have reached API rate limit, try calling after {when} or to increase limit "
                 "upgrade plan or reach us@clearout.io")


@dataclass(frozen=True)
class Route:
    name: str                  # stats key, e.g. "clevertap.upload"
    api: str                   # "clevertap" | "clearout" | "files" | "admin"
    handler: Callable[[Request], Response]
    group: str | None = None   # CleverTap concurrency pool
    streaming: bool = False    # the handler reads the body itself


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 256  # socketserver's default of 5 resets bursts of 20 parallel connects

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.connections_lock:
            self.connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.connections_lock:
            self.connections.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        with self.connections_lock:
            open_sockets = list(self.connections)
        for sock in open_sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: clients reuse connections like they would live
    # A streamed file's headers and body leave in separate writes; with Nagle on, the body would
    # wait for the client's delayed ACK (~40 ms per request). TCP_NODELAY, as real servers set it.
    disable_nagle_algorithm = True
    server: _Server
    received = 0.0  # time.monotonic() when the request line was read: latency counts from here

    def parse_request(self) -> bool:
        self.received = time.monotonic()
        return super().parse_request()

    def do_GET(self) -> None:
        self.server.sandbox._dispatch(self)

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    def log_message(self, format: str, *args: Any) -> None:
        pass  # no access log: request lines carry emails in query strings


class Sandbox:
    """A local CleverTap + Clearout server on 127.0.0.1 (see docs/architecture.md, "Sandbox")."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        credentials = derive_credentials(self.config.seed)
        self.account_id = credentials.account_id
        self.passcode = credentials.passcode
        self.clearout_token = credentials.clearout_token
        self.region = self.config.region.upper()
        self.anchor_date: date = datetime.now(UTC).date()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._tempdir: str | None = None
        self._state: StateStore | None = None
        self._lock: StateDirLock | None = None

    def __repr__(self) -> str:
        return f"Sandbox(port={self.port}, region={self.region}, seed={self.config.seed})"

    # ---- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Sandbox:
        """Serve on 127.0.0.1; with a state_dir, first take its lock (StateDirBusy if another has it)."""
        if self._server is not None:
            return self
        try:
            self._start()
        except BaseException:
            if getattr(self, "bulk", None) is not None:
                self.bulk.stop()
            self._release()  # a failed start keeps nothing: lock, database, temp dir
            raise
        return self

    def _start(self) -> None:
        cfg = self.config
        if cfg.state_dir is not None:
            root = Path(cfg.state_dir)
            self._lock = StateDirLock(root)
            self._state = StateStore(root, cfg.seed, cfg.profiles)
        else:
            self._tempdir = tempfile.mkdtemp(prefix="sandbox-")
            root = Path(self._tempdir)
        self.anchor_date = datetime.now(UTC).date()
        self.clock = Clock()
        self.counters = Counters()
        self.dataset = Dataset(cfg.seed, cfg.profiles, self.anchor_date)
        self.store = ProfileStore(self.dataset, self._state)
        self.credits = CreditLedger(cfg.credits, self._state, self.clock)
        self.bulk = BulkRegistry(root / "lists", self._state, self.credits, self.clock, cfg.bulk_seconds,
                                 cfg.result_retention_days * 86400, self.counters)
        self.limiters = {
            "upload": ConcurrencyLimiter(cfg.upload_concurrency),
            "subscribe": ConcurrencyLimiter(cfg.upload_concurrency),
            "profile": ConcurrencyLimiter(cfg.read_concurrency),
            "profiles": ConcurrencyLimiter(cfg.read_concurrency),
            "counts": ConcurrencyLimiter(cfg.read_concurrency),
        }
        self.rpm = RpmLimiter(cfg.rpm, self.clock, cfg.rpm_window_s)
        self.waits = WaitWindows()
        self.faults = FaultInjector(cfg.fault_rate, cfg.seed)
        self.clevertap = CleverTapApi(self.store, self.counters, self.clock, derive_key(cfg.seed, "cursor"),
                                      cfg.in_progress_polls, cfg.seed)
        self.clearout = ClearoutApi(self.bulk, self.credits, self.counters, self.clock,
                                    lambda: self.base_url, cfg.result_url_ttl_s)
        self._routes = self._build_routes()
        self._server = _Server(("127.0.0.1", cfg.port), self)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="sandbox-http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.close_connections()
        self._server.server_close()
        self.bulk.stop()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._release()

    def _release(self) -> None:
        if self._state is not None:
            self._state.close()
            self._state = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- addresses ---------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self._server.server_address[1] if self._server else 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def clevertap_base(self) -> str:
        return f"{self.base_url}/clevertap/{self.config.region.lower()}"

    @property
    def clevertap_base_template(self) -> str:
        return f"{self.base_url}/clevertap/{{region}}"

    @property
    def clearout_base(self) -> str:
        return f"{self.base_url}/clearout/v2"

    # ---- test helpers ------------------------------------------------------------------------
    def stats(self) -> dict[str, Any]:
        """Counters since start (or the last reset_stats)."""
        self.bulk.settle()  # lists whose time is up count as completed, as the next request would see
        counters = self.counters.snapshot()
        requests = {k[len("requests."):]: v for k, v in counters.items() if k.startswith("requests.")}
        responses = {k[len("response."):]: v for k, v in counters.items() if k.startswith("response.")}

        flat = {k: v for k, v in counters.items() if not k.startswith(("requests.", "response."))}
        upload = self.limiters["upload"]
        return {
            **{k: 0 for k in ("records_processed", "records_rejected", "events_accepted",
                              "profiles_created", "subscription_changes", "pages_served",
                              "records_exported", "instant_verifications", "bulk_uploads_accepted")},
            **flat,
            "requests": requests,
            "responses": responses,
            "uploads_in_flight": upload.in_flight,
            "max_uploads_in_flight": upload.max_in_flight,
            "in_flight": {k: v.in_flight for k, v in self.limiters.items()},
            "max_in_flight": {k: v.max_in_flight for k, v in self.limiters.items()},
            "concurrency_rejected": sum(v.rejected for v in self.limiters.values()),
            "rate_limited": self.rpm.rejected,
            "calls_in_wait_window": sum(self.waits.calls.values()),
            "calls_in_wait_window_by_api": dict(self.waits.calls),
            "waits_announced_by_api": dict(self.waits.announced),
            "faults_injected": self.faults.injected,
            "running_bulk_lists": self.bulk.running(),
            "max_running_bulk_lists": self.bulk.max_running,
            "credits_left": self.credits.balance,
            "credits_charged": self.credits.charged,
            "profiles_total": self.dataset.count + self.store.created_count,
        }

    def reset_stats(self) -> None:
        self.counters.reset()
        for limiter in self.limiters.values():
            limiter.reset_stats()
        self.rpm.rejected = 0
        self.waits.reset()
        self.faults.injected = 0
        self.bulk.max_running = self.bulk.running()
        self.credits.charged = 0

    def profile(self, identity: str | None = None, email: str | None = None,
                object_id: str | None = None) -> dict[str, Any] | None:
        """The profile as the server holds it now (the profile.json record), or None."""
        store = self.store
        with store.lock:
            if identity is not None:
                key = store.key_of_identity(identity)
            elif object_id is not None:
                key = store.key_of_object_id(object_id)
            elif email is not None:
                keys = store.keys_of_email(email)
                key = keys[0] if keys else None
            else:
                raise ValueError("give identity, email or object_id")
            return None if key is None else store.record(key)

    def address_subscription(self, email: str) -> bool | None:
        """The address-level state /1/subscribe left for `email` (True: resubscribed, False: unsubscribed),
        None when it never changed; kept also for addresses no profile has (no API reads it)."""
        return self.store.address_subscription(email)

    def advance_clock(self, seconds: float) -> None:
        """Move the sandbox's clock forward (expiry of cursors, result URLs and results)."""
        self.clock.advance(seconds)

    # ---- routing -----------------------------------------------------------------------------
    def _build_routes(self) -> dict[tuple[str, str, str], Route]:
        ct, co = self.clevertap, self.clearout
        return {
            ("clevertap", "POST", "upload"): Route("clevertap.upload", "clevertap", ct.upload, "upload"),
            ("clevertap", "POST", "subscribe"): Route("clevertap.subscribe", "clevertap", ct.subscribe,
                                                      "subscribe"),
            ("clevertap", "GET", "profile.json"): Route("clevertap.profile", "clevertap", ct.profile, "profile"),
            ("clevertap", "POST", "profiles.json"): Route("clevertap.profiles_query", "clevertap",
                                                          ct.profiles_post, "profiles"),
            ("clevertap", "GET", "profiles.json"): Route("clevertap.profiles_page", "clevertap",
                                                         ct.profiles_get, "profiles"),
            ("clevertap", "POST", "counts/profiles.json"): Route("clevertap.counts_query", "clevertap",
                                                                 ct.counts_post, "counts"),
            ("clevertap", "GET", "counts/profiles.json"): Route("clevertap.counts_poll", "clevertap",
                                                                ct.counts_get, "counts"),
            ("clearout", "GET", "email_verify/getcredits"): Route("clearout.getcredits", "clearout",
                                                                  co.getcredits),
            ("clearout", "POST", "email_verify/instant"): Route("clearout.instant", "clearout", co.instant),
            ("clearout", "POST", "email_verify/bulk"): Route("clearout.bulk", "clearout", co.bulk_upload,
                                                             streaming=True),
            ("clearout", "GET", "email_verify/bulk/progress_status"): Route("clearout.progress", "clearout",
                                                                            co.progress),
            ("clearout", "POST", "download/result"): Route("clearout.download", "clearout", co.download),
            ("clearout", "POST", "email_verify/list/cancel"): Route("clearout.cancel", "clearout", co.cancel),
            ("clearout", "POST", "email_verify/list/remove"): Route("clearout.remove", "clearout", co.remove),
            ("admin", "GET", "stats"): Route("admin.stats", "admin", self._admin_stats),
            ("admin", "POST", "reset-stats"): Route("admin.reset", "admin", self._admin_reset),
            ("admin", "POST", "advance-clock"): Route("admin.clock", "admin", self._admin_clock),
        }

    def _resolve(self, method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        parts = path.split("/")[1:]
        if len(parts) >= 4 and parts[0] == "clevertap" and parts[2] == "1":
            if parts[1] not in REGIONS:
                return None, {"api": "clevertap"}
            route = self._routes.get(("clevertap", method, "/".join(parts[3:])))
            return route, {"api": "clevertap", "region": parts[1]}
        if len(parts) >= 3 and parts[0] == "clearout" and parts[1] == "v2":
            return self._routes.get(("clearout", method, "/".join(parts[2:]))), {"api": "clearout"}
        if len(parts) == 3 and parts[0] == "files" and method == "GET":
            token, name = parts[1], unquote(parts[2])
            route = Route("files", "files", lambda req: serve_result_file(self.bulk, token, name))
            return route, {"api": "files"}
        if len(parts) == 2 and parts[0] == "_sandbox":
            return self._routes.get(("admin", method, parts[1])), {"api": "admin"}
        return None, {"api": parts[0] if parts else ""}

    # ---- the request pipeline ----------------------------------------------------------------
    def _dispatch(self, h: _Handler) -> None:
        split = urlsplit(h.path)
        route, info = self._resolve(h.command, split.path)
        try:
            length = int(h.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        chunked = "chunked" in (h.headers.get("Transfer-Encoding") or "").lower()
        request = Request(h.command, split.path, parse_qs(split.query, keep_blank_values=True), h.headers,
                          received=h.received)
        body_read = False
        try:
            if route is not None and route.streaming and not chunked and length >= 0:
                request.stream, request.content_length = h.rfile, length  # type: ignore[assignment]
            else:
                if length < 0 or length > _MAX_JSON_BODY:
                    self._send(h, json_response(413, {"error": "body too large"}), close=True)
                    return
                request.body = _read_chunked(h.rfile) if chunked else h.rfile.read(length)
                body_read = True
            caller = self._caller(info["api"], request)
            if caller is not None:
                self.waits.arrived(info["api"], caller, request.received)
            response = self._respond(route, info, request)
            if caller is not None:
                self._announce_wait(info["api"], caller, response)
            if not body_read:
                _drain(request)
            self._send(h, response, close=response.close)
        except (TimeoutError, ConnectionError):
            h.close_connection = True
        except Exception:  # a sandbox bug: answer 500 rather than hang the client
            log.exception("sandbox handler failed for %s %s", h.command, split.path)
            self._send(h, json_response(500, {"status": "fail", "error": "sandbox internal error"}), close=True)

    def _respond(self, route: Route | None, info: dict[str, str], request: Request) -> Response:
        api = info["api"]
        if route is None:
            self.counters.add("requests.unknown")
            if api == "clearout":
                return json_response(404, {"status": "failed", "error": {"message": "Not Found"}},
                                     self.rpm.peek())
            if api == "clevertap":
                return json_response(404, NOT_FOUND)
            return Response(404, b"Not Found", content_type="text/plain")
        self.counters.add("requests." + route.name)
        if api in ("files", "admin"):
            return route.handler(request)
        fault = self.faults.draw()
        if fault is not None:
            self._wait_out(request)
            return self._fault(api, fault)
        if api == "clevertap":
            return self._clevertap(route, info["region"], request)
        return self._clearout(route, request)

    @staticmethod
    def _caller(api: str, request: Request) -> str | None:
        """Whose rate-limit budget a request draws on: the Clearout token, the CleverTap account."""
        if api == "clearout":
            return _clearout_token(request.headers.get("Authorization") or "")
        if api == "clevertap":
            return (request.headers.get("X-CleverTap-Account-Id") or "").strip()
        return None

    def _announce_wait(self, api: str, caller: str, response: Response) -> None:
        """Record the wait an answer announces (Retry-After, or Clearout's 429), from now, as it leaves."""
        wait = response.wait_s
        retry_after = next((v for k, v in response.headers.items() if k.lower() == "retry-after"), None)
        if wait is None and retry_after is not None:
            try:
                wait = float(retry_after)
            except ValueError:
                wait = None  # an HTTP date: the sandbox never sends one
        if wait is not None and wait > 0:
            now = time.monotonic()
            self.waits.announce(api, caller, now, now + wait)

    def _wait_out(self, request: Request) -> None:
        """Sleep until `latency_ms` after the request arrived: what the sandbox spent on it counts.

        A 1000-record upload costs the sandbox a few ms of CPU under one GIL shared by 15 handler
        threads; slept on top of the latency, that (and the wait for the GIL after each sleep)
        made a 100 ms sandbox answer in ~120 ms, so no client could reach the throughput the
        latency allows.
        """
        if self.config.latency_ms > 0:
            remaining = request.received + self.config.latency_ms / 1000.0 - time.monotonic()
            if remaining > 0:
                time.sleep(remaining)

    def _fault(self, api: str, status: int) -> Response:
        if api == "clevertap":
            # CleverTap documents no Retry-After, so its faults (429 included) announce no wait.
            return json_response(status, _CLEVERTAP_ERRORS[status])
        if status == 429:
            _, headers, until = self.rpm.hit()
            headers = {**headers, "x-ratelimit-remaining": "0"}
            return self._rate_limited(headers, until)
        headers = self.rpm.peek()
        if status == 503:
            headers["Retry-After"] = str(self.config.fault_retry_after_s)
        return json_response(status, _CLEAROUT_ERRORS[status], headers)

    def _clevertap(self, route: Route, region: str, request: Request) -> Response:
        if region != self.config.region.lower():
            # The project exists in one region only; any other region's host does not know it.
            return json_response(401, WRONG_REGION)
        account = request.headers.get("X-CleverTap-Account-Id") or ""
        passcode = request.headers.get("X-CleverTap-Passcode") or ""
        if not (hmac.compare_digest(account.encode(), self.account_id.encode())
                and hmac.compare_digest(passcode.encode(), self.passcode.encode())):
            return json_response(401, AUTH_INVALID)
        limiter = self.limiters[route.group or ""]
        if not limiter.try_acquire():
            self._wait_out(request)
            return json_response(429, TOO_MANY_CONCURRENT)
        try:
            response = route.handler(request)
            self._wait_out(request)  # in flight until the answer leaves
            return response
        finally:
            limiter.release()

    def _clearout_token_ok(self, header: str) -> bool:
        return hmac.compare_digest(_clearout_token(header).encode(), self.clearout_token.encode())

    def _clearout(self, route: Route, request: Request) -> Response:
        if not self._clearout_token_ok(request.headers.get("Authorization") or ""):
            response = json_response(401, {"status": "failed", "error": {
                "code": 1000, "message": "Invalid API Token, please generate new token"}})
            response.headers.update(self.rpm.peek())
            return response
        allowed, headers, until = self.rpm.hit()
        if not allowed:
            return self._rate_limited(headers, until)
        response = route.handler(request)
        response.headers.update(headers)
        self._wait_out(request)
        return response

    def _rate_limited(self, headers: dict[str, str], until: float) -> Response:
        when = datetime.fromtimestamp(until, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        response = json_response(429, {"status": "failed", "error": {
            "code": 1030, "message": _RATE_LIMITED.format(when=when)}}, headers)
        response.wait_s = until - self.clock()  # the wait it announces: until the limiter window ends
        return response

    # ---- admin -------------------------------------------------------------------------------
    def _admin_stats(self, request: Request) -> Response:
        return json_response(200, self.stats())

    def _admin_reset(self, request: Request) -> Response:
        self.reset_stats()
        return json_response(200, {"status": "success"})

    def _admin_clock(self, request: Request) -> Response:
        try:
            seconds = float(json.loads(request.body or b"{}").get("seconds", 0))
        except (ValueError, AttributeError, TypeError):
            return json_response(400, {"error": 'body must be {"seconds": <number>}'})
        self.advance_clock(seconds)
        return json_response(200, {"status": "success", "offset_s": self.clock.offset})

    # ---- the wire ----------------------------------------------------------------------------
    def _send(self, h: _Handler, response: Response, close: bool = False) -> None:
        self.counters.add(f"response.{response.status}")
        lines = [f"{h.protocol_version} {response.status} {_reason(response.status)}",
                 f"Server: {h.version_string()}", f"Date: {h.date_time_string()}",
                 f"Content-Type: {response.content_type}"]
        lines += [f"{name}: {value}" for name, value in response.headers.items()]
        if close:
            lines.append("Connection: close")
            h.close_connection = True
        if response.file is not None:
            lines.append(f"Content-Length: {response.file.stat().st_size}")
            h.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
            with open(response.file, "rb") as handle:
                shutil.copyfileobj(handle, h.wfile, 1 << 20)
        else:
            # Head and body in one write: every socket call releases the GIL, and getting it back
            # behind 15 busy handler threads costs milliseconds.
            lines.append(f"Content-Length: {len(response.body)}")
            h.wfile.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body)
        h.wfile.flush()


def _clearout_token(header: str) -> str:
    """The token of an Authorization header in any of Clearout's three forms (raw, `Bearer `, `Bearer:`)."""
    value = header.strip()
    for prefix in ("Bearer:", "Bearer ", "bearer:", "bearer "):
        if value.startswith(prefix):
            return value[len(prefix):].strip()
    return value


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def _read_chunked(stream: Any) -> bytes:
    parts: list[bytes] = []
    total = 0
    while True:
        size = int(stream.readline().split(b";")[0].strip() or b"0", 16)
        if size == 0:
            while stream.readline() not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        total += size
        if total > _MAX_JSON_BODY:
            raise ConnectionError("chunked body too large")
        parts.append(stream.read(size))
        stream.readline()


def _drain(request: Request) -> None:
    """Read what a streaming handler left unread, so the keep-alive connection stays in sync."""
    stream, remaining = request.stream, request.content_length
    if stream is None:
        return
    request.stream = None
    while remaining > 0:
        chunk = stream.read(min(1 << 20, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
