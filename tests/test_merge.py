"""lib/merge.py: the verdict join on tricky inputs, and the figures and filters the Results page uses."""
from __future__ import annotations

import pandas as pd
import pytest

from lib import columns as co
from lib import merge
from lib.merge import MergeError, append_verdicts, key_figures

TEXT = "string[pyarrow]"


def verdict(email: str, status: str = co.VALID, safe: str = co.YES, reason: str = "Success",
            source: str = co.SOURCE_NEW, **extra: str | None) -> dict:
    """One verdict row as a jobs module would build it (display words, before conforming)."""
    domain = email.split("@")[-1] if "@" in email else None
    row = {name: None for name in co.CLEAROUT_COLUMN_NAMES}
    row.update({"email": email, co.STATUS: status, co.SAFE_TO_SEND: safe, co.REASON: reason,
                co.DISPOSABLE: "No", co.FREE: "No", co.ROLE: "No", co.GIBBERISH: "No",
                co.DOMAIN: domain, co.VERIFIED_AT: "2025-11-01T10:00:00Z", co.TIME_TAKEN: "120",
                co.VERDICT_SOURCE: source})
    assert set(extra) <= set(row), extra
    row.update(extra)
    return row


def verdicts_frame(*rows: dict) -> pd.DataFrame:
    frame = co.conform_clearout_columns(pd.DataFrame(list(rows)), keep=("email",))
    frame[co.VERDICT_SOURCE] = pd.Series([r[co.VERDICT_SOURCE] for r in rows], dtype=co.SOURCE_DTYPE,
                                         index=frame.index)
    return frame


@pytest.fixture
def verdicts() -> pd.DataFrame:
    return verdicts_frame(
        verdict("ann@gmail.com", **{co.FREE: "Yes"}),
        verdict("bob@acme.io", co.INVALID, co.NO, "Mailbox not found", source=co.SOURCE_CACHED),
        verdict("cat@acme.io", co.CATCH_ALL, co.RISKY, "Catch All mail server", **{co.ROLE: "Yes"}),
        verdict("dan@mailinator.com", co.UNKNOWN, co.UNKNOWN, "Server timeout", **{co.DISPOSABLE: "Yes"}),
        verdict("not an email", co.INVALID, co.NO, "Syntax error", source=co.SOURCE_SYNTAX),
    )


@pytest.fixture
def rows() -> pd.DataFrame:
    return pd.DataFrame({
        "Name": ["Ann", "Bob", "Ann again", "Nobody", "Cat", "Blank", "Ghost", "Dan", "Typo", "NA"],
        "email": ["ann@gmail.com", "bob@acme.io", "  ANN@Gmail.COM ", "", "cat@acme.io", "   ",
                  "ghost@acme.io", "dan@mailinator.com", "not an email", None],
    }, dtype=TEXT, index=[90, 80, 70, 60, 50, 40, 30, 20, 10, 0])


def test_every_row_kept_in_order_with_its_columns_and_index(rows, verdicts):
    merged = append_verdicts(rows, "email", verdicts)
    assert list(merged.columns) == ["Name", "email", *co.CLEAROUT_COLUMN_NAMES, co.VERDICT_SOURCE]
    assert merged.index.equals(rows.index)
    pd.testing.assert_frame_equal(merged[["Name", "email"]], rows)


def test_case_and_space_variants_share_one_verdict(rows, verdicts):
    merged = append_verdicts(rows, "email", verdicts).set_index("Name")
    ann, again = merged.loc["Ann"], merged.loc["Ann again"]
    assert again[co.STATUS] == co.VALID
    assert again[list(merge.VERDICT_COLUMNS)].equals(ann[list(merge.VERDICT_COLUMNS)])
    assert merged.loc["Bob", co.REASON] == "Mailbox not found"
    assert merged.loc["Bob", co.VERDICT_SOURCE] == co.SOURCE_CACHED
    assert merged.loc["Typo", co.VERDICT_SOURCE] == co.SOURCE_SYNTAX


def test_rows_without_an_address_are_marked_no_email(rows, verdicts):
    merged = append_verdicts(rows, "email", verdicts).set_index("Name")
    for name in ("Nobody", "Blank", "NA"):
        row = merged.loc[name]
        assert (row[co.STATUS], row[co.SAFE_TO_SEND], row[co.REASON], row[co.VERDICT_SOURCE]) == (
            co.NO_EMAIL, co.UNKNOWN, merge.NO_EMAIL_REASON, co.SOURCE_NO_EMAIL)
        assert pd.isna(row[co.DOMAIN]) and pd.isna(row[co.VERIFIED_AT])


def test_an_address_missing_from_the_result_is_unknown_and_says_why(rows, verdicts):
    ghost = append_verdicts(rows, "email", verdicts).set_index("Name").loc["Ghost"]
    assert (ghost[co.STATUS], ghost[co.SAFE_TO_SEND], ghost[co.REASON]) == (
        co.UNKNOWN, co.UNKNOWN, merge.NOT_IN_RESULT_REASON)
    assert pd.isna(ghost[co.VERDICT_SOURCE])


def test_appended_columns_have_the_declared_dtypes(rows, verdicts):
    merged = append_verdicts(rows, "email", verdicts)
    for column in co.CLEAROUT_COLUMNS:
        assert merged[column.name].dtype == column.dtype, column.name
    assert merged[co.VERDICT_SOURCE].dtype == co.SOURCE_DTYPE


def test_inputs_are_not_mutated(rows, verdicts):
    rows_before, verdicts_before = rows.copy(deep=True), verdicts.copy(deep=True)
    merged = append_verdicts(rows, "email", verdicts)
    merged.loc[merged.index[0], "Name"] = "changed"
    merged.loc[merged.index[0], co.REASON] = "changed"
    pd.testing.assert_frame_equal(rows, rows_before)
    pd.testing.assert_frame_equal(verdicts, verdicts_before)


def test_a_duplicated_index_and_plain_object_columns_work(verdicts):
    rows = pd.DataFrame({"Email": ["bob@acme.io", None, "ann@gmail.com"], "Note": ["a", "b", "c"]},
                        index=["x", "x", "y"], dtype=object)
    merged = append_verdicts(rows, "Email", verdicts)
    assert list(merged.index) == ["x", "x", "y"]
    assert list(merged[co.STATUS]) == [co.INVALID, co.NO_EMAIL, co.VALID]


def test_extra_verdict_columns_are_ignored(rows, verdicts):
    merged = append_verdicts(rows, "email", verdicts.assign(**{"Clearout AI Verdict": "Good", "score": 9}))
    assert "Clearout AI Verdict" not in merged.columns and "score" not in merged.columns


def test_verdicts_in_display_text_are_conformed(rows, verdicts):
    as_text = verdicts.astype(str).replace({"<NA>": "", "NaT": ""}).rename(columns={co.STATUS: co.STATUS.upper()})
    assert append_verdicts(rows, "email", as_text).equals(append_verdicts(rows, "email", verdicts))


def test_a_missing_declared_column_fails_loudly(rows, verdicts):
    with pytest.raises(co.ClearoutColumnsError, match="Clearout Reason"):
        append_verdicts(rows, "email", verdicts.drop(columns=[co.REASON]))
    with pytest.raises(co.ClearoutColumnsError, match="Verdict Source"):
        append_verdicts(rows, "email", verdicts.drop(columns=[co.VERDICT_SOURCE]))


def test_an_unexpected_source_word_fails_loudly(rows, verdicts):
    with pytest.raises(co.ClearoutColumnsError, match="Guessed"):
        append_verdicts(rows, "email", verdicts.astype({co.VERDICT_SOURCE: str}).assign(
            **{co.VERDICT_SOURCE: "Guessed"}))


@pytest.mark.parametrize("duplicate", ["ann@gmail.com", " Ann@Gmail.com"])
def test_duplicate_verdict_keys_fail_loudly(rows, verdicts, duplicate):
    extra = verdicts_frame(verdict(duplicate, co.INVALID, co.NO, "Mailbox not found"))
    with pytest.raises(MergeError, match="1 address"):
        append_verdicts(rows, "email", pd.concat([verdicts, extra], ignore_index=True))


def test_a_verdict_without_an_address_fails_loudly(rows, verdicts):
    blank = verdicts.astype({"email": TEXT})
    blank.loc[2, "email"] = None
    with pytest.raises(MergeError, match="no email"):
        append_verdicts(rows, "email", blank)


def test_an_unknown_email_column_fails_with_its_name(rows, verdicts):
    with pytest.raises(MergeError, match="'Email'"):
        append_verdicts(rows, "Email", verdicts)


def test_stale_clearout_columns_in_the_list_are_replaced(verdicts):
    rows = pd.DataFrame({"Email": ["bob@acme.io"], "clearout verification status": ["Valid"], "Keep": ["k"]})
    merged = append_verdicts(rows, "Email", verdicts)
    assert list(merged.columns) == ["Email", "Keep", *merge.VERDICT_COLUMNS]
    assert merged[co.STATUS].tolist() == [co.INVALID]


def test_empty_inputs(verdicts):
    empty = pd.DataFrame({"Email": pd.Series([], dtype=TEXT)})
    assert len(append_verdicts(empty, "Email", verdicts)) == 0
    merged = append_verdicts(pd.DataFrame({"Email": ["a@b.co"]}), "Email", verdicts.iloc[:0])
    assert merged[co.REASON].tolist() == [merge.NOT_IN_RESULT_REASON]


# ---- figures and filters --------------------------------------------------------------------------

@pytest.fixture
def merged(rows, verdicts) -> pd.DataFrame:
    return append_verdicts(rows, "email", verdicts)


def test_key_figures_partition_the_rows(merged):
    figures = key_figures(merged, "email")
    assert figures.rows == 10
    assert figures.unique_emails == 6  # ann (x2), bob, ghost, cat, dan, "not an email"
    assert (figures.safe_to_send, figures.risky, figures.undeliverable, figures.unknown, figures.no_email) == (
        2, 1, 2, 2, 3)
    assert figures.not_in_result == 1
    assert figures.share(figures.no_email) == pytest.approx(30.0)


def test_key_figures_follow_the_frame(merged):
    figures = key_figures(merged, "email")
    outcome = merge.deliverability(merged)
    assert figures.undeliverable == int(((merged[co.STATUS] == co.INVALID) | (merged[co.SAFE_TO_SEND] == co.NO)).sum())
    assert figures.safe_to_send + figures.risky + figures.undeliverable + figures.unknown + figures.no_email \
        == figures.rows == len(outcome)


def test_valid_but_risky_counts_as_risky():
    frame = pd.DataFrame({co.STATUS: pd.Series([co.VALID, co.VALID], dtype=co.STATUS_DTYPE),
                          co.SAFE_TO_SEND: pd.Series([co.RISKY, None], dtype=co.SAFE_TO_SEND_DTYPE)})
    assert merge.deliverability(frame).tolist() == [merge.RISKY, merge.UNKNOWN]
