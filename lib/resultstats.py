"""Everything the Results page draws from a merged file except the preview, counted by the engine.

The frames are exactly those of the pandas reference (lib.charts' aggregations, lib.merge.key_figures,
lib.filters.filter_options), which the tests check cell for cell on the same data: a few grouped
counts come out of DuckDB, and the ordering, shares and labels are done here on those small frames.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from lib import charts, engine, merge
from lib import columns as co
from lib.filters import FilterOptions
from lib.store import Store, VerificationJob

q = engine.quote
REASON_TOP, DOMAIN_TOP, DOMAIN_OPTIONS = 12, 10, 50
OUTCOMES = tuple(merge.OUTCOME_DTYPE.categories)
_OUTCOME_SQL = (  # lib.merge.deliverability, first match wins; a NULL comparison is not a match
    f"CASE WHEN {q(co.STATUS)} = '{co.NO_EMAIL}' THEN '{merge.NO_EMAIL}' "
    f"WHEN {q(co.STATUS)} = '{co.INVALID}' OR {q(co.SAFE_TO_SEND)} = '{co.NO}' THEN '{merge.UNDELIVERABLE}' "
    f"WHEN {q(co.SAFE_TO_SEND)} = '{co.YES}' THEN '{merge.SAFE}' "
    f"WHEN {q(co.STATUS)} = '{co.CATCH_ALL}' OR {q(co.SAFE_TO_SEND)} = '{co.RISKY}' THEN '{merge.RISKY}' "
    f"ELSE '{merge.UNKNOWN}' END")


@dataclass(frozen=True)
class Summary:
    """Everything drawn from a merged list except the preview: small, cheap to cache and copy."""
    figures: merge.KeyFigures
    credits_spent: int | None
    cached: int
    syntax_invalid: int
    status: pd.DataFrame
    safe_to_send: pd.DataFrame
    reasons: pd.DataFrame
    flags: pd.DataFrame
    domains: pd.DataFrame
    providers: pd.DataFrame
    sources: pd.DataFrame
    options: FilterOptions

    @property
    def credits_saved(self) -> int:
        """Addresses that needed no credit: answered from the cache or failed the syntax check."""
        return self.cached + self.syntax_invalid


def summarise(store: Store, merged: Path, keys: Path, job: VerificationJob) -> Summary:
    """The Summary of a merged file (and its list's keys file, for the distinct addresses)."""
    source = engine.parquet(merged)
    flag_sql = ", ".join(f"count_if({q(column)} = '{co.YES}')" for column in co.FLAG_COLUMNS.values())
    with engine.connect(store.data_dir) as con:
        def frame(sql: str) -> pd.DataFrame:
            return con.execute(sql).df()

        outcome = frame(f"SELECT {_OUTCOME_SQL} AS outcome, count(*) AS n, "
                        f"count_if({q(co.REASON)} = ?) AS not_found FROM {source} GROUP BY ALL"
                        .replace("?", "'" + merge.NOT_IN_RESULT_REASON + "'"))
        unique = int(engine.one_row(con, f"SELECT count(DISTINCT key) FROM {engine.parquet(keys)}")[0])
        status = frame(f"SELECT {q(co.STATUS)} AS value, count(*) AS n FROM {source} GROUP BY ALL")
        safe = frame(f"SELECT coalesce({q(co.STATUS)} = '{co.NO_EMAIL}', false) AS no_email, "
                     f"{q(co.SAFE_TO_SEND)} AS value, count(*) AS n FROM {source} GROUP BY ALL")
        sources = frame(f"SELECT {q(co.VERDICT_SOURCE)} AS value, count(*) AS n FROM {source} GROUP BY ALL")
        reasons = frame(f"SELECT {q(co.REASON)} AS reason, {q(co.STATUS)} AS status, count(*) AS n "
                        f"FROM {source} GROUP BY ALL")
        flag_row = engine.one_row(con, f"SELECT {flag_sql} FROM {source}")
        domains = _top_labels(con, source, co.DOMAIN, DOMAIN_OPTIONS)
        providers = _top_labels(con, source, co.SMTP_PROVIDER, DOMAIN_TOP)
    total = int(outcome["n"].sum())
    per_outcome = dict(zip(outcome["outcome"], outcome["n"].astype(int)))
    figures = merge.KeyFigures(
        rows=total, unique_emails=unique, safe_to_send=per_outcome.get(merge.SAFE, 0),
        risky=per_outcome.get(merge.RISKY, 0), undeliverable=per_outcome.get(merge.UNDELIVERABLE, 0),
        unknown=per_outcome.get(merge.UNKNOWN, 0), no_email=per_outcome.get(merge.NO_EMAIL, 0),
        not_in_result=int(outcome["not_found"].sum()))
    flags = charts.with_share(pd.DataFrame({"label": list(co.FLAG_COLUMNS),
                                             "rows": np.array(flag_row, dtype=np.int64)}), total)
    status_counts = _counts(status, co.STATUS_DTYPE.categories, total)
    chart_safe = safe.assign(value=safe["value"].where(~safe["no_email"].astype(bool), co.SOURCE_NO_EMAIL))
    safe_counts = _counts(chart_safe.groupby("value", dropna=False, sort=False)["n"].sum().reset_index(),
                          charts.SAFE_LABELS.categories, total)
    present_safe = safe.groupby("value", dropna=True)["n"].sum()
    return Summary(
        figures=figures, credits_spent=job.credits_spent, cached=job.cached, syntax_invalid=job.syntax_invalid,
        status=status_counts, safe_to_send=safe_counts, reasons=_reasons(reasons, total),
        flags=flags, domains=_domain_stats(domains.head(DOMAIN_TOP), total),
        providers=_domain_stats(providers, total),
        sources=_counts(sources, co.SOURCE_DTYPE.categories, total, blank=charts.NOT_IN_RESULT),
        options=FilterOptions(
            statuses=tuple(status_counts.loc[status_counts["label"] != charts.BLANK, "label"]),
            safe_to_send=tuple(str(c) for c in co.SAFE_TO_SEND_DTYPE.categories if present_safe.get(c, 0) > 0),
            reasons=_ranked_reasons(reasons),
            flags=tuple(name for name, n in zip(co.FLAG_COLUMNS, flag_row) if n),
            domains=tuple(domains["label"])))


def _counts(grouped: pd.DataFrame, categories: pd.Index, total: int, blank: str = charts.BLANK) -> pd.DataFrame:
    """lib.charts._counts from grouped counts: declared order, empty values left out, blanks last."""
    by_value = {None if pd.isna(v) else str(v): int(n) for v, n in zip(grouped["value"], grouped["n"])}
    labels = [str(c) for c in categories if by_value.get(str(c), 0) > 0]
    rows = [by_value[label] for label in labels]
    if by_value.get(None, 0) > 0:
        labels.append(blank)
        rows.append(by_value[None])
    return charts.with_share(pd.DataFrame({"label": labels, "rows": np.array(rows, dtype=np.int64)}), total)


def _reasons(grouped: pd.DataFrame, total: int) -> pd.DataFrame:
    """lib.charts.reason_counts from (reason, status, n): top reasons, each with its most frequent status."""
    present = grouped[grouped["reason"].notna()]
    statuses = list(co.STATUS_DTYPE.categories)
    per_reason: dict[str, list[int]] = {}
    for reason, status, n in zip(present["reason"], present["status"], present["n"]):
        counts = per_reason.setdefault(str(reason), [0] * len(statuses))
        if not pd.isna(status) and status in statuses:
            counts[statuses.index(status)] += int(n)
    order = sorted(per_reason, key=lambda r: (-sum(per_reason[r]), r))
    shown, rest = order[:REASON_TOP], order[REASON_TOP:]
    frame = pd.DataFrame({
        "label": shown, "rows": np.array([sum(per_reason[r]) for r in shown], dtype=np.int64),
        "status": [statuses[int(np.argmax(per_reason[r]))] for r in shown]})
    blank = int(grouped.loc[grouped["reason"].isna(), "n"].sum())
    extra = [(charts.OTHER_REASONS, sum(sum(per_reason[r]) for r in rest)), (charts.BLANK, blank)]
    frame = pd.concat([frame, pd.DataFrame([{"label": label, "rows": n, "status": label}
                                            for label, n in extra if n])], ignore_index=True)
    return charts.with_share(frame.astype({"rows": np.int64}), total)


def _ranked_reasons(grouped: pd.DataFrame) -> tuple[str, ...]:
    """Every reason by rows (blank left out), ties by name: lib.filters.filter_options."""
    present = grouped[grouped["reason"].notna()]
    rows = present.groupby("reason", sort=False)["n"].sum()
    return tuple(sorted((str(r) for r in rows.index), key=lambda r: (-int(rows[r]), r)))


def _top_labels(con: duckdb.DuckDBPyConnection, source: str, column: str, top: int) -> pd.DataFrame:
    """The `top` lower-cased values of `column` by rows (ties by name), with rows per outcome."""
    per_outcome = ", ".join(f"count_if(outcome = '{word}') AS {q(word)}" for word in OUTCOMES if word != merge.NO_EMAIL)
    sql = (f"SELECT label, count(*) AS rows, {per_outcome} FROM (SELECT lower({q(column)}) AS label, "
           f"{_OUTCOME_SQL} AS outcome FROM {source} WHERE {q(column)} IS NOT NULL) GROUP BY label "
           f"ORDER BY rows DESC, label LIMIT {int(top)}")
    return con.execute(sql).df()


def _domain_stats(top: pd.DataFrame, total: int) -> pd.DataFrame:
    """lib.charts.domain_stats from the grouped top labels."""
    frame = charts.with_share(pd.DataFrame({"label": top["label"].astype(str).tolist(),
                                             "rows": top["rows"].to_numpy(dtype=np.int64)}), total)
    for word in OUTCOMES:
        if word != merge.NO_EMAIL:
            frame[word] = top[word].to_numpy(dtype=np.int64)
    frame["undeliverable_rate"] = 100.0 * frame[merge.UNDELIVERABLE] / frame["rows"].where(frame["rows"] > 0)
    return frame.fillna({"undeliverable_rate": 0.0})
