"""The end-to-end browser test: a new user walks the whole app in sandbox mode, from a clean data
directory: Home → Connect → Lists → Verify → Results → Export → History.

Every step fails on a Python exception, an error box it did not expect, or a browser console error
(other than known offline noise), and saves a screenshot to artifacts/e2e/. The Results screenshot
is the README's (docs/screenshot.png): refresh it with `E2E_UPDATE_SCREENSHOT=1`.
"""
from __future__ import annotations

import csv
import io
import os
import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING
from collections.abc import Callable

import pytest
from playwright.sync_api import expect

from lib.columns import CLEAROUT_COLUMN_NAMES
from tests.e2e_support import ARTIFACTS, ROOT, VIEWPORT, Walk, app_server, download_from_link

if TYPE_CHECKING:
    from playwright.sync_api import Browser

    from lib.sandbox import Sandbox

pytestmark = pytest.mark.e2e

# Small enough for a quick walk; a 4 s simulated bulk job leaves time to see its progress move. The walk
# owns the sandbox (the app is pointed at it), so that it can read what no API reads: address-level state.
SANDBOX_KNOBS = {"profiles": 5_000, "bulk_seconds": 4}
WRONG_PASSCODE = "SBX-WRONG-0000"
# What a CRM export looks like: a BOM, semicolons, an "E-mail Address" header, a duplicate that
# differs in case and spaces, a malformed address, an empty one, and a cell a spreadsheet would run.
UPLOAD_CSV = ("\ufeffCustomer ID;First Name;E-mail Address;City\r\n"
              "C-001;Asha;asha.rao@gmail.com;Pune\r\n"
              "C-002;Ben;ben.stone@yahoo.com;Leeds\r\n"
              "C-003;Asha R; ASHA.RAO@gmail.com ;Pune\r\n"
              "C-004;Carla;carla@@example;Porto\r\n"
              'C-005;"=HYPERLINK(""http://evil.test"",""click"")";dan.berg@outlook.com;Oslo\r\n'
              "C-006;Eve;;Berlin\r\n"
              "C-007;Hugo;hugo.weiss@gmial.com;Graz\r\n")  # a hard bounce: the domain does not exist
UNDELIVERABLE = "hugo.weiss@gmial.com"
DELIVERABLE = ("asha.rao@gmail.com", "ben.stone@yahoo.com", "dan.berg@outlook.com")
UPLOAD_NAME = "spring-newsletter.csv"
README_SHOT = ROOT / "docs" / "screenshot.png"
README_SHOT_HEIGHT = 1160  # the key figures and the first two charts


@pytest.fixture
def artifacts() -> Path:
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    ARTIFACTS.mkdir(parents=True)
    return ARTIFACTS


def test_a_new_user_walks_every_step(browser: Browser, artifacts: Path, tmp_path: Path,
                                     make_sandbox: Callable[..., Sandbox]) -> None:
    log_path = artifacts / "server.log"
    sandbox = make_sandbox(**SANDBOX_KNOBS)
    knobs = {"SANDBOX_URL": sandbox.base_url, "SANDBOX_SEED": str(sandbox.config.seed)}
    with app_server(tmp_path / "data", log_path, **knobs) as server:
        context = browser.new_context(viewport=VIEWPORT, accept_downloads=True)
        walk = Walk(context.new_page(), server, artifacts)
        try:
            home(walk)
            connect(walk)
            distinct = lists(walk, tmp_path)
            verify(walk, distinct)
            undeliverable = results(walk, distinct)
            export(walk)
            history(walk)
            csv_export_undone(walk, sandbox, undeliverable)
            home_again(walk)
            assert "Traceback" not in server.log(), "the server logged an exception (see server.log)"
        except BaseException:
            try:
                walk.shot("failure")
            except Exception:  # noqa: BLE001 - the browser may be gone: the server log below still tells
                pass
            print(f"---- streamlit log ({log_path}) ----\n{server.log()}")
            raise
        finally:
            context.close()


def home(walk: Walk) -> None:
    walk.page.goto(walk.server.url)
    walk.heading("Home", level=1)
    walk.rendered()
    walk.text("Sandbox mode")
    walk.text("Next: Lists.")  # sandbox mode holds the Clearout token already: step 1 is done
    walk.check()
    walk.shot("home")


def connect(walk: Walk) -> None:
    page = walk.page
    walk.open("Connect")
    walk.text("No CleverTap project connected yet")
    passcode = page.get_by_label("Passcode", exact=True)
    expect(passcode).not_to_have_value("")  # the sandbox fills in its demo project
    demo_passcode = passcode.input_value()
    passcode.fill(WRONG_PASSCODE)
    walk.button("Test and save").click()
    walk.text("rejected")
    walk.rendered()
    walk.check(expected_errors=("CleverTap rejected",))
    assert all(WRONG_PASSCODE not in e for e in walk.errors_shown()), "the passcode must never be shown"
    walk.shot("connect-wrong-passcode")

    passcode.fill(demo_passcode)
    walk.button("Test and save").click()
    walk.text("Connected Sandbox demo: CleverTap accepted the credentials.")
    walk.rendered()
    walk.check()
    walk.shot("connect")


def lists(walk: Walk, tmp_path: Path) -> int:
    """Returns the distinct addresses Lists counts in the CSV list."""
    page = walk.page
    walk.open("Lists")
    walk.button("Count matching profiles").click()
    walk.text("profiles match")
    walk.rendered()
    walk.check()
    walk.button("Pull", exact=False).filter(has_text="profiles into My lists").click()
    # The pull runs in a worker; the page refreshes when it ends and offers the list's preview.
    walk.text("Preview: the first 100 rows")
    walk.rendered()
    walk.check()
    walk.shot("lists-audience")

    page.get_by_role("tab", name="From a CSV file").click()
    upload = tmp_path / UPLOAD_NAME
    upload.write_text(UPLOAD_CSV, encoding="utf-8", newline="")
    page.locator('[data-testid="stFileUploaderDropzoneInput"]').set_input_files(str(upload))
    walk.button("Add to My lists").click()
    added = walk.text("Added spring-newsletter: ").inner_text()
    # Four well-formed addresses (one of them twice, in another case) and a malformed one; one row is blank.
    assert "7 rows, 5 distinct addresses (1 with a syntax error) (email column: E-mail Address)" in added, added
    walk.rendered()
    walk.check()
    walk.shot("lists")
    walk.button("Verify this list").click()  # the list just added is the one chosen
    return int(re.findall(r"([\d,]+) distinct addresses", added)[0].replace(",", ""))


def verify(walk: Walk, distinct: int) -> None:
    page = walk.page
    walk.heading("Verify", level=1)
    walk.heading("What this run costs")
    walk.rendered()
    expect(page.get_by_role("combobox", name="List to verify")).to_have_value(
        re.compile("^" + re.escape(UPLOAD_NAME.removesuffix(".csv")) + " · 7 rows$"))
    # The same distinct addresses as on Lists: the malformed one costs nothing, the four others a credit.
    assert (metric(walk, "Distinct addresses"), metric(walk, "Syntax errors"),
            metric(walk, "To buy")) == (f"{distinct:,}", "1", f"{distinct - 1:,}")
    walk.check()
    walk.shot("verify-cost")
    start_verification(walk, UPLOAD_NAME.removesuffix(".csv"))
    walk.choose("List to verify", "App Launched", exact=False)
    start_verification(walk, "App Launched")

    page.evaluate("() => { window.__seen = []; }")
    # Record what the job rows show while they poll, until both say Done.
    page.wait_for_function("""() => {
        const main = document.querySelector('[data-testid="stMain"]');
        const states = (main ? main.innerText : '').split('\\n').filter(
            line => / · (Preparing|Queued|Uploading|Verifying|Downloading results|Done|Failed|Cancelled)/.test(line));
        const bars = [...document.querySelectorAll('[data-testid="stProgress"] [role="progressbar"]')]
            .map(e => Number(e.getAttribute('aria-valuenow')));
        window.__seen.push({states, bars});
        return states.filter(line => line.endsWith(' · Done')).length >= 2;
    }""", polling=200, timeout=60_000)
    bars = [value for sample in page.evaluate("() => window.__seen") for value in sample["bars"]]
    assert any(0 < value < 100 for value in bars) and len(set(bars)) >= 2, f"progress did not move: {bars}"
    walk.rendered()
    walk.check()
    walk.shot("verify-done")


def start_verification(walk: Walk, name: str) -> None:
    walk.page.get_by_role("button", name=re.compile(r"^Start verification \(")).click()
    walk.text(f"Started: {name}")
    walk.rendered()


def results(walk: Walk, distinct: int) -> int:
    """Returns the CSV list's undeliverable rows, as Results counts them."""
    page = walk.page
    walk.open("Results")
    walk.choose("Verified list", "App Launched", exact=False)
    charts_drawn(walk, count=8)
    rows = int(metric(walk, "Rows").replace(",", ""))
    assert rows > 1000 and metric(walk, "Safe to send")
    walk.text(f"All {rows:,} rows match")
    walk.check()
    readme_screenshot(walk.shot("results", height=README_SHOT_HEIGHT))
    walk.choose("Verification status", "Invalid")
    matching = walk.text(f"of {rows:,} rows match").inner_text()
    assert 0 < int(matching.split()[0].replace(",", "")) < rows, matching
    walk.rendered()
    walk.check()
    walk.shot("results-filtered")

    walk.choose("Verified list", UPLOAD_NAME.removesuffix(".csv"), exact=False)
    charts_drawn(walk, count=8)
    walk.text("All 7 rows match")
    assert metric(walk, "Distinct addresses") == f"{distinct:,}"  # as on Lists and Verify
    walk.text(f"{distinct:,} distinct addresses = 1 syntax error + ")
    # Where every row went, and it adds up: 7 rows, 6 with an address, 5 well-formed, 4 not undeliverable
    # (the malformed one and the hard bounce are), the Safe to send figure last.
    stages, counts = funnel_of(walk, 0)
    undeliverable = int(metric(walk, "Undeliverable").replace(",", ""))
    assert stages == ["Rows", "With an address", "Well-formed", "Not undeliverable", "Safe to send"]
    assert counts[:4] == [7, 6, 5, 4] and undeliverable == 2
    assert counts[0] == int(metric(walk, "Rows")) and counts[3] == counts[1] - undeliverable
    assert counts[4] == int(metric(walk, "Safe to send").replace(",", "")) <= counts[3]
    download = download_from_link(page, "CSV for a spreadsheet (7 rows)")
    assert download.suggested_filename == "spring-newsletter_clearout_results.csv"
    data = Path(download.path()).read_bytes()
    assert data.startswith(b"\xef\xbb\xbf"), "a spreadsheet CSV starts with a BOM so Excel reads UTF-8"
    table = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert [row["Customer ID"] for row in table] == ["C-001", "C-002", "C-003", "C-004", "C-005", "C-006", "C-007"]
    assert set(CLEAROUT_COLUMN_NAMES) <= set(table[0]), "the 15 Clearout columns must be appended"
    assert table[4]["First Name"].startswith("'=HYPERLINK("), "a formula cell must be neutralised"
    assert table[0]["Clearout Verification Status"] == table[2]["Clearout Verification Status"] != ""
    walk.rendered()
    walk.check()
    return undeliverable


def funnel_of(walk: Walk, index: int) -> tuple[list[str], list[int]]:
    """The stages and figures a Plotly funnel chart of the page draws (its data, as Plotly holds it)."""
    drawn = walk.page.wait_for_function("""index => {  // once Plotly has drawn it
        const chart = document.querySelectorAll('[data-testid="stPlotlyChart"] .js-plotly-plot')[index];
        return chart && chart.data ? {y: [...chart.data[0].y], x: [...chart.data[0].x]} : null;
    }""", arg=index).json_value()
    return [str(label) for label in drawn["y"]], [int(count) for count in drawn["x"]]


def reconciles(sentence: str) -> list[int]:
    """The figures of the dry run's "a − b + c = d …" sentence, checked: every "=" holds. Returns them."""
    terms = re.findall(r"(^|[−+=]) ?([\d,]+)", sentence)
    figures = [int(number.replace(",", "")) for _, number in terms]
    total = figures[0]
    for (sign, _), figure in zip(terms[1:], figures[1:]):
        if sign == "=":
            assert total == figure, f"{sentence!r} does not add up at {figure}"
        total = total - figure if sign == "−" else total + figure if sign == "+" else figure
    return figures


def readme_screenshot(shot: Path) -> None:
    """The README shows the Results page: refreshed on request, since every run's pixels differ a little."""
    if os.environ.get("E2E_UPDATE_SCREENSHOT"):
        shutil.copyfile(shot, README_SHOT)


def charts_drawn(walk: Walk, count: int) -> None:
    """Every Plotly chart of the page has drawn its SVG."""
    charts = walk.page.locator('[data-testid="stPlotlyChart"]')
    expect(charts).to_have_count(count)
    for chart in charts.all():
        chart.locator(".main-svg").first.wait_for(state="attached")
    walk.rendered()


def metric(walk: Walk, label: str) -> str:
    box = walk.page.locator('[data-testid="stMetric"]').filter(
        has=walk.page.get_by_test_id("stMetricLabel").get_by_text(label, exact=True))
    return box.get_by_test_id("stMetricValue").inner_text().strip()


def export(walk: Walk) -> None:
    page = walk.page
    walk.open("Export")
    walk.choose("Verified list", "App Launched", exact=False)
    walk.button("Dry run").click()
    walk.heading("Dry run: exactly what will be sent")
    walk.rendered()
    to_unsubscribe = int(metric(walk, "To unsubscribe").replace(",", ""))
    assert to_unsubscribe > 0
    walk.check()
    walk.shot("export-dry-run")
    apply = page.get_by_role("button", name=re.compile(r"^Apply: send [\d,]+ records to Sandbox demo$"))
    apply.click()
    walk.text("Done · ")  # the run panel polls until the run is done and its read-back recorded
    walk.text("Read-back check:")
    walk.rendered()
    read_back = walk.text("sampled profiles read back").inner_text()
    confirmed, total = (int(n) for n in re.findall(r"(\d+) of (\d+)", read_back)[0])
    assert total > 0 and confirmed == total, read_back
    walk.check()
    walk.shot("export-applied")


def csv_export_undone(walk: Walk, sandbox: Sandbox, undeliverable: int) -> None:
    """The CSV list's hard bounce is unsubscribed (an address CleverTap has no profile for: its state
    before cannot be read, and the person chooses what undo does), then undone: the remote state is as it
    was before."""
    page = walk.page
    before = {address: sandbox.address_subscription(address) for address in (UNDELIVERABLE, *DELIVERABLE)}
    assert before[UNDELIVERABLE] is not False  # subscribed: nothing unsubscribed it yet
    walk.open("Export")
    walk.choose("Verified list", UPLOAD_NAME.removesuffix(".csv"), exact=False)
    walk.button("Dry run").click()
    walk.heading("Dry run: exactly what will be sent")
    walk.rendered()
    to_unsubscribe = int(metric(walk, "To unsubscribe").replace(",", ""))
    figures = reconciles(walk.text("undeliverable rows (as on Results)").inner_text())
    assert figures[0] == undeliverable and figures[-1] == to_unsubscribe == 1  # the malformed one has no address
    stages, counts = funnel_of(walk, 0)
    assert stages[-1] == "To unsubscribe" and counts[-1] == to_unsubscribe
    assert counts == sorted(counts, reverse=True)
    apply = page.get_by_role("button", name=re.compile(r"^Apply: send 1 records? to Sandbox demo$"))
    expect(apply).to_be_disabled()  # until the person says what undo does with a state no API reads
    page.get_by_text("Re-subscribe them too", exact=False).click()
    walk.rendered()
    walk.check()
    walk.shot("export-csv-dry-run")
    apply.click()
    walk.text("Read-back check:")
    walk.text("no profile in CleverTap")
    walk.rendered()
    walk.check()
    walk.shot("export-csv-applied")
    assert sandbox.address_subscription(UNDELIVERABLE) is False  # unsubscribed, as the dashboard shows it
    assert {a: sandbox.address_subscription(a) for a in DELIVERABLE} == {a: before[a] for a in DELIVERABLE}

    walk.open("History")
    run = page.get_by_role("combobox", name="Run")
    expect(run).to_have_value(re.compile(r"^Run 3 · Export · spring-newsletter "))
    undo(walk, 3, "spring-newsletter", r"^Undo run 3: re-subscribe 1 address$", shots="history-csv")
    after = {address: sandbox.address_subscription(address) for address in (UNDELIVERABLE, *DELIVERABLE)}
    # Subscribed again, as before (an explicit re-subscribe where there was no preference); the rest untouched.
    assert after[UNDELIVERABLE] is not False and after[UNDELIVERABLE] == (before[UNDELIVERABLE] or True)
    assert {a: after[a] for a in DELIVERABLE} == {a: before[a] for a in DELIVERABLE}


def undo(walk: Walk, run_id: int, list_name: str, button: str, *, shots: str) -> None:
    """On History, showing run `run_id`: the undo's dry run, then the undo; the page shows the new run, done."""
    page = walk.page
    page.get_by_role("tab", name="Undo").click()
    walk.button("Dry run the undo").click()
    walk.text("Will be re-subscribed")
    walk.rendered()
    walk.check()
    walk.shot(f"{shots}-undo-dry-run")
    page.get_by_role("button", name=re.compile(button)).click()
    expect(page.get_by_role("combobox", name="Run")).to_have_value(
        re.compile(rf"^Run {run_id + 1} · Undo · {re.escape(list_name)} "))  # the page shows the new run
    walk.text("Done · ")
    walk.rendered()
    walk.check()
    walk.shot(f"{shots}-undone")


def history(walk: Walk) -> None:
    page = walk.page
    walk.open("History")
    run = page.get_by_role("combobox", name="Run")
    expect(run).to_have_value(re.compile(r"^Run 1 · Export · App Launched "))
    walk.text("Done · ")
    walk.check()
    walk.shot("history")
    undo(walk, 1, "App Launched", r"^Undo run 1: re-subscribe up to [\d,]+ profiles$", shots="history")
    # A refresh (a deep link to /history on the same server) finds both runs where they were.
    page.reload()
    walk.heading("History", level=1)
    walk.rendered()
    expect(run).to_have_value(re.compile(r"^Run 2 · Undo · "))
    walk.choose("Run", "Run 1 · Export", exact=False)
    walk.text("Done, then undone by run 2 · ")  # the undone run says so, not a plain "Done"
    walk.rendered()
    walk.check()


def home_again(walk: Walk) -> None:
    """Every step done: Home has no "Next" left and counts what was done."""
    walk.open("Home")
    walk.text("2 lists ready")
    walk.text("2 lists verified")
    walk.text("2 export runs applied to CleverTap (2 undone)")  # an undo is no export; each run says it was undone
    expect(walk.page.get_by_text("Next:")).to_have_count(0)
    walk.check()
    walk.shot("home-done")
