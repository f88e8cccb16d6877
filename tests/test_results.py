"""lib/results.py: which lists are verified, the merged frame of one, its figures, filters, file names."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from lib import columns as co
from lib import downloads, merge, results
from lib.filters import Selection, filter_rows, select
from lib.store import Store
from tests.results_support import make_verified_list


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "data")


def test_only_ready_lists_of_the_mode_with_a_done_job_newest_first(store: Store) -> None:
    first = make_verified_list(store, rows=50, name="First", seed=1)
    second = make_verified_list(store, rows=60, name="Second", seed=2)
    make_verified_list(store, rows=40, name="Live list", mode="live", seed=3)
    unverified = store.create_list(name="Unverified", mode="sandbox", source_kind="csv", source="u.csv", state="ready")
    store.create_job(list_id=unverified.id, unique_emails=1, cached=0, syntax_invalid=0, to_verify=1)
    # First is verified again later: it becomes the most recent, with its newest done job.
    again = store.create_job(list_id=first.record.id, unique_emails=1, cached=0, syntax_invalid=0, to_verify=1)
    again = store.update_job(again.id, state="done", finished_at="2999-01-01T00:00:00+00:00", credits_spent=0)
    store.update_job(store.create_job(list_id=second.record.id, unique_emails=1, cached=0, syntax_invalid=0,
                                      to_verify=1).id, state="failed")

    found = results.verified_lists(store, "sandbox")
    assert [(v.record.name, v.job.id) for v in found] == [("First", again.id), ("Second", second.job.id)]
    assert [v.record.name for v in results.verified_lists(store, "live")] == ["Live list"]
    assert results.default_index(found, second.record.id) == 1
    assert results.default_index(found, 999) == 0 and results.default_index(found, None) == 0
    assert "First · 50 rows · verified 2999-01-01 00:00 UTC" == found[0].label


def test_merged_frame_keeps_every_row_in_order_and_figures_match(store: Store) -> None:
    fx = make_verified_list(store, rows=700)
    merged = results.load_merged(store, fx.record.id, fx.job.id)
    assert len(merged) == len(fx.rows)
    pd.testing.assert_frame_equal(merged[list(fx.rows.columns)], fx.rows, check_dtype=False)
    assert list(merged.columns)[len(fx.rows.columns):] == [*co.CLEAROUT_COLUMN_NAMES, co.VERDICT_SOURCE]
    expected = merge.key_figures(merge.append_verdicts(fx.rows, "Email", fx.verdicts), "Email")

    summary = results.summarise(merged, "Email", fx.job)
    assert summary.figures == expected
    assert expected.no_email > 0 and expected.undeliverable > 0  # the fixture has both kinds of rows
    assert summary.credits_spent == fx.job.credits_spent
    assert summary.credits_saved == fx.job.cached + fx.job.syntax_invalid > 0
    shown = {m.label: m for m in results.key_metrics(summary)}
    assert shown["Undeliverable"].value == f"{expected.undeliverable:,}"
    assert shown["Undeliverable"].note == f"{expected.share(expected.undeliverable):.1f}% of rows"
    assert f"{fx.job.cached:,} answered from recent verifications" in shown["Credits saved"].help
    assert len(results.figures(summary)) == 7


def test_credits_not_recorded_show_as_not_available(store: Store) -> None:
    fx = make_verified_list(store, rows=30)
    job = store.update_job(fx.job.id, credits_spent=None)
    summary = results.summarise(results.load_merged(store, fx.record.id, job.id), "Email", job)
    assert next(m for m in results.key_metrics(summary) if m.label == "Credits spent").value == "n/a"


def test_missing_files_and_foreign_jobs_say_what_to_do(store: Store) -> None:
    fx = make_verified_list(store, rows=30, name="Spring promo")
    other = make_verified_list(store, rows=30, seed=2)
    with pytest.raises(results.ResultsError, match="gone"):
        results.load_merged(store, fx.record.id, other.job.id)
    store.job_verdicts_path(fx.job.id).unlink()
    with pytest.raises(results.ResultsError, match="verification result file of Spring promo is missing"):
        results.load_merged(store, fx.record.id, fx.job.id)


def test_version_changes_when_a_file_is_replaced(store: Store) -> None:
    fx = make_verified_list(store, rows=30)
    item = results.verified_lists(store, "sandbox")[0]
    before = results.cache_key(store, item)
    assert before[:3] == (str(store.data_dir), fx.record.id, fx.job.id)
    path = store.job_verdicts_path(fx.job.id)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert results.cache_key(store, item) != before


def test_no_filter_returns_the_frame_itself_and_filters_narrow(store: Store) -> None:
    fx = make_verified_list(store, rows=400)
    merged = results.load_merged(store, fx.record.id, fx.job.id)
    assert select(merged, Selection()) is merged  # no copy of a big list per rerun
    chosen = Selection(statuses=(co.INVALID,), flags=("Free",))
    narrowed = select(merged, chosen)
    expected = filter_rows(merged, statuses=[co.INVALID], flags=["Free"])
    pd.testing.assert_frame_equal(narrowed, expected)
    assert 0 < len(narrowed) < len(merged)
    assert len(results.preview(merged, limit=100)) == 100


@pytest.mark.parametrize(("matching", "total", "text"), [
    (12_345, 1_000_000, "12,345 of 1,000,000 rows match; showing the first 1,000."),
    (1_000_000, 1_000_000, "All 1,000,000 rows match; showing the first 1,000."),
    (40, 900, "40 of 900 rows match; showing all 40."),
    (1, 900, "1 of 900 rows match; showing it."),
    (0, 900, "0 of 900 rows match: loosen a filter to see rows."),
])
def test_match_text(matching: int, total: int, text: str) -> None:
    assert results.match_text(matching, total) == text


@pytest.mark.parametrize(("name", "filtered", "expected"), [
    ("Gold customers", False, "Gold_customers_clearout_results.csv"),
    ("Q4: VIP / EU*", True, "Q4_VIP_EU_clearout_results_filtered.csv"),
    ("...", False, "list_clearout_results.csv"),
])
def test_file_names(name: str, filtered: bool, expected: str) -> None:
    assert results.file_name(name, "csv", filtered=filtered) == expected


def test_excel_refusal_uses_the_lib_message(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    fx = make_verified_list(store, rows=120)
    merged = results.load_merged(store, fx.record.id, fx.job.id)
    assert results.xlsx_refusal(merged) is None
    monkeypatch.setattr(downloads, "EXCEL_MAX_DATA_ROWS", 100)
    refusal = results.xlsx_refusal(merged)
    assert refusal is not None and "120 rows" in refusal and "Download it as CSV" in refusal


def test_excel_wait_warning_only_for_big_files() -> None:
    assert results.xlsx_wait_text(results.XLSX_SLOW_ROWS) is None
    assert "about 2 minutes" in results.xlsx_wait_text(1_000_000)
    assert "about 11 seconds" in results.xlsx_wait_text(100_000)


def test_a_list_verified_before_its_rows_changed_marks_unknown_rows(store: Store) -> None:
    fx = make_verified_list(store, rows=80)
    extra = fx.rows.head(1).assign(Email=pd.array(["newcomer@example.org"], dtype="string[pyarrow]"))
    pd.concat([fx.rows, extra], ignore_index=True).to_parquet(store.list_path(fx.record.id), index=False)
    summary = results.summarise(results.load_merged(store, fx.record.id, fx.job.id), "Email", fx.job)
    assert summary.figures.rows == 81 and summary.figures.not_in_result == 1
