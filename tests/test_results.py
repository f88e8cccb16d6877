"""lib/results.py: which lists are verified, the merged frame of one, its figures, filters, file names."""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from lib import columns as co
from lib import downloads, merge, results, resultset
from lib.filters import Selection, select
from lib.store import Store
from tests.results_support import make_verified_list, pandas_summary


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


def item_of(store: Store, list_id: int) -> results.VerifiedList:
    return next(v for v in results.verified_lists(store, "sandbox") if v.record.id == list_id)


def assert_same_summary(engine: results.Summary, reference: results.Summary) -> None:
    """Cell for cell: figures, every chart frame, the filter options."""
    assert engine.figures == reference.figures
    assert engine.options == reference.options
    for name in ("status", "safe_to_send", "reasons", "flags", "domains", "providers", "sources"):
        pd.testing.assert_frame_equal(getattr(engine, name), getattr(reference, name), check_dtype=False, obj=name)


@pytest.mark.parametrize("seed", [7, 11])
def test_the_engine_summary_equals_the_pandas_reference(store: Store, seed: int) -> None:
    fx = make_verified_list(store, rows=1500, seed=seed)
    reference = pandas_summary(merge.append_verdicts(fx.rows, "Email", fx.verdicts), "Email", fx.job)
    summary = results.summarise(store, item_of(store, fx.record.id))
    assert_same_summary(summary, reference)
    assert reference.figures.no_email > 0 and reference.figures.undeliverable > 0  # both kinds of rows
    assert len(reference.reasons) > 3 and len(reference.domains) == 10  # real aggregation, not empties
    assert summary.credits_spent == fx.job.credits_spent
    assert summary.credits_saved == fx.job.cached + fx.job.syntax_invalid > 0
    shown = {m.label: m for m in results.key_metrics(summary)}
    assert shown["Undeliverable"].value == f"{reference.figures.undeliverable:,}"
    assert f"{fx.job.cached:,} answered from recent verifications" in shown["Credits saved"].help
    assert len(results.figures(summary)) == 8


def test_the_merged_file_is_the_pandas_merge_cell_for_cell(store: Store) -> None:
    fx = make_verified_list(store, rows=900, seed=3)
    reference = merge.append_verdicts(fx.rows, "Email", fx.verdicts)
    written = pd.read_parquet(resultset.merged_path(store, fx.job.id))
    assert list(written.columns) == list(reference.columns)
    expected = reference.astype({name: "string" for name in (*co.CATEGORICAL_COLUMNS, co.VERDICT_SOURCE)})
    actual = written.astype({name: "string" for name in (*co.CATEGORICAL_COLUMNS, co.VERDICT_SOURCE)})
    actual[co.VERIFIED_AT] = actual[co.VERIFIED_AT].astype(expected[co.VERIFIED_AT].dtype)
    pd.testing.assert_frame_equal(actual, expected, check_dtype=False)


@pytest.mark.parametrize("selection", [
    Selection(), Selection(statuses=(co.INVALID,), flags=("Free",)), Selection(safe_to_send=(co.NO, co.UNKNOWN)),
    Selection(reasons=("Mailbox not found", "No email address")), Selection(domains=(" GMAIL.com ", "nowhere.io")),
    Selection(flags=("Role", "Disposable"), statuses=(co.VALID, co.CATCH_ALL))])
def test_engine_filters_match_the_pandas_filters(store: Store, selection: Selection) -> None:
    fx = make_verified_list(store, rows=800, seed=5)
    reference = select(merge.append_verdicts(fx.rows, "Email", fx.verdicts), selection)
    found = results.matching_rows(store, item_of(store, fx.record.id), selection, limit=100)
    assert (found.total, found.matching) == (800, len(reference))
    assert plain(found.preview["Email"]) == plain(reference["Email"].head(100))  # list order kept
    assert len(found.preview) == min(100, len(reference))


def plain(values: pd.Series) -> list[object]:
    return [None if pd.isna(v) else v for v in values]


def test_credits_not_recorded_show_as_not_available(store: Store) -> None:
    fx = make_verified_list(store, rows=30)
    store.update_job(fx.job.id, credits_spent=None)
    summary = results.summarise(store, item_of(store, fx.record.id))
    assert next(m for m in results.key_metrics(summary) if m.label == "Credits spent").value == "n/a"


def test_missing_files_and_foreign_jobs_say_what_to_do(store: Store) -> None:
    fx = make_verified_list(store, rows=30, name="Spring promo", merged=False)
    other = make_verified_list(store, rows=30, seed=2)
    with pytest.raises(results.ResultsError, match="gone"):
        results.merge_now(store, fx.record.id, other.job.id)
    store.job_verdicts_path(fx.job.id).unlink()
    with pytest.raises(results.ResultsError, match="verification result file of Spring promo is missing"):
        results.merge_now(store, fx.record.id, fx.job.id)
    assert results.merged_file(store, item_of(store, fx.record.id)) is None


def test_version_changes_when_the_merged_file_is_written_again(store: Store) -> None:
    fx = make_verified_list(store, rows=30)
    item = item_of(store, fx.record.id)
    before = results.cache_key(store, item)
    assert before[:3] == (str(store.data_dir), fx.record.id, fx.job.id)
    path = resultset.merged_path(store, fx.job.id)
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    assert results.cache_key(store, item) != before


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


def test_excel_is_refused_above_the_sheet_limit_only() -> None:
    assert results.download_refusal("xlsx", downloads.EXCEL_MAX_DATA_ROWS) is None
    refusal = results.download_refusal("xlsx", 10_000_000)
    assert refusal is not None and "10,000,000" in refusal and "Download a CSV" in refusal
    assert results.download_refusal("csv", 10_000_000) is None


def test_excel_wait_warning_only_for_big_files() -> None:
    assert results.xlsx_wait_text(results.XLSX_SLOW_ROWS) is None
    assert "about 2 minutes" in results.xlsx_wait_text(1_000_000)
    assert results.xlsx_wait_text(2_000_000) is None  # refused instead
    assert "about 11 seconds" in results.xlsx_wait_text(100_000)


def test_a_list_verified_before_its_rows_changed_marks_unknown_rows(store: Store) -> None:
    fx = make_verified_list(store, rows=80)
    extra = fx.rows.head(1).assign(Email=pd.array(["newcomer@example.org"], dtype="string[pyarrow]"))
    pd.concat([fx.rows, extra], ignore_index=True).to_parquet(store.list_path(fx.record.id), index=False)
    results.merge_now(store, fx.record.id, fx.job.id)
    summary = results.summarise(store, item_of(store, fx.record.id))
    assert summary.figures.rows == 81 and summary.figures.not_in_result == 1
