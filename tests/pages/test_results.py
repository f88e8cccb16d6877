"""pages/results.py through AppTest: figures, charts, filters, the bounded preview, downloads, empty state."""
from __future__ import annotations

import json
from pathlib import Path
from collections.abc import Iterator

import pytest
from streamlit.delta_generator import DeltaGenerator
from streamlit.testing.v1 import AppTest

from lib import columns as co
from lib import downloads, merge, results
from lib.filters import filter_rows
from lib.store import Store
from tests.pages.support import app_test, isolate_app, page_errors, release_app
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
    assert len(charts) == 7
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in charts]
    assert all(titles) and len(set(titles)) == 7
    assert all(json.loads(c.proto.config)["displaylogo"] is False for c in charts)
    assert len(at.dataframe[0].value) == figures.rows  # 800 rows: under the preview bound
    assert match_text(at) == f"All {figures.rows:,} rows match; showing all {figures.rows:,}."
    assert [link.proto.page for link in elements(at, "page_link")] == ["export"]


def test_filters_narrow_the_preview_and_the_count(store: Store) -> None:
    fx = make_verified_list(store, rows=900)
    merged = merge.append_verdicts(fx.rows, "Email", fx.verdicts)
    at = open_page()
    at.multiselect(key="results_status").select(co.INVALID).run()
    invalid = filter_rows(merged, statuses=[co.INVALID])
    assert 0 < len(invalid) < len(merged)
    assert match_text(at).startswith(f"{len(invalid):,} of {len(merged):,} rows match")
    preview = at.dataframe[0].value
    assert len(preview) == len(invalid)
    assert set(preview[co.STATUS].astype(str)) == {co.INVALID}

    at.multiselect(key="results_domain").select("gmail.com").run()
    both = filter_rows(merged, statuses=[co.INVALID], domains=["gmail.com"])
    assert len(at.dataframe[0].value) == len(both) < len(invalid)
    assert match_text(at).startswith(f"{len(both):,} of {len(merged):,} rows match")
    assert at.radio(key="results_scope").disabled is False


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


def test_switching_lists_clears_the_filters(store: Store) -> None:
    first = make_verified_list(store, rows=300, name="First", seed=1)
    make_verified_list(store, rows=400, name="Second", seed=2)
    at = open_page()
    at.multiselect(key="results_status").select(co.VALID).run()
    at.selectbox(key="results_list").select(first.record.id).run()
    assert not at.exception, page_errors(at)
    assert at.multiselect(key="results_status").value == []
    assert match_text(at).startswith("All 300 rows match")


@pytest.fixture
def offered(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """File name -> the download button's `data`, for the buttons the last run drew.

    AppTest has no media file manager, so the rendered button carries neither file name nor data.
    """
    seen: dict[str, object] = {}
    original = DeltaGenerator.download_button

    def record(self, label, data, file_name=None, *args, **kwargs):
        seen[file_name] = data
        return original(self, label, data, file_name, *args, **kwargs)

    monkeypatch.setattr(DeltaGenerator, "download_button", record)
    return seen


def run(at: AppTest, offered: dict[str, object]) -> AppTest:
    offered.clear()
    at.run()
    assert not at.exception, page_errors(at)
    return at


def test_csv_downloads_hold_all_rows_or_the_filtered_ones(store: Store, offered: dict[str, object]) -> None:
    fx = make_verified_list(store, rows=250, name="Gold / VIP: Q4")
    merged = merge.append_verdicts(fx.rows, "Email", fx.verdicts)
    at = open_page()
    whole = offered["Gold_VIP_Q4_clearout_results.csv"]()  # built only when clicked: a callable
    assert whole == downloads.to_csv_bytes(merged)
    assert b"'=HYPERLINK" in whole  # formula neutralisation comes with lib.downloads

    at.multiselect(key="results_status").select(co.CATCH_ALL)
    run(at, offered)
    at.radio(key="results_scope").set_value("filtered")
    run(at, offered)
    assert list(offered) == ["Gold_VIP_Q4_clearout_results_filtered.csv"]
    expected = filter_rows(merged, statuses=[co.CATCH_ALL])
    assert offered["Gold_VIP_Q4_clearout_results_filtered.csv"]() == downloads.to_csv_bytes(expected)


def test_excel_is_built_on_demand_then_offered(store: Store, offered: dict[str, object]) -> None:
    make_verified_list(store, rows=200, name="Gold / VIP: Q4")
    at = open_page()
    assert list(offered) == ["Gold_VIP_Q4_clearout_results.csv"]  # no Excel file until asked for
    at.button(key="results_xlsx_build").click()
    run(at, offered)
    assert sorted(offered) == ["Gold_VIP_Q4_clearout_results.csv", "Gold_VIP_Q4_clearout_results.xlsx"]
    workbook = offered["Gold_VIP_Q4_clearout_results.xlsx"]()
    assert workbook[:2] == b"PK" and len(workbook) > 1000  # an XLSX is a zip
    assert not any(w.value.startswith("An Excel file of") for w in at.warning)  # small: no wait warning

    at.multiselect(key="results_status").select(co.VALID)
    run(at, offered)
    at.radio(key="results_scope").set_value("filtered")
    run(at, offered)
    assert list(offered) == ["Gold_VIP_Q4_clearout_results_filtered.csv"]  # the Excel file was of other rows
    assert "results_xlsx" not in at.session_state


def test_excel_is_refused_above_the_sheet_limit(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    make_verified_list(store, rows=150)
    monkeypatch.setattr(downloads, "EXCEL_MAX_DATA_ROWS", 100)
    at = open_page()
    assert any("an Excel sheet holds at most 100 rows" in w.value for w in at.warning)
    assert not [b for b in at.button if b.key == "results_xlsx_build"]
