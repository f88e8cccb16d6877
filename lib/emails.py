"""Email normalisation and the local syntax check: one definition used everywhere."""
from __future__ import annotations

import re

import pandas as pd

# Deliberately permissive on the local part (RFC 5322 allows a lot, and Clearout is the judge of
# deliverability); strict on the shape: one @, a dotted domain with a 2+ letter TLD, no spaces.
# An address failing this cannot be delivered, so it is marked invalid without spending a credit.
SYNTAX = r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
_SYNTAX_RE = re.compile(SYNTAX)
MAX_LENGTH = 254  # RFC 5321 path limit


def normalise_email(value: object) -> str | None:
    """The cache and join key of one address: stripped, whole address lower-cased; None if empty."""
    if value is None or (isinstance(value, float) and value != value):
        return None
    text = str(value).strip().lower()
    return text or None


def normalise_emails(values: pd.Series) -> pd.Series:
    """Vectorised `normalise_email`: an Arrow-backed string Series, <NA> where there is no address."""
    text = values.astype("string[pyarrow]").str.strip().str.lower()
    return text.mask(text == "")


def is_valid_syntax(normalised: str | None) -> bool:
    """True when a normalised address has the shape of a deliverable address."""
    return normalised is not None and 0 < len(normalised) <= MAX_LENGTH and bool(_SYNTAX_RE.match(normalised))


def valid_syntax_mask(normalised: pd.Series) -> pd.Series:
    """Vectorised `is_valid_syntax` over the output of `normalise_emails` (NA counts as invalid)."""
    text = normalised.astype("string[pyarrow]")
    ok = text.str.match(SYNTAX) & (text.str.len() <= MAX_LENGTH)
    return ok.fillna(False).astype(bool)
