"""lib/charts.py: aggregations checked against the merged frame; one colour per word on every chart."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
import pytest

from bench.merge import build_frames
from lib import charts, merge
from lib import columns as co


@pytest.fixture(scope="module")
def merged() -> pd.DataFrame:
    rows, verdicts = build_frames(rows=4_000, seed=3)
    # Drop a few verdicts so that "not in the result" rows exist too.
    return merge.append_verdicts(rows, "Email", verdicts.iloc[25:])


@pytest.mark.parametrize("aggregate, column", [
    (charts.status_counts, co.STATUS), (charts.source_counts, co.VERDICT_SOURCE)])
def test_category_counts_match_the_frame(merged, aggregate, column):
    counts = aggregate(merged)
    assert counts["rows"].sum() == len(merged)
    assert counts["share"].sum() == pytest.approx(100.0)
    for label, rows in zip(counts["label"], counts["rows"]):
        expected = merged[column].isna().sum() if label == charts.NOT_IN_RESULT else (merged[column] == label).sum()
        assert rows == expected, label
    assert (counts["rows"] > 0).all()


def test_safe_to_send_counts_rows_without_an_address_apart(merged):
    counts = dict(zip(charts.safe_to_send_counts(merged)["label"], charts.safe_to_send_counts(merged)["rows"]))
    no_email = merged[co.STATUS] == co.NO_EMAIL
    assert counts[co.SOURCE_NO_EMAIL] == no_email.sum() > 0
    assert counts[co.UNKNOWN] == ((merged[co.SAFE_TO_SEND] == co.UNKNOWN) & ~no_email).sum()
    assert sum(counts.values()) == len(merged)


def test_sources_show_rows_missing_from_the_result(merged):
    counts = charts.source_counts(merged).set_index("label")["rows"]
    assert counts[charts.NOT_IN_RESULT] == (merged[co.REASON] == merge.NOT_IN_RESULT_REASON).sum() > 0
    assert counts[co.SOURCE_SYNTAX] == (merged[co.REASON] == "Syntax error").sum() > 0


def test_reasons_are_ranked_and_grouped(merged):
    counts = charts.reason_counts(merged, top=3)
    assert counts["rows"].sum() == len(merged)
    top = merged[co.REASON].value_counts()
    assert list(counts["label"][:3]) == list(top.index[:3])
    assert list(counts["rows"][:3]) == list(top.iloc[:3])
    other = counts.set_index("label").loc[charts.OTHER_REASONS, "rows"]
    assert other == top.iloc[3:].sum()
    success = counts.set_index("label").loc["Success", "status"]
    assert success == merged.loc[merged[co.REASON] == "Success", co.STATUS].mode()[0] == co.VALID


def test_reason_colours_are_named_in_plain_words(merged):
    figure = charts.reason_chart(charts.reason_counts(merged, top=3))
    assert figure.layout.legend.title.text == "Verification status"  # not the jargon "Usual status"


def test_blank_reasons_are_counted(merged):
    blanked = merged.copy()
    blanked.loc[blanked.index[:7], co.REASON] = pd.NA
    counts = charts.reason_counts(blanked).set_index("label")["rows"]
    assert counts[charts.BLANK] == 7 and counts.sum() == len(merged)


def test_flag_shares_are_percent_of_all_rows(merged):
    shares = charts.flag_shares(merged).set_index("label")
    assert list(shares.index) == list(co.FLAG_COLUMNS)
    for name, column in co.FLAG_COLUMNS.items():
        assert shares.loc[name, "rows"] == (merged[column] == co.YES).sum()
        assert shares.loc[name, "share"] == pytest.approx(100 * (merged[column] == co.YES).mean())


@pytest.mark.parametrize("by", [co.DOMAIN, co.SMTP_PROVIDER])
def test_domain_stats_match_the_frame(merged, by):
    stats = charts.domain_stats(merged, by=by, top=4)
    volumes = merged[by].str.lower().value_counts()
    assert list(stats["rows"]) == list(volumes.iloc[:4])
    outcome = merge.deliverability(merged)
    for _, row in stats.iterrows():
        mine = merged[by].str.lower() == row["label"]
        undeliverable = (mine & (outcome == merge.UNDELIVERABLE)).sum()
        assert row[merge.UNDELIVERABLE] == undeliverable
        assert row["undeliverable_rate"] == pytest.approx(100 * undeliverable / mine.sum())
        assert row[[merge.SAFE, merge.RISKY, merge.UNDELIVERABLE, merge.UNKNOWN]].sum() == row["rows"]


def test_domains_are_grouped_case_insensitively():
    frame = pd.DataFrame({
        co.DOMAIN: pd.Series(["Acme.io", "acme.io", "b.com", None], dtype="string[pyarrow]"),
        co.STATUS: pd.Series([co.INVALID, co.VALID, co.VALID, co.NO_EMAIL], dtype=co.STATUS_DTYPE),
        co.SAFE_TO_SEND: pd.Series([co.NO, co.YES, co.YES, co.UNKNOWN], dtype=co.SAFE_TO_SEND_DTYPE)})
    stats = charts.domain_stats(frame)
    assert stats[["label", "rows", "undeliverable_rate"]].values.tolist() == [["acme.io", 2, 50.0], ["b.com", 1, 0.0]]


def _figures(merged: pd.DataFrame) -> dict[str, go.Figure]:
    return {
        "status": charts.status_chart(charts.status_counts(merged)),
        "safe": charts.safe_to_send_chart(charts.safe_to_send_counts(merged)),
        "source": charts.source_chart(charts.source_counts(merged)),
        "reasons": charts.reason_chart(charts.reason_counts(merged)),
        "flags": charts.flag_chart(charts.flag_shares(merged)),
        "domains": charts.domain_chart(charts.domain_stats(merged)),
        "providers": charts.provider_chart(charts.domain_stats(merged, by=co.SMTP_PROVIDER)),
    }


def _bar_colours(figure: go.Figure) -> dict[str, str]:
    """Label (bar or legend name) -> colour over every bar trace of a figure."""
    seen: dict[str, str] = {}
    for trace in figure.data:
        if trace.type != "bar":
            continue
        colours = trace.marker.color
        if isinstance(colours, str):
            seen[trace.name or "Flag"] = colours
        else:
            labels = trace.x if trace.orientation != "h" else trace.y
            seen.update(zip(map(str, labels), colours))
    return seen


def test_one_word_has_one_colour_on_every_chart(merged):
    by_word: dict[str, set[str]] = {}
    for figure in _figures(merged).values():
        for word, colour in _bar_colours(figure).items():
            by_word.setdefault(word, set()).add(colour)
    assert {co.VALID, co.INVALID, co.CATCH_ALL, co.UNKNOWN, co.NO_EMAIL, merge.UNDELIVERABLE} <= set(by_word)
    for word, colours in by_word.items():
        assert colours == {charts.COLOURS[word]}, word
    # A status and its safe-to-send counterpart look alike; different meanings look different.
    assert charts.COLOURS[co.INVALID] == charts.COLOURS[co.NO] == charts.COLOURS[merge.UNDELIVERABLE]
    assert charts.COLOURS[co.CATCH_ALL] == charts.COLOURS[co.RISKY]
    statuses = [charts.COLOURS[word] for word in co.STATUS_DTYPE.categories]
    assert len(set(statuses)) == len(statuses)


def test_figures_carry_titles_labels_and_fixed_heights(merged):
    for name, figure in _figures(merged).items():
        assert figure.layout.title.text, name
        assert figure.layout.height in (charts.SMALL_HEIGHT, charts.TALL_HEIGHT), name
    status = _figures(merged)["status"]
    assert f"{len(merged):,} rows" in status.layout.title.text
    first = charts.status_counts(merged).iloc[0]
    assert status.data[0].text[0] == f"{first['rows']:,}<br>({first['share']:.1f}%)"


def test_an_empty_list_draws_a_placeholder(merged):
    for name, figure in _figures(merged.iloc[:0]).items():
        expected = "No flagged addresses" if name == "flags" else "No rows to show"
        assert [a.text for a in figure.layout.annotations] == [expected], name
        assert figure.layout.title.text, name
