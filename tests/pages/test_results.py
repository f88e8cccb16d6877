"""pages/results.py through AppTest: figures, charts, filters, the bounded preview, downloads, empty state."""
from __future__ import annotations

import json
from pathlib import Path
from collections.abc import Iterator

import pytest
from streamlit.testing.v1 import AppTest

from lib import columns as co
from lib import download_links, downloads, merge, results
from lib.figures import plural
from lib.filters import filter_rows
from lib.store import Store
from lib.ui import results as widgets
from tests.pages.support import app_test, isolate_app, page_errors, release_app, rendered_text
from tests.results_support import make_verified_list

PAGE = "pages/results.py"


@pytest.fixture(autouse=True)
def _release() -> Iterator[None]:
    yield
    release_app()


@pytest.fixture
def store(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Store:
    isolate_app(monkeypatch, tmp_path)  # sandbox mode, private DATA_DIR
    return Store(tmp_path / "data")


def open_page(**session: object) -> AppTest:
    at = app_test()
    for name, value in session.items():
        at.session_state[name] = value
    at.run()
    at.switch_page(PAGE).run()
    assert not at.exception, page_errors(at)
    return at


def match_text(at: AppTest) -> str:
    return next(m.value for m in at.markdown if "rows match" in m.value)


def elements(at: AppTest, kind: str) -> list:
    return list(at.get(kind))


def test_no_verified_list_says_so_and_links_to_verify(store: Store) -> None:
    store.create_list(name="Not verified yet", mode="sandbox", source_kind="csv", source="x.csv", state="ready")
    at = open_page()
    assert "No verified list yet" in at.info[-1].value
    links = elements(at, "page_link")
    assert [link.proto.page for link in links] == ["verify"]
    assert not elements(at, "plotly_chart") and not at.metric


def test_key_figures_and_every_chart(store: Store) -> None:
    fx = make_verified_list(store, rows=800)
    at = open_page()
    merged = merge.append_verdicts(fx.rows, "Email", fx.verdicts)
    figures = merge.key_figures(merged, "Email")
    shown = {m.label: m for m in at.metric}
    assert shown["Rows"].value == f"{figures.rows:,}"
    assert shown["Distinct addresses"].value == f"{figures.unique_emails:,}"
    for label, count in (("Safe to send", figures.safe_to_send), ("Risky", figures.risky),
                         ("Undeliverable", figures.undeliverable), ("Unknown", figures.unknown),
                         ("No email", figures.no_email)):
        assert shown[label].value == f"{count:,}"
        assert shown[label].proto.delta == f"{figures.share(count):.1f}% of rows"
    assert shown["Credits spent"].value == f"{fx.job.credits_spent:,}"
    assert shown["Credits saved"].value == f"{fx.job.cached + fx.job.syntax_invalid:,}"

    charts = elements(at, "plotly_chart")
    assert len(charts) == 8
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in charts]
    assert all(titles) and len(set(titles)) == 8
    assert all(json.loads(c.proto.config)["displaylogo"] is False for c in charts)
    # The funnel of rows, and the distinct addresses split as Verify priced them: they reconcile.
    steps = dict(zip(*(json.loads(charts[0].proto.spec)["data"][0][axis] for axis in ("y", "x"))))
    syntax_rows = int((merged[co.VERDICT_SOURCE] == co.SOURCE_SYNTAX).sum())
    assert steps == {"Rows": figures.rows, "With an address": figures.rows - figures.no_email,
                     "Well-formed": figures.rows - figures.no_email - syntax_rows,
                     "Not undeliverable": figures.rows - figures.no_email - figures.undeliverable,
                     "Safe to send": figures.safe_to_send}
    job = fx.job
    assert (f"{plural(figures.unique_emails, 'distinct address', 'distinct addresses')} = "
            f"{plural(job.syntax_invalid, 'syntax error')} + {job.cached:,} from the cache + "
            f"{job.to_verify:,} bought") in rendered_text(at)
    assert figures.unique_emails == job.syntax_invalid + job.cached + job.to_verify
    assert len(at.dataframe[0].value) == figures.rows  # 800 rows: under the preview bound
    assert match_text(at) == f"All {figures.rows:,} rows match; showing all {figures.rows:,}."
    assert [link.proto.page for link in elements(at, "page_link")] == ["export"]


def key(at: AppTest, name: str) -> str:
    """The key of a Results filter widget of the list on screen (widgets.filter_key)."""
    return widgets.filter_key(name, at.session_state["results_list"])


def test_filters_narrow_the_preview_and_the_count(store: Store) -> None:
    fx = make_verified_list(store, rows=900)
    merged = merge.append_verdicts(fx.rows, "Email", fx.verdicts)
    at = open_page()
    at.multiselect(key=key(at, "status")).select(co.INVALID).run()
    invalid = filter_rows(merged, statuses=[co.INVALID])
    assert 0 < len(invalid) < len(merged)
    assert match_text(at).startswith(f"{len(invalid):,} of {len(merged):,} rows match")
    preview = at.dataframe[0].value
    assert len(preview) == len(invalid)
    assert set(preview[co.STATUS].astype(str)) == {co.INVALID}

    at.multiselect(key=key(at, "domain")).select("gmail.com").run()
    both = filter_rows(merged, statuses=[co.INVALID], domains=["gmail.com"])
    assert len(at.dataframe[0].value) == len(both) < len(invalid)
    assert match_text(at).startswith(f"{len(both):,} of {len(merged):,} rows match")
    assert at.radio(key=key(at, "scope")).disabled is False


def test_preview_never_sends_more_than_the_bound(store: Store) -> None:
    make_verified_list(store, rows=results.PREVIEW_ROWS + 700)
    at = open_page()
    preview = at.dataframe[0].value
    assert len(preview) == results.PREVIEW_ROWS
    total = results.PREVIEW_ROWS + 700
    assert match_text(at) == f"All {total:,} rows match; showing the first {results.PREVIEW_ROWS:,}."
    assert preview[co.TIME_TAKEN].notna().any()


def test_list_asked_for_by_another_page_is_preselected(store: Store) -> None:
    older = make_verified_list(store, rows=300, name="Older list", seed=1)
    make_verified_list(store, rows=400, name="Newer list", seed=2)
    assert open_page().selectbox(key="results_list").value != older.record.id  # newest by default
    at = open_page(results_list_id=older.record.id)
    assert at.selectbox(key="results_list").value == older.record.id
    assert next(m for m in at.metric if m.label == "Rows").value == "300"


def test_switching_lists_clears_the_filters_everywhere(store: Store) -> None:
    first = make_verified_list(store, rows=300, name="First", seed=1)
    second = make_verified_list(store, rows=400, name="Second", seed=2)
    at = open_page()
    assert at.session_state["results_list"] == second.record.id
    at.multiselect(key=key(at, "safe")).select(co.NO).select(co.UNKNOWN).run()
    at.radio(key=key(at, "scope")).set_value("filtered").run()
    narrowed = match_text(at)
    assert not narrowed.startswith("All")
    at.selectbox(key="results_list").select(first.record.id).run()
    assert not at.exception, page_errors(at)
    # The first list's widgets are new ones: nothing chosen, nothing applied, nothing left to apply.
    assert at.multiselect(key=key(at, "safe")).value == [] and at.radio(key=key(at, "scope")).value == "all"
    assert match_text(at).startswith("All 300 rows match")
    assert {element.proto.label.split(" (")[1] for element in at.get("link_button")} == {"300 rows)"}
    at.run()  # the next click applies nothing stale either
    assert match_text(at).startswith("All 300 rows match")
    at.selectbox(key="results_list").select(second.record.id).run()
    assert at.multiselect(key=key(at, "safe")).value == [] and match_text(at).startswith("All 400 rows match")


def links(at: AppTest) -> dict[str, str]:
    """Button label (without the row count) -> the download link's token, for the links the last run drew."""
    found = {}
    for element in at.get("link_button"):
        label, url = element.proto.label, element.proto.url
        assert url.startswith(f"./{download_links.ROUTE}/")
        found[label.split(" (")[0]] = url.rsplit("/", 1)[1]
    return found


def fetch(token: str) -> tuple[str, bytes]:
    download = download_links.take(token)
    assert download is not None
    return download.file_name, b"".join(download_links.body(download))


def test_csv_links_stream_all_rows_or_the_filtered_ones(store: Store) -> None:
    fx = make_verified_list(store, rows=250, name="Gold / VIP: Q4")
    merged = merge.append_verdicts(fx.rows, "Email", fx.verdicts)  # the pandas reference
    at = open_page()
    offered = links(at)
    assert sorted(offered) == ["CSV for a spreadsheet", "CSV, exact", "Excel file"]
    name, whole = fetch(offered["CSV for a spreadsheet"])
    assert name == "Gold_VIP_Q4_clearout_results.csv"
    assert whole == downloads.to_csv_bytes(merged)  # the engine's file is the reference's, byte for byte
    assert b"'=HYPERLINK" in whole  # formula neutralisation comes with lib.downloads
    name, exact = fetch(offered["CSV, exact"])
    assert name == "Gold_VIP_Q4_clearout_results_exact.csv"
    assert exact == downloads.to_csv_bytes(merged, downloads.EXACT) and b"'=HYPERLINK" not in exact
    assert links(run(at)) == offered  # a rerun reuses the links

    at.multiselect(key=key(at, "status")).select(co.CATCH_ALL)
    run(at)
    at.radio(key=key(at, "scope")).set_value("filtered")
    run(at)
    name, part = fetch(links(at)["CSV for a spreadsheet"])
    assert name == "Gold_VIP_Q4_clearout_results_filtered.csv"
    assert part == downloads.to_csv_bytes(filter_rows(merged, statuses=[co.CATCH_ALL]))


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, page_errors(at)
    return at


def test_excel_link_streams_a_workbook(store: Store) -> None:
    make_verified_list(store, rows=200, name="Gold / VIP: Q4")
    at = open_page()
    name, workbook = fetch(links(at)["Excel file"])
    assert name == "Gold_VIP_Q4_clearout_results.xlsx"
    assert workbook[:2] == b"PK" and len(workbook) > 1000  # an XLSX is a zip
    assert not [c for c in at.caption if c.value.startswith("An Excel file of")]  # small: no wait note


def test_excel_is_refused_above_the_sheet_limit(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    make_verified_list(store, rows=150)
    monkeypatch.setattr(downloads, "EXCEL_MAX_DATA_ROWS", 100)
    at = open_page()
    assert any("Excel holds at most 100 rows on a sheet; these are 150" in w.value for w in at.warning)
    assert "Excel file" not in links(at) and "CSV for a spreadsheet" in links(at)


def test_a_list_without_a_merged_file_asks_the_worker_and_waits(store: Store) -> None:
    fx = make_verified_list(store, rows=120, merged=False)
    at = open_page()
    assert any("Joining the verdicts to the 120 rows" in i.value for i in at.info)
    tasks = [store.get_task(at.session_state["results_merge_task"])]
    assert tasks[0] is not None and tasks[0].kind == results.MERGE_TASK
    assert not at.metric  # nothing is drawn from a file that is not there
    results.merge_now(store, fx.record.id, fx.job.id)  # what the worker does
    at.run()
    assert [m.label for m in at.metric][:1] == ["Rows"]
