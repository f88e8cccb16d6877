"""The Results filters: which rows of a verified list match what the user picked, and what to offer."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from lib import columns as co


def filter_rows(merged: pd.DataFrame, *, statuses: tuple[str, ...] | list[str] = (),
                safe_to_send: tuple[str, ...] | list[str] = (), reasons: tuple[str, ...] | list[str] = (),
                flags: tuple[str, ...] | list[str] = (), domains: tuple[str, ...] | list[str] = ()) -> pd.DataFrame:
    """The rows matching every given filter; within one filter any value matches. Empty filters match all.

    Args:
        statuses / safe_to_send: display words ("Catch All", "Risky").
        reasons: Clearout Reason values.
        flags: names from lib.columns.FLAG_COLUMNS ("Disposable", "Role", ...): rows with that flag Yes.
        domains: Clearout Domain values (compared lower-cased).

    Raises:
        ValueError: a status, safe-to-send word or flag name that does not exist (a typo, not "no rows").
    """
    check_selection(Selection(statuses=tuple(statuses), safe_to_send=tuple(safe_to_send), flags=tuple(flags)))
    keep = np.ones(len(merged), dtype=bool)
    if statuses:
        keep &= merged[co.STATUS].isin(statuses).to_numpy()
    if safe_to_send:
        keep &= merged[co.SAFE_TO_SEND].isin(safe_to_send).to_numpy()
    if reasons:
        keep &= merged[co.REASON].isin(reasons).fillna(False).to_numpy(dtype=bool)
    if flags:
        flagged = np.zeros(len(merged), dtype=bool)
        for name in flags:
            flagged |= (merged[co.FLAG_COLUMNS[name]] == co.YES).to_numpy()
        keep &= flagged
    if domains:
        wanted = [str(d).strip().lower() for d in domains]
        keep &= merged[co.DOMAIN].str.lower().isin(wanted).fillna(False).to_numpy(dtype=bool)
    return merged[keep]


def check_selection(selection: Selection) -> None:
    """Raise ValueError for a status, safe-to-send word or flag name that does not exist (a typo, not
    "no rows")."""
    _check_words(selection.statuses, co.STATUS_DTYPE, "status")
    _check_words(selection.safe_to_send, co.SAFE_TO_SEND_DTYPE, "safe-to-send value")
    unknown_flags = sorted(set(selection.flags) - set(co.FLAG_COLUMNS))
    if unknown_flags:
        raise ValueError(f"Unknown flag(s): {', '.join(unknown_flags)}; choose from {', '.join(co.FLAG_COLUMNS)}.")


def _check_words(values: tuple[str, ...] | list[str], dtype: pd.CategoricalDtype, what: str) -> None:
    unknown = sorted(set(values) - set(dtype.categories))
    if unknown:
        raise ValueError(f"Unknown {what}(s): {', '.join(unknown)}; choose from {', '.join(dtype.categories)}.")


@dataclass(frozen=True)
class FilterOptions:
    """What each Results filter can offer: values present in the list, most frequent first where ranked."""
    statuses: tuple[str, ...]  # declared order
    safe_to_send: tuple[str, ...]  # declared order
    reasons: tuple[str, ...]  # by row count
    flags: tuple[str, ...]  # flag names with at least one Yes, declared order
    domains: tuple[str, ...]  # the `top_domains` largest by row count


def filter_options(merged: pd.DataFrame, top_domains: int = 50) -> FilterOptions:
    """The values worth offering in each filter of `filter_rows`."""
    def present(column: str) -> tuple[str, ...]:
        counts = merged[column].value_counts(sort=False)
        return tuple(str(word) for word, n in counts.items() if n > 0)

    def ranked(values: pd.Series, top: int | None = None) -> tuple[str, ...]:
        counts = values.value_counts()  # NA dropped: a blank is not something to filter for
        # Ties by name, so the options do not shuffle between reruns.
        counts = counts.sort_index().sort_values(ascending=False, kind="stable")
        return tuple(str(word) for word in counts.index[:top])

    return FilterOptions(
        statuses=present(co.STATUS), safe_to_send=present(co.SAFE_TO_SEND), reasons=ranked(merged[co.REASON]),
        flags=tuple(name for name, column in co.FLAG_COLUMNS.items() if (merged[column] == co.YES).any()),
        domains=ranked(merged[co.DOMAIN].str.lower(), top_domains),  # filter_rows compares lower-cased
    )


@dataclass(frozen=True)
class Selection:
    """The preview filters; within one filter any value matches, across filters all must."""
    statuses: tuple[str, ...] = ()
    safe_to_send: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    flags: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return any((self.statuses, self.safe_to_send, self.reasons, self.flags, self.domains))


def select(merged: pd.DataFrame, selection: Selection) -> pd.DataFrame:
    """The rows matching `selection`; `merged` itself (no copy) when no filter is set."""
    if not selection.active:
        return merged
    return filter_rows(merged, statuses=selection.statuses, safe_to_send=selection.safe_to_send,
                             reasons=selection.reasons, flags=selection.flags, domains=selection.domains)
