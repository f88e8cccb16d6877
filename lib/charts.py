"""Results charts: small pure aggregations of a merged list, and the plotly figures drawn from them.

Aggregations (`status_counts`, `reason_counts`, `domain_stats`, ...) take the output of
`lib.merge.append_verdicts` and return a small DataFrame, so the page can cache them and tests can
check them against the frame. Figures take that small frame. Every count frame has `label`, `rows`
and `share` (percent of all rows), and its `rows` add up to the list's row count.

One word, one colour, on every chart (Okabe-Ito, safe for the common colour-vision deficiencies):
a status and its safe-to-send counterpart share a colour (Invalid and No are both vermillion).
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from lib import columns as co
from lib import merge

BLANK = "(blank)"  # a verdict column left empty
OTHER_REASONS = "Other reasons"
NOT_IN_RESULT = "Not in the result"  # verdict source of rows the result file did not cover

_GREEN, _VERMILLION, _ORANGE, _GREY, _LIGHT_GREY = "#009E73", "#D55E00", "#E69F00", "#8C8C8C", "#C8C8C8"
_BLUE, _SKY_BLUE, _PURPLE, _YELLOW = "#0072B2", "#56B4E9", "#CC79A7", "#F0E442"
COLOURS: dict[str, str] = {
    co.VALID: _GREEN, co.YES: _GREEN, merge.SAFE: _GREEN,
    co.INVALID: _VERMILLION, co.NO: _VERMILLION, merge.UNDELIVERABLE: _VERMILLION,
    co.CATCH_ALL: _ORANGE, co.RISKY: _ORANGE,
    co.UNKNOWN: _GREY, NOT_IN_RESULT: _GREY,
    co.NO_EMAIL: _LIGHT_GREY, co.SOURCE_NO_EMAIL: _LIGHT_GREY, BLANK: _LIGHT_GREY, OTHER_REASONS: _LIGHT_GREY,
    co.SOURCE_NEW: _BLUE, co.SOURCE_CACHED: _SKY_BLUE, co.SOURCE_SYNTAX: _PURPLE,
    "Flag": _BLUE,
}
SMALL_HEIGHT, TALL_HEIGHT = 340, 440  # px; two charts share a row of a 1280-wide page


# ---- aggregations ---------------------------------------------------------------------------------

def _counts(values: pd.Series, blank: str = BLANK) -> pd.DataFrame:
    """Rows per value in category order (values with no rows left out), blanks last."""
    counts = values.value_counts(sort=False, dropna=False)
    labels = [blank if pd.isna(word) else str(word) for word in counts.index]
    frame = pd.DataFrame({"label": labels, "rows": counts.to_numpy(dtype=np.int64)})
    frame = frame[frame["rows"] > 0]
    frame = pd.concat([frame[frame["label"] != blank], frame[frame["label"] == blank]], ignore_index=True)
    return with_share(frame, len(values))


def with_share(frame: pd.DataFrame, total: int) -> pd.DataFrame:
    frame = frame.reset_index(drop=True)
    frame["share"] = 100.0 * frame["rows"] / total if total else 0.0
    return frame


def status_counts(merged: pd.DataFrame) -> pd.DataFrame:
    """Rows per verification status (Valid, Invalid, Catch All, Unknown, No Email)."""
    return _counts(merged[co.STATUS])


SAFE_LABELS = pd.CategoricalDtype([*co.SAFE_TO_SEND_DTYPE.categories, co.SOURCE_NO_EMAIL])


def safe_to_send_counts(merged: pd.DataFrame) -> pd.DataFrame:
    """Rows per safe-to-send answer (Yes, Risky, No, Unknown), and rows without an address as "No email"
    (their answer is Unknown too, but counting them there made this chart disagree with the Unknown
    figure above it)."""
    safe = merged[co.SAFE_TO_SEND].astype("string").astype(SAFE_LABELS)
    return _counts(safe.mask((merged[co.STATUS] == co.NO_EMAIL).to_numpy(), co.SOURCE_NO_EMAIL))


def source_counts(merged: pd.DataFrame) -> pd.DataFrame:
    """Rows per verdict source: verified now (credits), cached, syntax check, no email, not in the result."""
    return _counts(merged[co.VERDICT_SOURCE], blank=NOT_IN_RESULT)


def reason_counts(merged: pd.DataFrame, top: int = 12) -> pd.DataFrame:
    """The `top` reasons by rows, then "Other reasons" and "(blank)"; `status` is each reason's usual status."""
    reason = merged[co.REASON].astype("string[pyarrow]")
    status = merged[co.STATUS].astype(co.STATUS_DTYPE)
    codes, uniques = pd.factorize(reason, use_na_sentinel=True)
    per_status = _crosstab(codes, len(uniques), status.cat.codes.to_numpy(), len(co.STATUS_DTYPE.categories))
    rows = per_status.sum(axis=1)
    order = sorted(range(len(uniques)), key=lambda i: (-rows[i], str(uniques[i])))
    shown, rest = order[:top], order[top:]
    frame = pd.DataFrame({
        "label": [str(uniques[i]) for i in shown],
        "rows": rows[shown].astype(np.int64),
        "status": [co.STATUS_DTYPE.categories[per_status[i].argmax()] for i in shown],
    })
    extra = [(OTHER_REASONS, int(rows[rest].sum())), (BLANK, int((codes < 0).sum()))]
    frame = pd.concat([frame, pd.DataFrame([{"label": label, "rows": n, "status": label}
                                            for label, n in extra if n])], ignore_index=True)
    return with_share(frame.astype({"rows": np.int64}), len(merged))


def flag_shares(merged: pd.DataFrame) -> pd.DataFrame:
    """Rows flagged Yes for each flag (Disposable, Role, Free, Gibberish), as a share of all rows."""
    frame = pd.DataFrame({
        "label": list(co.FLAG_COLUMNS),
        "rows": [int((merged[column] == co.YES).sum()) for column in co.FLAG_COLUMNS.values()],
    })
    return with_share(frame, len(merged))


def domain_stats(merged: pd.DataFrame, by: str = co.DOMAIN, top: int = 10) -> pd.DataFrame:
    """The `top` values of `by` (Clearout Domain or SMTP Provider) by rows, with their outcomes.

    Columns: label, rows, share, one count per deliverability outcome (lib.merge: Safe to send, Risky,
    Undeliverable, Unknown), and `undeliverable_rate` (percent of that label's rows). Rows without a
    value (no address, syntax failures) are left out, so `rows` add up to at most the list's rows.
    """
    outcome = merge.deliverability(merged)
    codes, uniques = pd.factorize(merged[by].astype("string[pyarrow]").str.lower(), use_na_sentinel=True)
    per_outcome = _crosstab(codes, len(uniques), outcome.cat.codes.to_numpy(), len(merge.OUTCOME_DTYPE.categories))
    rows = per_outcome.sum(axis=1)
    order = sorted(range(len(uniques)), key=lambda i: (-rows[i], str(uniques[i])))[:top]
    frame = pd.DataFrame({"label": [str(uniques[i]) for i in order], "rows": rows[order].astype(np.int64)})
    frame = with_share(frame, len(merged))
    for position, word in enumerate(merge.OUTCOME_DTYPE.categories):
        if word != merge.NO_EMAIL:
            frame[word] = per_outcome[order, position].astype(np.int64)
    frame["undeliverable_rate"] = 100.0 * frame[merge.UNDELIVERABLE] / frame["rows"].where(frame["rows"] > 0)
    return frame.fillna({"undeliverable_rate": 0.0})


def _crosstab(codes: np.ndarray, groups: int, inner: np.ndarray, width: int) -> np.ndarray:
    """Counts per (group, inner code) as a groups x width array; negative codes are skipped."""
    keep = (codes >= 0) & (inner >= 0)
    flat = np.bincount(codes[keep].astype(np.int64) * width + inner[keep], minlength=groups * width)
    return flat.reshape(groups, width)


# ---- figures --------------------------------------------------------------------------------------

def status_chart(counts: pd.DataFrame) -> go.Figure:
    """Vertical bars of `status_counts`."""
    return _column_chart(counts, f"Verification status of {_total(counts):,} rows")


def safe_to_send_chart(counts: pd.DataFrame) -> go.Figure:
    """Vertical bars of `safe_to_send_counts`."""
    return _column_chart(counts, f"Safe to send? {_total(counts):,} rows")


def source_chart(counts: pd.DataFrame) -> go.Figure:
    """Vertical bars of `source_counts`. Rows, not addresses: the credits are on the figures above."""
    return _column_chart(counts, "Where each row's verdict came from (rows)")


def reason_chart(counts: pd.DataFrame) -> go.Figure:
    """Horizontal bars of `reason_counts`, largest on top, coloured by the verification status each
    reason comes with."""
    figure = go.Figure()
    order = list(counts["label"])[::-1]  # plotly draws the first category at the bottom
    for status, part in counts.groupby("status", sort=False):
        figure.add_bar(
            y=part["label"], x=part["rows"], orientation="h", name=str(status), marker_color=_colour(status),
            text=[_count_text(n, s) for n, s in zip(part["rows"], part["share"])], textposition="outside",
            cliponaxis=False, hovertemplate="%{y}: %{x:,} rows<extra>" + str(status) + "</extra>",
            showlegend=status in co.STATUS_DTYPE.categories)
    figure.update_yaxes(categoryorder="array", categoryarray=order, automargin=True)
    _value_axis(figure, counts["rows"], horizontal=True)
    figure.update_layout(barmode="overlay", legend_title_text="Verification status")
    return _finish(figure, "Reasons, most frequent first", TALL_HEIGHT, counts.empty)


def flag_chart(shares: pd.DataFrame) -> go.Figure:
    """Horizontal bars of `flag_shares` in percent of all rows."""
    figure = go.Figure(go.Bar(
        y=shares["label"][::-1], x=shares["share"][::-1], orientation="h", marker_color=COLOURS["Flag"],
        text=[f"{s:.1f}% ({n:,})" for n, s in zip(shares["rows"][::-1], shares["share"][::-1])],
        # Inside a bar long enough to hold it, else beside it: beside a long bar it ran off the chart.
        textposition="auto", insidetextanchor="end", cliponaxis=False,
        hovertemplate="%{y}: %{x:.1f}% of rows<extra></extra>"))
    _value_axis(figure, shares["share"], horizontal=True, suffix="%")
    figure.update_yaxes(automargin=True)
    return _finish(figure, "Flagged addresses, % of all rows", SMALL_HEIGHT, not shares["rows"].any(),
                   empty_text="No flagged addresses")


def domain_chart(stats: pd.DataFrame, what: str = "domains") -> go.Figure:
    """Stacked horizontal bars of `domain_stats`: rows per outcome, undeliverable rate at the end.

    Args:
        what: the plural noun in the title ("domains", "SMTP providers").
    """
    figure = go.Figure()
    labels = stats["label"][::-1]
    for word in (merge.SAFE, merge.RISKY, merge.UNDELIVERABLE, merge.UNKNOWN):
        figure.add_bar(y=labels, x=stats[word][::-1], orientation="h", name=word, marker_color=_colour(word),
                       hovertemplate="%{y}: %{x:,} " + word.lower() + "<extra></extra>")
    figure.add_scatter(
        y=labels, x=stats["rows"][::-1], mode="text", showlegend=False, hoverinfo="skip", cliponaxis=False,
        # Short enough to fit beside the longest bar on a half-width chart; the title names the parts.
        text=[f"  {n:,} · {r:.1f}%" for n, r in zip(stats["rows"][::-1], stats["undeliverable_rate"][::-1])],
        textposition="middle right")
    figure.update_layout(barmode="stack", legend_traceorder="normal")  # plotly reverses stacked legends
    figure.update_yaxes(automargin=True)
    _value_axis(figure, stats["rows"], horizontal=True, headroom=1.8)  # room for the figures past the bars
    return _finish(figure, f"Top {len(stats)} {what}: rows · % undeliverable", TALL_HEIGHT, stats.empty)


def provider_chart(stats: pd.DataFrame) -> go.Figure:
    """`domain_chart` of `domain_stats(merged, by=SMTP_PROVIDER)`."""
    return domain_chart(stats, what="SMTP providers")


def _column_chart(counts: pd.DataFrame, title: str) -> go.Figure:
    figure = go.Figure(go.Bar(
        x=counts["label"], y=counts["rows"], marker_color=[_colour(label) for label in counts["label"]],
        text=[_count_text(n, s, "<br>") for n, s in zip(counts["rows"], counts["share"])],
        textposition="outside", cliponaxis=False, hovertemplate="%{x}: %{y:,} rows<extra></extra>"))
    _value_axis(figure, counts["rows"], horizontal=False, headroom=1.3)
    return _finish(figure, title, SMALL_HEIGHT, counts.empty)


def _finish(figure: go.Figure, title: str, height: int, empty: bool, empty_text: str = "No rows to show") -> go.Figure:
    figure.update_layout(
        title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 16}}, height=height,
        template="plotly_white", font={"size": 13}, margin={"l": 10, "r": 20, "t": 56, "b": 10},
        showlegend=len(figure.data) > 1 and not empty,
        legend={"orientation": "h", "yanchor": "top", "y": -0.08, "x": 0},
        bargap=0.25, uniformtext={"minsize": 10, "mode": "hide"})
    if empty:
        figure.add_annotation(text=empty_text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                              font={"size": 15, "color": _GREY})
        figure.update_xaxes(visible=False)
        figure.update_yaxes(visible=False)
    return figure


def _value_axis(figure: go.Figure, values: pd.Series, *, horizontal: bool, suffix: str = "",
                headroom: float = 1.35) -> None:
    """Leave room past the longest bar for its outside label; format thousands."""
    top = float(values.max()) if len(values) else 1.0
    axis = {"range": [0, max(top, 1e-9) * headroom], "ticksuffix": suffix, "tickformat": ",",
            "showgrid": True, "zeroline": False, "fixedrange": True}
    (figure.update_xaxes if horizontal else figure.update_yaxes)(**axis)
    (figure.update_yaxes if horizontal else figure.update_xaxes)(fixedrange=True)


def _count_text(rows: int, share: float, separator: str = " ") -> str:
    return f"{rows:,}{separator}({share:.1f}%)"


def _total(counts: pd.DataFrame) -> int:
    return int(counts["rows"].sum()) if len(counts) else 0


def _colour(label: object) -> str:
    return COLOURS.get(str(label), _GREY)
