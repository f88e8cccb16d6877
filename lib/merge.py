"""A list's original rows with the Clearout columns appended, and the figures the Results page shows.

Rows are joined to verdicts on the normalised address (lib.emails), so "A@x.com " and "a@x.com" share
one verdict. Every row comes out with a verdict, even when it has none from Clearout:

* no usable address (missing, empty or blank): status "No Email", safe to send "Unknown",
  reason "No email address", source "No email"; nothing was sent to Clearout for it.
* an address the verdicts do not hold (a result file that lost rows): status "Unknown", safe to send
  "Unknown", reason "Not in the verification result", source <NA>, so it is counted and visible
  instead of silently blank. It should not happen; `KeyFigures.not_in_result` lets the page warn.

The join is one Arrow dictionary encoding of the keys plus one `take` per column: about 0.5 s for a
1,000,000-row list (0.9 s on a process's first call), where `DataFrame.merge` takes 2 s or more
(`python -m bench merge`).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lib import columns as co
from lib.errors import UserError
from lib.emails import normalise_emails

EMAIL_KEY = "email"  # the verdicts' key column: normalised addresses, one row each
VERDICT_COLUMNS: tuple[str, ...] = (*co.CLEAROUT_COLUMN_NAMES, co.VERDICT_SOURCE)
NO_EMAIL_REASON = "No email address"
NOT_IN_RESULT_REASON = "Not in the verification result"
_DECLARED_DTYPES = {c.name: c.dtype for c in co.CLEAROUT_COLUMNS} | {co.VERDICT_SOURCE: co.SOURCE_DTYPE}

# One deliverability outcome per row, so the headline figures add up to the row count.
SAFE, RISKY, UNDELIVERABLE, UNKNOWN, NO_EMAIL = "Safe to send", "Risky", "Undeliverable", "Unknown", "No email"
OUTCOME_DTYPE = pd.CategoricalDtype([SAFE, RISKY, UNDELIVERABLE, UNKNOWN, NO_EMAIL])


class MergeError(UserError):
    """The rows or the verdicts cannot be joined as given (no such column, duplicate or blank keys)."""


def append_verdicts(rows: pd.DataFrame, email_column: str, verdicts: pd.DataFrame) -> pd.DataFrame:
    """Return `rows` (columns, order and index kept) with the 15 Clearout columns and the verdict source.

    Args:
        rows: the list's original columns.
        email_column: the column of `rows` holding the address.
        verdicts: `email` (normalised, unique) plus the declared Clearout columns and VERDICT_SOURCE;
            extra columns are ignored.

    Original columns named like a Clearout column (a list that is itself an old result file) are
    replaced by the fresh verdict, so the output never holds two columns of the same name.

    Raises:
        MergeError: `email_column` is not in `rows`, or verdict keys are blank or duplicated.
        lib.columns.ClearoutColumnsError: a declared column is missing or holds unexpected values.
    """
    if email_column not in rows.columns:
        raise MergeError(f"The list has no column {email_column!r} to join on.")
    table = _declared_verdicts(verdicts)
    take = _positions(normalise_emails(rows[email_column]), normalise_emails(table[EMAIL_KEY]))
    source = pd.concat([table[list(VERDICT_COLUMNS)], _fillers()], ignore_index=True)

    folded = {_fold(name) for name in VERDICT_COLUMNS}
    stale = [name for name in rows.columns if _fold(name) in folded]
    out = rows.drop(columns=stale) if stale else rows.copy(deep=False)
    for name in VERDICT_COLUMNS:
        out[name] = source[name].array.take(take)
    return out


def _positions(key: pd.Series, verdict_key: pd.Series) -> np.ndarray:
    """For each row key, its verdict's position; len(verdicts) if the key is NA, len(verdicts) + 1 if absent.

    One dictionary encoding over verdict keys then row keys: codes are given in order of first
    appearance, so verdict keys are unique exactly when they are coded 0..n-1, and a row's code below
    n is its verdict's position. One hash pass instead of a uniqueness check plus a lookup.
    """
    count = len(verdict_key)
    if verdict_key.isna().any():
        raise MergeError(f"{int(verdict_key.isna().sum()):,} verdict(s) have no email address.")
    encoded = pa.chunked_array(_arrow(verdict_key).chunks + _arrow(key).chunks).dictionary_encode()
    codes = np.concatenate([pc.fill_null(chunk.indices, -1).to_numpy() for chunk in encoded.chunks]
                           or [np.empty(0, np.int32)]).astype(np.intp)
    verdict_codes, row_codes = codes[:count], codes[count:]
    if not np.array_equal(verdict_codes, np.arange(count)):
        # Two verdicts for one address would silently pick one: fail like merge(validate="many_to_one").
        duplicates = count - len(np.unique(verdict_codes))
        raise MergeError(f"{duplicates:,} address(es) have more than one verdict.")
    return np.where(row_codes < 0, count, np.where(row_codes < count, row_codes, count + 1))


def _declared_verdicts(verdicts: pd.DataFrame) -> pd.DataFrame:
    """The key plus the declared columns in declared dtypes; cheap when they already are (the usual case)."""
    if EMAIL_KEY in verdicts.columns and all(
            name in verdicts.columns and verdicts[name].dtype == dtype for name, dtype in _DECLARED_DTYPES.items()):
        return verdicts[[EMAIL_KEY, *VERDICT_COLUMNS]]
    table = co.conform_clearout_columns(verdicts, keep=(EMAIL_KEY, co.VERDICT_SOURCE))
    table[co.VERDICT_SOURCE] = _source_words(table[co.VERDICT_SOURCE])
    return table


def _source_words(values: pd.Series) -> pd.Series:
    if values.dtype == co.SOURCE_DTYPE:
        return values
    words = values.astype("string").str.strip()
    canonical = {c.lower(): c for c in co.SOURCE_DTYPE.categories}
    mapped = words.str.lower().map(canonical.get, na_action="ignore")
    bad = words[mapped.isna() & words.notna() & (words != "")]
    if len(bad):
        raise co.ClearoutColumnsError(
            f"{co.VERDICT_SOURCE} has unexpected values: {', '.join(sorted(set(bad.head(5))))}")
    return mapped.astype(co.SOURCE_DTYPE)


def _fillers() -> pd.DataFrame:
    """The verdict rows for "no address" and "not in the result", in the declared dtypes."""
    filler = pd.DataFrame({name: [None, None] for name in VERDICT_COLUMNS})
    filler[co.STATUS] = [co.NO_EMAIL, co.UNKNOWN]
    filler[co.SAFE_TO_SEND] = [co.UNKNOWN, co.UNKNOWN]
    filler[co.REASON] = [NO_EMAIL_REASON, NOT_IN_RESULT_REASON]
    filler[co.VERDICT_SOURCE] = [co.SOURCE_NO_EMAIL, None]
    return filler.astype(_DECLARED_DTYPES)


def _arrow(values: pd.Series) -> pa.ChunkedArray:
    """The Arrow data behind a `normalise_emails` result (zero-copy)."""
    array = pa.array(values.array)
    return array if isinstance(array, pa.ChunkedArray) else pa.chunked_array([array])


def _fold(name: object) -> str:
    return "".join(str(name).split()).lower()


# ---- figures for the page -------------------------------------------------------------------------

@dataclass(frozen=True)
class KeyFigures:
    """Headline counts of a merged list. The five outcomes partition `rows`.

    Credits spent and saved come from the job record, not from here.
    """
    rows: int
    unique_emails: int  # distinct normalised addresses, syntax failures included (= verdicts needed)
    safe_to_send: int
    risky: int
    undeliverable: int
    unknown: int
    no_email: int
    not_in_result: int  # part of `unknown`: rows the verification result did not cover

    def share(self, count: int) -> float:
        """`count` as a percentage of all rows (0.0 for an empty list)."""
        return 100.0 * count / self.rows if self.rows else 0.0


def deliverability(merged: pd.DataFrame) -> pd.Series:
    """One outcome per row (OUTCOME_DTYPE), first match wins:

    No email (status No Email); Undeliverable (status Invalid or safe to send No); Safe to send
    (safe to send Yes); Risky (status Catch All or safe to send Risky); Unknown (everything else,
    including blank verdicts).
    """
    status, safe = merged[co.STATUS], merged[co.SAFE_TO_SEND]
    codes = np.select(
        [(status == co.NO_EMAIL).to_numpy(),
         ((status == co.INVALID) | (safe == co.NO)).to_numpy(),
         (safe == co.YES).to_numpy(),
         ((status == co.CATCH_ALL) | (safe == co.RISKY)).to_numpy()],
        [4, 2, 0, 1], 3).astype(np.int8)
    return pd.Series(pd.Categorical.from_codes(codes, dtype=OUTCOME_DTYPE), index=merged.index, name="Outcome")


def key_figures(merged: pd.DataFrame, email_column: str) -> KeyFigures:
    """The headline counts of `append_verdicts` output."""
    counts = deliverability(merged).value_counts()
    return KeyFigures(
        rows=len(merged),
        unique_emails=int(normalise_emails(merged[email_column]).nunique()),
        safe_to_send=int(counts[SAFE]), risky=int(counts[RISKY]), undeliverable=int(counts[UNDELIVERABLE]),
        unknown=int(counts[UNKNOWN]), no_email=int(counts[NO_EMAIL]),
        not_in_result=int((merged[co.REASON] == NOT_IN_RESULT_REASON).sum()),
    )
