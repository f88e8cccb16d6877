"""The one funnel of a list, defined once: where its rows go from the list to CleverTap, in the words
every page uses (Home, Lists, Verify, Results, Export, History), with what each word means.

Rows and addresses are different things and every figure says which it counts:

* **rows** of the list: *with an address* (not blank), *well-formed* (passing the syntax check);
* **distinct addresses** (trimmed, lower-cased, well-formed or not): each gets one verdict, from the
  *cache* (free), the *syntax check* (free, Invalid) or *bought* from Clearout (a credit each,
  Unknown free), so `distinct = syntax errors + from the cache + bought`;
* **profiles** in CleverTap: an export changes each once, however many rows name it.
"""
from __future__ import annotations

from dataclasses import dataclass

import plotly.graph_objects as go

from lib.export.plan import METHOD_SUBSCRIBE, PlanSummary
from lib.figures import Metric, plural
from lib.merge import KeyFigures
from lib.store import ListRecord

TERMS: dict[str, str] = {
    "Rows": "Every row of the list, blank or not.",
    "With an address": "Rows whose email cell is not empty.",
    "Well-formed": "Rows whose address passes the syntax check (one @, a domain with a dot, no spaces). "
                   "Whether it can receive mail is Clearout's verdict.",
    "Distinct addresses": "Different addresses after trimming spaces and lower-casing, well-formed or not: "
                          "each gets one verdict. = syntax errors + from the cache + bought.",
    "Syntax errors": "Distinct addresses that fail the syntax check: Invalid without asking Clearout, free.",
    "From the cache": "Distinct well-formed addresses with a recent verdict (VERIFY_CACHE_DAYS) that was not "
                      "Unknown: reused, free.",
    "To buy": "Distinct well-formed addresses sent to Clearout: a credit each at most (Unknown results are "
              "free).",
    "Undeliverable": "Rows whose verdict is Invalid or Safe to send = No (syntax errors included): mail bounces.",
    "Matching your rules": "Rows whose verdict one of the chosen unsubscribe rules takes (Invalid always; soft "
                           "bounces, disposable, catch-all, unknown only when ticked).",
    "With a profile key": "…of them, rows naming a CleverTap profile (identity or objectId; a valid address for "
                          "a list of addresses only).",
    "Distinct profiles": "…each profile once, however many rows name it.",
    "To unsubscribe": "…less the profiles that were unsubscribed already: what the export sets to "
                      "unsubscribed (MSG-email false).",
}


@dataclass(frozen=True)
class Stage:
    """One step of the funnel: how many of what."""
    label: str
    count: int
    unit: str  # rows | addresses | profiles

    @property
    def help(self) -> str:
        return TERMS.get(self.label, "")

    @property
    def text(self) -> str:
        """`1 row`, `2 rows`, `1 address`…"""
        return counted(self.count, self.unit)

    def metric(self, note: str = "") -> Metric:
        return Metric(self.label, f"{self.count:,}", note or self.unit, self.help)


_ONE = {"rows": "row", "addresses": "address", "profiles": "profile"}


def counted(count: int, unit: str) -> str:
    return plural(count, _ONE.get(unit, unit), unit)


def export_unit(method: str) -> str:
    """What an export (or its undo) changes once each, by its method: profiles, or addresses for a list of
    addresses only (the Subscribe API)."""
    return "addresses" if method == METHOD_SUBSCRIBE else "profiles"


def distinct_addresses(record: ListRecord) -> int:
    """A list's distinct addresses, well-formed or not (lists made before the count: the well-formed ones)."""
    return record.distinct_addresses if record.distinct_addresses is not None else record.unique_emails


def list_stages(record: ListRecord) -> list[Stage]:
    """Rows → with an address → well-formed → distinct addresses (Lists)."""
    return [Stage("Rows", record.rows, "rows"), Stage("With an address", record.rows - record.missing_emails, "rows"),
            Stage("Well-formed", record.valid_emails, "rows"),
            Stage("Distinct addresses", distinct_addresses(record), "addresses")]


def syntax_errors(record: ListRecord) -> int:
    """Distinct addresses of a list failing the syntax check."""
    return max(0, distinct_addresses(record) - record.unique_emails)


def verdict_stages(distinct: int, syntax: int, cached: int, bought: int, *, done: bool) -> list[Stage]:
    """Distinct addresses = syntax errors + from the cache + to buy (bought, once done): Verify, Results."""
    return [Stage("Distinct addresses", distinct, "addresses"), Stage("Syntax errors", syntax, "addresses"),
            Stage("From the cache", cached, "addresses"), Stage("Bought" if done else "To buy", bought, "addresses")]


def row_stages(figures: KeyFigures, syntax_rows: int) -> list[Stage]:
    """Where a verified list's rows went: Results' funnel, row by row."""
    with_address = figures.rows - figures.no_email
    return [Stage("Rows", figures.rows, "rows"), Stage("With an address", with_address, "rows"),
            Stage("Well-formed", with_address - syntax_rows, "rows"),
            Stage("Not undeliverable", figures.rows - figures.no_email - figures.undeliverable, "rows"),
            Stage("Safe to send", figures.safe_to_send, "rows")]


def export_stages(summary: PlanSummary, unit: str = "profiles") -> list[Stage]:
    """From the rows the chosen rules take to the profiles (or addresses) unsubscribed: the dry run's funnel."""
    return [Stage("Matching your rules", summary.matched_rows, "rows"),
            Stage("With a profile key", summary.matched_with_key, "rows"),
            Stage("Distinct profiles", summary.to_unsubscribe + summary.already_unsubscribed, unit),
            Stage("To unsubscribe", summary.to_unsubscribe, unit)]


def export_reconciliation(summary: PlanSummary, unit: str = "profiles") -> str:
    """How Results' undeliverable rows become the profiles (or addresses) to unsubscribe, in one sentence
    of figures."""
    outside = summary.undeliverable_rows - summary.undeliverable_matched
    extra = summary.matched_rows - summary.undeliverable_matched
    parts = [f"{plural(summary.undeliverable_rows, 'undeliverable row')} (as on Results)"]
    if outside:
        parts.append(f"− {outside:,} your rules leave alone (Safe to send = No without Invalid, or soft bounces "
                     "not ticked)")
    if extra:
        parts.append(f"+ {counted(extra, 'rows')} of the extra rules you ticked")
    parts.append(f"= {counted(summary.matched_rows, 'rows')} matching your rules")
    no_key = summary.matched_rows - summary.matched_with_key
    if no_key:
        parts.append(f"− {no_key:,} without a profile key")
    repeats = summary.matched_with_key - summary.to_unsubscribe - summary.already_unsubscribed
    if repeats:
        parts.append(f"− {repeats:,} repeating a profile")
    if summary.already_unsubscribed:
        parts.append(f"− {summary.already_unsubscribed:,} already unsubscribed")
    parts.append(f"= **{counted(summary.to_unsubscribe, unit)} to unsubscribe**")
    return " ".join(parts)


def figure(stages: list[Stage], title: str) -> go.Figure:
    """A funnel chart of `stages`, each bar saying what it counts."""
    shown = go.Figure(go.Funnel(
        y=[stage.label for stage in stages], x=[stage.count for stage in stages],
        text=[stage.text for stage in stages], textinfo="text",
        hovertext=[stage.help for stage in stages], hoverinfo="text", marker={"color": "#0072B2"},
        connector={"line": {"color": "#C8C8C8"}}))
    shown.update_layout(title={"text": title, "x": 0, "xanchor": "left", "font": {"size": 16}},
                        height=60 + 56 * len(stages), template="plotly_white", font={"size": 13},
                        margin={"l": 10, "r": 20, "t": 48, "b": 10})
    shown.update_yaxes(automargin=True, fixedrange=True)
    shown.update_xaxes(fixedrange=True)
    return shown


def glossary() -> list[tuple[str, str]]:
    """Every word of the funnel and what it means, in funnel order."""
    return list(TERMS.items())
