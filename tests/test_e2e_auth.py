"""Team access in a real browser: a real OpenID Connect provider on 127.0.0.1 (oidc-provider-mock), the
app (`python -m lib.serve`) pointed at it by a temporary secrets file (`--secrets.files`), and three
people signing in through it: an admin connects a project, an operator adds, verifies and exports a
list, a viewer sees the results and downloads them but is offered no control that spends or writes,
and signing out ends access.

User text that looks like Markdown (a list named like an image, a CSV header, a connection name,
the operator's own display name) points at a local server that counts requests: it must receive
none. And an upload over UPLOAD_MAX_MB is refused before the server buffers it.
"""
from __future__ import annotations

import json
import re
import secrets
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from playwright.sync_api import expect

from tests.e2e_support import VIEWPORT, Walk, app_server, download_from_link, free_port
from tests.test_e2e import artifacts  # noqa: F401 - a pytest fixture (`browser` is conftest's)

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext

pytestmark = pytest.mark.e2e

PEOPLE = {"ada": ("ada@example.com", "Ada Admin"), "olga": ("olga@example.com", None),  # named below
          "vic": ("vic@example.com", "Vic Viewer")}
APP_KNOBS = {"SANDBOX_PROFILES": "2000", "SANDBOX_BULK_SECONDS": "3", "UPLOAD_MAX_MB": "1",
             "AUTH_ADMINS": "ada@example.com", "AUTH_OPERATORS": "olga@example.com",
             "AUTH_VIEWERS": "vic@example.com"}


# Clearout's documented test addresses: the sandbox answers them the same way every time.
# One undeliverable in six: under the 30% export guardrail.
GOOD_CSV = "Email;Name\r\n" + "".join(f"{local}@example.com;{local.title()}\r\n" for local in (
    "invalid", "valid", "safe_to_send_yes", "role", "free", "disposable"))


class CountingServer(ThreadingHTTPServer):
    """Answers every request with a tiny PNG and counts it: the browser must never ask."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _CountingHandler)
        self.requests: list[str] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _CountingHandler(BaseHTTPRequestHandler):
    PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000"
                        "1f15c4890000000d49444154789c6360000002000154a24f5d0000000049454e44ae426082")

    def do_GET(self) -> None:  # http.server names the handler so
        self.server.requests.append(self.path)  # type: ignore[attr-defined]
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(self.PNG)))
        self.end_headers()
        self.wfile.write(self.PNG)

    def log_message(self, *args: object) -> None:
        pass


@contextmanager
def counting_server() -> Iterator[CountingServer]:
    server = CountingServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def oidc_provider(log_path: Path, users: list[dict[str, str]]) -> Iterator[str]:
    """`python -m oidc_provider_mock` on 127.0.0.1 with predefined users; yields its discovery URL."""
    port = free_port()
    claims = [arg for user in users for arg in ("--user-claims", json.dumps(user))]
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "oidc_provider_mock", "--host", "127.0.0.1",
                                    "--port", str(port), *claims], stdout=log, stderr=subprocess.STDOUT)
    discovery = f"http://127.0.0.1:{port}/.well-known/openid-configuration"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, log_path.read_text(errors="replace")
            try:
                with urllib.request.urlopen(discovery, timeout=2) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                assert time.monotonic() < deadline, "the OpenID provider did not start"
                time.sleep(0.1)  # a starting server: nothing to wait on but time
        yield discovery
    finally:
        process.terminate()
        process.wait(timeout=10)


def secrets_file(folder: Path, discovery: str) -> Path:
    """The [auth] section a team writes into .streamlit/secrets.toml, here in a temporary file; the
    repository's .streamlit/ is never touched. Streamlit fills in {port}."""
    path = folder / "secrets.toml"
    path.write_text("[auth]\n"
                    'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
                    f'cookie_secret = "{secrets.token_hex(32)}"\n'
                    'client_id = "list-hygiene"\n'
                    f'client_secret = "{secrets.token_hex(16)}"\n'
                    f'server_metadata_url = "{discovery}"\n')
    return path


def test_team_access_through_a_real_identity_provider(browser: Browser, artifacts: Path,  # noqa: F811 - fixture
                                                      tmp_path: Path) -> None:
    with counting_server() as trap:
        evil_list = f"![x]({trap.url}/list.png)"
        evil_connection = f"![c]({trap.url}/connection.png)"
        evil_header = f"![h]({trap.url}/header.png)"
        olga_name = f"![n]({trap.url}/name.png) Olga"
        users = [{"sub": sub, "email": email, "name": name or olga_name} for sub, (email, name) in PEOPLE.items()]
        with oidc_provider(artifacts / "oidc.log", users) as discovery:
            secrets_path = secrets_file(tmp_path, discovery)
            with app_server(tmp_path / "data", artifacts / "server.log", **APP_KNOBS,
                            streamlit_args=("--secrets.files", str(secrets_path))) as server:
                contexts: list[BrowserContext] = []

                def person(sub: str) -> Walk:
                    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
                    contexts.append(context)
                    walk = Walk(context.new_page(), server, artifacts)
                    sign_in(walk, sub)
                    return walk

                walks: list[Walk] = []
                try:
                    walks.append(ada := person("ada"))
                    admin_connects(ada, evil_connection)
                    walks.append(olga := person("olga"))
                    sidebar = olga.page.get_by_test_id("stSidebar")
                    expect(sidebar.get_by_text(f"{olga_name} · Operator")).to_be_visible()  # shown as typed
                    operator_adds_verifies_and_exports(olga, tmp_path, evil_list, evil_header, evil_connection)
                    walks.append(vic := person("vic"))
                    viewer_reads_and_downloads_only(vic, evil_list)
                    signing_out_ends_access(vic)
                    history_names_everyone(olga)
                    assert "Traceback" not in server.log(), "the server logged an exception (see server.log)"
                except BaseException:
                    for walk in walks:
                        try:
                            walk.shot("failure")
                        except Exception:  # noqa: BLE001 - the browser may be gone: the server log still tells
                            pass
                    print(f"---- server log ----\n{server.log()}")
                    raise
                finally:
                    for context in contexts:
                        context.close()
        assert trap.requests == [], f"the browser fetched URLs from user text: {trap.requests}"


def sign_in(walk: Walk, sub: str) -> None:
    """The sign-in screen, the provider's page (choose the predefined user), back to Home signed in."""
    page = walk.page
    page.goto(walk.server.url)
    walk.heading("Sign in")
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)  # nothing of the app before sign-in
    walk.check()
    walk.button("Sign in").click()
    page.get_by_role("heading", name="Authorize Client").wait_for()
    page.get_by_role("button", name=sub, exact=True).click()  # the provider's predefined user
    walk.heading("Home", level=1)
    walk.rendered()
    provider_page_noise(walk)
    walk.check()


def provider_page_noise(walk: Walk) -> None:
    """The mock provider's own pages load a stylesheet from a CDN and a favicon, which fail offline: not
    the app's console errors."""
    walk.console.errors = [e for e in walk.console.errors if not re.search(
        r"\((https://cdn\.jsdelivr\.net/|http://127\.0\.0\.1:\d+/favicon\.ico)", e)]


def admin_connects(walk: Walk, connection_name: str) -> None:
    page = walk.page
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("Ada Admin · Admin")).to_be_visible()
    walk.open("Connect")
    page.get_by_label("Account name", exact=True).fill(connection_name)
    walk.button("Test and save").click()
    walk.text(f"Connected {connection_name}: CleverTap accepted the credentials.")
    walk.rendered()
    walk.check()
    walk.shot("auth-admin-connected")


def operator_adds_verifies_and_exports(walk: Walk, tmp_path: Path, list_name: str, header: str,
                                       connection_name: str) -> None:
    page = walk.page
    walk.open("Connect")
    expect(walk.button("Test and save")).to_have_count(0)  # connecting is for admins
    walk.text("needs the admin role")
    walk.text(connection_name)  # the saved project, as typed

    walk.open("Lists")
    page.get_by_role("tab", name="From a CSV file").click()
    uploads: list[str] = []
    page.on("request", lambda r: uploads.append(r.url) if r.method == "PUT" and "upload_file" in r.url else None)
    dropzone = page.locator('[data-testid="stFileUploaderDropzoneInput"]')
    bad = tmp_path / "no-email.csv"
    bad.write_text(f"{header};City\r\nAsha;Pune\r\n", encoding="utf-8")
    dropzone.set_input_files(str(bad))
    walk.button("Add to My lists").click()
    walk.text(f"The file has the columns: {header}")
    walk.rendered()
    walk.check(expected_errors=("No email column found",))

    too_big = tmp_path / "too-big.csv"
    too_big.write_bytes(b"Email\r\n" + b"someone@example.com\r\n" * 80_000)  # 1.7 MB, the limit is 1 MB
    dropzone.set_input_files(str(too_big))
    walk.text("or smaller")  # the browser refuses it: nothing is sent
    assert uploads and all("too-big" not in u for u in uploads)
    upload_refused_by_the_server(walk, uploads[0])

    good = tmp_path / "spring.csv"
    good.write_text(GOOD_CSV, encoding="utf-8", newline="")
    dropzone.set_input_files(str(good))
    page.get_by_label("List name", exact=True).fill(list_name)
    walk.button("Add to My lists").click()
    walk.text(f"Added {list_name}: 6 rows, ")
    walk.rendered()
    walk.check()
    walk.shot("auth-operator-lists")

    walk.button("Verify this list").click()
    walk.heading("What this run costs")
    walk.rendered()
    page.get_by_role("button", name=re.compile(r"^Start verification \(")).click()
    walk.text(f"Started: {list_name} is queued.")
    walk.text(f"{list_name} is already being verified since")  # the in-flight note names it as typed
    walk.rendered()
    walk.check()
    page.wait_for_function("""() => (document.querySelector('[data-testid="stMain"]')?.innerText || '')
        .split('\\n').some(line => line.endsWith(' · Done'))""", polling=200, timeout=60_000)
    walk.rendered()
    walk.shot("auth-operator-verified")

    walk.open("Results")
    walk.choose("Verified list", list_name, exact=False)
    walk.text("All 6 rows match")
    walk.check()

    walk.open("Export")
    walk.choose("Verified list", list_name, exact=False)
    walk.text("Kept in History with the run: ")
    walk.button("Dry run").click()
    walk.heading("Dry run: exactly what will be sent")
    walk.rendered()
    apply = page.get_by_role("button", name=re.compile(r"^Apply: send [\d,]+ records? to !\[c\]\("))  # as typed
    expect(apply).to_have_text(re.compile(re.escape(connection_name) + "$"))
    expect(apply).to_be_disabled()  # an address-only list: undo's treatment of unknown states is chosen first
    page.get_by_text("Leave them unsubscribed", exact=False).click()
    expect(apply).to_be_enabled()
    apply.click()
    walk.text("Done · ")
    walk.text(f"of {list_name} to {connection_name}")
    walk.text("by olga@example.com")
    walk.rendered()
    walk.check()
    walk.shot("auth-operator-exported")


def upload_refused_by_the_server(walk: Walk, upload_url: str) -> None:
    """Past the browser, Streamlit itself refuses a body over server.maxUploadSize (UPLOAD_MAX_MB, which
    lib.serve passes on) by its Content-Length, before reading it; with the session's XSRF token, so
    that the size, not the token, is what is refused."""
    xsrf = next(c["value"] for c in walk.page.context.cookies() if c["name"] == "_streamlit_xsrf")
    answer = walk.page.request.put(upload_url, headers={"X-Xsrftoken": xsrf}, multipart={
        "file": {"name": "big.csv", "mimeType": "text/csv", "buffer": b"x" * 1_600_000}})
    assert answer.status == 413, (answer.status, answer.text())


def viewer_reads_and_downloads_only(walk: Walk, list_name: str) -> None:
    page = walk.page
    walk.open("Results")
    walk.choose("Verified list", list_name, exact=False)
    walk.text("All 6 rows match")
    download = download_from_link(page, "CSV for a spreadsheet (6 rows)")
    assert download.path().stat().st_size > 0
    walk.check()

    walk.open("Lists")
    walk.text("Adding a list needs the operator role")
    expect(page.locator('[data-testid="stFileUploaderDropzoneInput"]')).to_have_count(0)
    walk.open("Verify")
    walk.choose("List to verify", list_name, exact=False)
    walk.text("Verifying (it spends Clearout credits) needs the operator role")
    expect(page.get_by_role("button", name=re.compile(r"^(Start verification|Verify again)"))).to_have_count(0)
    walk.open("Export")
    walk.text("Exporting to CleverTap needs the operator role")
    expect(walk.button("Dry run")).to_have_count(0)
    walk.open("History")
    page.get_by_role("tab", name="Undo").click()
    walk.text("Undoing a run needs the operator role")
    expect(walk.button("Dry run the undo")).to_have_count(0)
    expect(page.get_by_role("button", name=re.compile("^(Stop|Resume|Retry|Check again)"))).to_have_count(0)
    walk.check()
    walk.shot("auth-viewer")


def signing_out_ends_access(walk: Walk) -> None:
    page = walk.page
    page.get_by_test_id("stSidebar").get_by_role("button", name="Sign out").click()
    page.get_by_role("button", name="End session").click()  # the provider's end-session page
    walk.heading("Sign in")
    walk.rendered()
    provider_page_noise(walk)
    page.goto(walk.server.url + "/history")  # a deep link: still only the sign-in screen
    walk.heading("Sign in")
    walk.rendered()
    expect(page.get_by_role("heading", name="History", exact=True)).to_have_count(0)
    expect(page.get_by_test_id("stSidebarNav")).to_have_count(0)
    walk.check()
    walk.shot("auth-signed-out")


def history_names_everyone(walk: Walk) -> None:
    page = walk.page
    walk.open("History")
    page.get_by_role("tab", name="Who did what").click()
    walk.text("Every action taken in this app")
    # The table draws on a canvas: the audit is read from its download (itself recorded).
    with page.expect_download() as download_info:
        walk.button("Download the audit (CSV)").click()
    audit = Path(download_info.value.path()).read_text(encoding="utf-8-sig")
    assert "olga@example.com" in audit and "Applied an export to CleverTap" in audit
    assert "Started a verification" in audit and "Added a list" in audit
    assert "ada@example.com" in audit and "Connected a CleverTap project" in audit
    assert re.search(r"vic@example\.com,Vic Viewer,viewer,Downloaded results", audit), audit
    walk.check()
    walk.shot("auth-history-who-did-what")
