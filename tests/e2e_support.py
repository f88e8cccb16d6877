"""The end-to-end test's machinery: the app as a subprocess in sandbox mode, Debian's Chromium, and
the checks every step makes (no exception, no unexpected error box, no console error)."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from playwright.sync_api import Download, Page

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
# `playwright install` cannot reach its download server here: Playwright drives Debian's Chromium.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ARTIFACTS = ROOT / "artifacts" / "e2e"
VIEWPORT = {"width": 1280, "height": 800}
# Settings the app reads; none may leak in from the developer's shell (they would switch to live mode).
APP_SETTINGS = re.compile(r"^(APP_MODE|CLEVERTAP_.*|CLEAROUT_.*|DATA_DIR|ENV_FILE|SANDBOX_.*|VERIFY_CACHE_DAYS|"
                          r"UPLOAD_MAX_MB|EXPORT_GUARDRAIL_PCT|STREAMLIT_.*|AUTH_.*|ALLOW_UNAUTHENTICATED_NETWORK)$")
RENDERED = '[data-testid="stApp"][data-test-script-state="notRunning"]'
HEALTH_TIMEOUT_S = 30


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class AppServer:
    url: str
    process: subprocess.Popen
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def app_environment(data_dir: Path, **knobs: str) -> dict[str, str]:
    """The environment of a sandbox-mode app with a clean data directory and no credentials."""
    environ = {k: v for k, v in os.environ.items() if not APP_SETTINGS.match(k)}
    environ.update(DATA_DIR=str(data_dir), ENV_FILE=str(data_dir / ".env"), PYTHONUNBUFFERED="1", **knobs)
    return environ


@contextmanager
def app_server(data_dir: Path, log_path: Path, *, streamlit_args: tuple[str, ...] = (),
               **knobs: str) -> Iterator[AppServer]:
    """The README's run command (`python -m lib.serve`: sandbox, worker, Streamlit) on a free port until
    healthy; SIGTERM afterwards, which stops all three (kill on timeout). `streamlit_args` are more
    Streamlit options (the sign-in test names its secrets file: --secrets.files)."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "lib.serve", "--server.headless", "true",
             "--server.port", str(port), "--server.address", "127.0.0.1",
             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none", *streamlit_args],
            cwd=ROOT, env=app_environment(data_dir, **knobs), stdout=log, stderr=subprocess.STDOUT)
    server = AppServer(f"http://127.0.0.1:{port}", process, log_path)
    try:
        wait_healthy(server)
        yield server
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def wait_healthy(server: AppServer) -> None:
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"streamlit exited with {server.process.returncode}:\n{server.log()}")
        try:
            with urllib.request.urlopen(f"{server.url}/_stcore/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)  # polling a starting server: nothing to wait on but time
    raise RuntimeError(f"streamlit not healthy after {HEALTH_TIMEOUT_S} s:\n{server.log()}")


# Console noise that is no fault of the app, matched exactly (resource URL, message): offline, the
# Material icon favicons come from fonts.gstatic.com and fail; on a deep link (a reload of /verify)
# Streamlit's frontend guesses the server's base path from the page URL and tries /verify/_stcore/health
# and /verify/_stcore/host-config first (404), then /_stcore/... (200): streamlit/streamlit#7074, open;
# see docs/architecture.md, "Known Streamlit behaviour".
HARMLESS_CONSOLE = (
    (re.compile(r"^https://fonts\.gstatic\.com/"), re.compile(r"^Failed to load resource: net::ERR_[A-Z_]+$")),
    (re.compile(r"^http://127\.0\.0\.1:\d+/[a-z_-]+/_stcore/(health|host-config)$"),
     re.compile(r"^Failed to load resource: the server responded with a status of 404 \(Not Found\)$")),
)


@dataclass
class ConsoleWatch:
    """Console errors and failed requests of one page, with the known harmless ones filtered out."""
    errors: list[str] = field(default_factory=list)

    def attach(self, page) -> None:
        page.on("console", self._console)
        page.on("pageerror", lambda exc: self.errors.append(f"page error: {exc}"))

    def _console(self, message) -> None:
        if message.type != "error":
            return
        url = (message.location or {}).get("url", "")
        if any(where.match(url) and what.match(message.text) for where, what in HARMLESS_CONSOLE):
            return
        self.errors.append(f"console: {message.text} ({url})")

    def take(self) -> list[str]:
        errors, self.errors = self.errors, []
        return errors


class PageProblem(AssertionError):
    """A page showed an exception, an error box it should not have, or the console logged an error."""


class Walk:
    """A browser tab on the app with the checks and screenshots every step makes."""

    def __init__(self, page, server: AppServer, artifacts: Path, timeout_ms: int = 30_000) -> None:
        self.page, self.server, self.artifacts = page, server, artifacts
        self.console = ConsoleWatch()
        self.console.attach(page)
        self.shots: list[Path] = []
        page.set_default_timeout(timeout_ms)

    # ---- waiting -----------------------------------------------------------------------------
    def rendered(self) -> None:
        """The script run has finished (the fragment polls keep running on their own)."""
        self.page.locator(RENDERED).wait_for(state="attached")
        self.page.locator('[data-testid="stStatusWidget"]').wait_for(state="detached")

    def open(self, title: str) -> None:
        """Go to a page through the sidebar navigation, as a user would, and wait for its title."""
        self.page.get_by_test_id("stSidebarNav").get_by_role("link", name=title, exact=True).click()
        self.heading(title, level=1)
        self.rendered()

    def heading(self, name: str, level: int | None = None):
        heading = self.page.get_by_role("heading", name=name, level=level, exact=True)
        heading.wait_for()
        return heading

    def text(self, text: str, exact: bool = False):
        located = self.page.get_by_text(text, exact=exact).first
        located.wait_for()
        return located

    # ---- widgets -----------------------------------------------------------------------------
    def button(self, name: str, exact: bool = True):
        return self.page.get_by_role("button", name=name, exact=exact)

    def choose(self, label: str, option: str, exact: bool = True) -> None:
        """Pick an option of a selectbox or multiselect by its label."""
        widget = self.page.locator('[data-testid="stSelectbox"], [data-testid="stMultiSelect"]').filter(
            has=self.page.get_by_text(label, exact=True))
        field = widget.locator("input")
        field.click()
        field.press_sequentially(option)  # typing opens the menu and narrows it to the option
        self.page.get_by_role("option", name=option, exact=exact).click()
        self.page.keyboard.press("Escape")  # a multiselect keeps its menu open
        field.blur()

    # ---- checks ------------------------------------------------------------------------------
    def errors_shown(self) -> list[str]:
        return [box.inner_text().strip() for box in self.page.locator('[data-testid="stAlertContentError"]').all()]

    def check(self, expected_errors: tuple[str, ...] = ()) -> None:
        """No exception, no error box other than those expected (matched by their text), no console error."""
        problems = []
        for exc in self.page.locator('[data-testid="stException"]').all():
            problems.append(f"exception on the page: {exc.inner_text()}")
        errors = self.errors_shown()
        unexpected = [e for e in errors if not any(want in e for want in expected_errors)]
        missing = [want for want in expected_errors if not any(want in e for e in errors)]
        problems += [f"unexpected error box: {e}" for e in unexpected]
        problems += [f"expected error box missing: {m}" for m in missing]
        problems += self.console.take()
        if problems:
            raise PageProblem(f"{self.page.url}:\n" + "\n".join(problems))

    def shot(self, name: str, height: int | None = None) -> Path:
        """A screenshot of the whole page (the main area scrolls, so the window grows to fit it),
        or of its top `height` pixels."""
        path = self.artifacts / f"{len(self.shots) + 1:02d}-{name}.png"
        full = self.page.evaluate(
            "() => Math.max(...[...document.querySelectorAll('[data-testid=\"stMain\"], "
            "[data-testid=\"stAppScrollToBottomContainer\"]')].map(e => e.scrollHeight), 0)")
        self.page.set_viewport_size({"width": VIEWPORT["width"], "height": max(VIEWPORT["height"], full)})
        try:
            clip = {"x": 0, "y": 0, "width": VIEWPORT["width"], "height": height} if height else None
            self.page.screenshot(path=str(path), animations="disabled", clip=clip)
        finally:
            self.page.set_viewport_size(VIEWPORT)
        self.shots.append(path)
        return path


def download_from_link(page: Page, name: str) -> Download:
    """Click a download link as a person does: it opens a tab that the browser turns into a download
    (the server streams the file: lib.download_links)."""
    seen: list[Download] = []
    tabs: list[Page] = []

    def watch(tab: Page) -> None:
        tabs.append(tab)
        tab.on("download", lambda download: seen.append(download))
    page.context.on("page", watch)
    page.on("download", lambda download: seen.append(download))
    page.get_by_role("link", name=name).click()
    deadline = time.monotonic() + 30
    while not seen:
        assert time.monotonic() < deadline, f"no download started from {name!r}: tabs {[t.url for t in tabs]}"
        page.wait_for_timeout(100)
    seen[0].path()  # waits until the whole file arrived
    return seen[0]
