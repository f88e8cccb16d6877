"""The 15 Clearout result columns, declared once: name, dtype, meaning, and where the API keeps it.

Bulk result files carry these columns (display words such as "Catch All"); instant-verify replies
carry the same facts as API tokens ("catch_all"). Everything that takes Clearout data in (a result
file, the verification cache) or hands it out (a download, a CRM upload) goes through
`conform_clearout_columns`, so a renamed or missing column fails loudly at the border.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from lib.errors import UserError

STRING = "string[pyarrow]"


@dataclass(frozen=True)
class ClearoutColumn:
    name: str
    dtype: Any  # a pandas dtype or dtype string
    meaning: str
    api_path: tuple[str, ...]  # where the instant-verify `data` object holds the same fact


def _categories(*values: str) -> pd.CategoricalDtype:
    return pd.CategoricalDtype(list(values), ordered=False)


SAFE_TO_SEND = "Clearout Safe to Send"
STATUS = "Clearout Verification Status"
REASON = "Clearout Reason"
SUGGESTED = "Clearout Suggested Email"
BOUNCE_TYPE = "Clearout Bounce Type"
DISPOSABLE = "Clearout Disposable Status"
FREE = "Clearout Free Account Status"
ROLE = "Clearout Role Account Status"
GIBBERISH = "Clearout Gibberish Status"
ACCOUNT = "Clearout Account"
DOMAIN = "Clearout Domain"
MX_RECORD = "Clearout MX Record"
SMTP_PROVIDER = "Clearout SMTP Provider"
VERIFIED_AT = "Clearout Verified At (UTC)"
TIME_TAKEN = "Clearout Time Taken (ms)"

# Our own column beside Clearout's: where a row's verdict came from.
VERDICT_SOURCE = "Clearout Verdict Source"
SOURCE_NEW, SOURCE_CACHED, SOURCE_SYNTAX, SOURCE_NO_EMAIL = (
    "Verified now", "Cached", "Syntax check", "No email")

# Status words. "No Email" never comes from Clearout: it marks rows without a usable address.
VALID, INVALID, CATCH_ALL, UNKNOWN, NO_EMAIL = "Valid", "Invalid", "Catch All", "Unknown", "No Email"
YES, RISKY, NO = "Yes", "Risky", "No"

STATUS_DTYPE = _categories(VALID, INVALID, CATCH_ALL, UNKNOWN, NO_EMAIL)
SAFE_TO_SEND_DTYPE = _categories(YES, RISKY, NO, UNKNOWN)
YES_NO_DTYPE = _categories(YES, NO)
SOURCE_DTYPE = _categories(SOURCE_NEW, SOURCE_CACHED, SOURCE_SYNTAX, SOURCE_NO_EMAIL)

CLEAROUT_COLUMNS: tuple[ClearoutColumn, ...] = (
    ClearoutColumn(SAFE_TO_SEND, SAFE_TO_SEND_DTYPE,
                   "Whether to send: Yes (<3% bounce), Risky (up to ~5%), No, Unknown", ("safe_to_send",)),
    ClearoutColumn(STATUS, STATUS_DTYPE, "Valid, Invalid, Catch All or Unknown", ("status",)),
    ClearoutColumn(REASON, STRING, "Why: the sub-status description, e.g. Mailbox not found",
                   ("sub_status", "desc")),
    ClearoutColumn(SUGGESTED, STRING, "A likely typo fix (not itself verified)",
                   ("suggested_email_address",)),
    ClearoutColumn(BOUNCE_TYPE, STRING, "Hard or Soft for invalid addresses", ("bounce_type",)),
    ClearoutColumn(DISPOSABLE, YES_NO_DTYPE, "A temporary mailbox", ("disposable",)),
    ClearoutColumn(FREE, YES_NO_DTYPE, "A free provider such as Gmail or Yahoo", ("free",)),
    ClearoutColumn(ROLE, YES_NO_DTYPE, "A function address such as support@ or sales@", ("role",)),
    ClearoutColumn(GIBBERISH, YES_NO_DTYPE, "The address looks random", ("gibberish",)),
    ClearoutColumn(ACCOUNT, STRING, "The part before the @", ("detail_info", "account")),
    ClearoutColumn(DOMAIN, STRING, "The part after the @", ("detail_info", "domain")),
    ClearoutColumn(MX_RECORD, STRING, "The domain's mail server", ("detail_info", "mx_record")),
    ClearoutColumn(SMTP_PROVIDER, STRING, "Who runs the mail server", ("detail_info", "smtp_provider")),
    ClearoutColumn(VERIFIED_AT, "datetime64[ms, UTC]", "When Clearout verified it", ("verified_on",)),
    ClearoutColumn(TIME_TAKEN, "Int64", "Verification time in milliseconds", ("time_taken",)),
)
CLEAROUT_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in CLEAROUT_COLUMNS)
CATEGORICAL_COLUMNS = (SAFE_TO_SEND, STATUS, DISPOSABLE, FREE, ROLE, GIBBERISH)
FLAG_COLUMNS = {"Disposable": DISPOSABLE, "Role": ROLE, "Free": FREE, "Gibberish": GIBBERISH}

# API tokens (instant verify JSON) -> display words (result files).
_STATUS_WORDS = {"valid": VALID, "invalid": INVALID, "catch_all": CATCH_ALL, "unknown": UNKNOWN}
_SAFE_WORDS = {"yes": YES, "risky": RISKY, "no": NO, "unknown": UNKNOWN}
_YES_NO_WORDS = {"yes": YES, "no": NO}


class ClearoutColumnsError(UserError):
    """A frame does not carry the declared Clearout columns or values."""


def _display_word(column: str, value: Any) -> Any:
    if value is None:
        return None
    token = str(value).strip().lower().replace(" ", "_")
    if column == STATUS:
        return _STATUS_WORDS.get(token, value)
    if column == SAFE_TO_SEND:
        return _SAFE_WORDS.get(token, value)
    if column in (DISPOSABLE, FREE, ROLE, GIBBERISH):
        return _YES_NO_WORDS.get(token, value)
    if column == BOUNCE_TYPE:
        return str(value).strip().capitalize()
    return value


def verdict_from_api(data: dict[str, Any]) -> dict[str, Any]:
    """One instant-verify `data` object as a row of the 15 display columns."""
    row: dict[str, Any] = {}
    for column in CLEAROUT_COLUMNS:
        value: Any = data
        for key in column.api_path:
            value = value.get(key) if isinstance(value, dict) else None
        row[column.name] = _display_word(column.name, value)
    return row


def conform_clearout_columns(frame: pd.DataFrame, *, keep: tuple[str, ...] = ()) -> pd.DataFrame:
    """Return a new frame with `keep` columns then the 15 Clearout columns in declared dtypes.

    Raises ClearoutColumnsError naming what is missing or out of range. Column names match
    case- and space-insensitively, because display names are what humans edit in spreadsheets.
    Extra columns are dropped.
    """
    lookup = {_fold(name): name for name in frame.columns}
    missing = [c.name for c in CLEAROUT_COLUMNS if _fold(c.name) not in lookup]
    missing += [name for name in keep if _fold(name) not in lookup]
    if missing:
        raise ClearoutColumnsError("Missing Clearout column(s): " + ", ".join(missing))
    out = pd.DataFrame(index=frame.index)
    for name in keep:
        out[name] = frame[lookup[_fold(name)]]
    for column in CLEAROUT_COLUMNS:
        out[column.name] = _cast(frame[lookup[_fold(column.name)]], column)
    return out


def _recode(codes: np.ndarray, words: list[str | None], dtype: pd.CategoricalDtype) -> np.ndarray:
    """Codes into `words` (per unique value) -> codes into the dtype's categories (-1 = missing)."""
    position = {c: i for i, c in enumerate(dtype.categories)}
    lookup = np.array([position.get(w, -1) if w else -1 for w in words] + [-1], dtype="int8")
    recoded: np.ndarray = lookup[codes]  # code -1 (NA) indexes the trailing -1
    return recoded


def _fold(name: str) -> str:
    return "".join(str(name).split()).lower()


def _cast(values: pd.Series, column: ClearoutColumn) -> pd.Series:
    if values.dtype == column.dtype:
        return values.copy()
    if isinstance(column.dtype, pd.CategoricalDtype):
        # Factorise first: a million rows hold a handful of distinct words.
        codes, uniques = pd.factorize(values.astype("string"), use_na_sentinel=True)
        canonical = {c.lower(): c for c in column.dtype.categories}
        words = [canonical.get(str(u).strip().lower().replace("_", " ")) for u in uniques]
        bad = [str(u) for u, w in zip(uniques, words) if w is None and str(u).strip() != ""]
        if bad:
            raise ClearoutColumnsError(f"{column.name} has unexpected values: {', '.join(sorted(bad)[:5])}")
        mapped = pd.Categorical.from_codes(
            _recode(codes, words, column.dtype), dtype=column.dtype)
        return pd.Series(mapped, index=values.index, name=values.name)
    if column.dtype == "Int64":
        numbers = pd.to_numeric(values.astype("string").str.strip().replace("", None), errors="coerce")
        return numbers.round().astype("Int64")
    if str(column.dtype).startswith("datetime64"):
        if isinstance(values.dtype, pd.DatetimeTZDtype) or str(values.dtype).startswith("datetime64"):
            stamps = values if isinstance(values.dtype, pd.DatetimeTZDtype) else values.dt.tz_localize("UTC")
            return stamps.dt.tz_convert("UTC").astype(column.dtype)
        text = values.astype("string").str.strip().replace("", None)
        return pd.to_datetime(text, utc=True, errors="coerce", format="ISO8601").astype(column.dtype)
    return values.astype(column.dtype)
