"""A finished job's verdicts file: one row per distinct address of its list, whatever its source
(bought now, reused from the cache, or failed the syntax check); and what a result cost."""
from __future__ import annotations

import os

import pandas as pd

from lib import columns as C
from lib.emails import valid_syntax_mask
from lib.store import Store, VerificationJob
from lib.verification.plan import UPLOAD_FILE, list_addresses, member_mask, read_upload_file

SYNTAX_REASON = "Syntax error"

MISSING_REASON = "Not in the Clearout result"


def _fixed_verdicts(emails: pd.Series, *, status: str, safe_to_send: str, reason: str) -> pd.DataFrame:
    """The same verdict for every address, with nothing else known about them."""
    n = len(emails)
    frame = pd.DataFrame({"email": emails.astype("string[pyarrow]").reset_index(drop=True)})
    for name in C.CLEAROUT_COLUMN_NAMES:
        frame[name] = pd.Series([None] * n, dtype="object")
    frame[C.STATUS], frame[C.SAFE_TO_SEND], frame[C.REASON] = status, safe_to_send, reason
    return C.conform_clearout_columns(frame, keep=("email",))


def syntax_verdicts(emails: pd.Series) -> pd.DataFrame:
    """Verdicts for addresses that fail the syntax check: Invalid, not safe, "Syntax error"."""
    return _fixed_verdicts(emails, status=C.INVALID, safe_to_send=C.NO, reason=SYNTAX_REASON)


def _unknown_verdicts(emails: pd.Series, reason: str) -> pd.DataFrame:
    return _fixed_verdicts(emails, status=C.UNKNOWN, safe_to_send=C.UNKNOWN, reason=reason)

# Clearout's documented test addresses (`<x>@example.com`) answer fixed verdicts for free.
FREE_TEST_ADDRESSES = frozenset(f"{x}@example.com" for x in (
    "valid", "invalid", "catch_all", "unknown", "safe_to_send_yes", "safe_to_send_no", "safe_to_send_risky",
    "disposable", "role", "free", "gibberish", "hard_bounce", "soft_bounce", "suggested_email_address",
    "syntax_error", "greylisted", "spamtrap", "blocklist_email_address", "allowlist_email_address",
    "blocklist_domain", "allowlist_domain", "domain_not_found", "not_a_mailserver", "mailbox_not_found",
    "mailbox_quota_exceeded", "dns_query_timeout", "unroutable_mailserver", "overquota_and_inactive",
    "receiving_limit_reached"))


def credits_spent(new_verdicts: pd.DataFrame) -> int:
    """Credits a result cost: one per address, except Unknown results and Clearout's test addresses."""
    charged = (new_verdicts[C.STATUS] != C.UNKNOWN).fillna(True).to_numpy()
    free = member_mask(new_verdicts["email"], sorted(FREE_TEST_ADDRESSES)).to_numpy()
    return int((charged & ~free).sum())


def write_job_verdicts(store: Store, job: VerificationJob, new_verdicts: pd.DataFrame | None) -> int:
    """Write the verdicts file of a finished job: one row per distinct address of its list.

    New verdicts (the addresses uploaded), cached ones for the rest of the valid addresses, and
    syntax failures; an uploaded address missing from the result is Unknown. Returns the row count.
    """
    addresses = list_addresses(store, store.list_record(job.list_id))
    valid = valid_syntax_mask(addresses).to_numpy()
    candidates = addresses[valid].reset_index(drop=True)
    uploaded = read_upload_file(store.job_dir(job.id) / UPLOAD_FILE)
    uploaded_mask = member_mask(candidates, uploaded).to_numpy()
    parts = []
    if new_verdicts is not None and len(uploaded):
        new = C.conform_clearout_columns(new_verdicts, keep=("email",))
        new = new[member_mask(new["email"], uploaded).to_numpy()]
        missing = uploaded[~member_mask(uploaded, new["email"]).to_numpy()]
        parts += [_sourced(new, C.SOURCE_NEW), _sourced(_unknown_verdicts(missing, MISSING_REASON), C.SOURCE_NEW)]
    cached_emails = candidates[~uploaded_mask]
    if len(cached_emails):
        cached = store.cached_verdicts(cached_emails).drop(columns="verified_on")
        gone = cached_emails[~member_mask(cached_emails, cached["email"]).to_numpy()]
        parts += [_sourced(cached, C.SOURCE_CACHED),
                  _sourced(_unknown_verdicts(gone, MISSING_REASON), C.SOURCE_CACHED)]
    parts.append(_sourced(syntax_verdicts(addresses[~valid]), C.SOURCE_SYNTAX))
    verdicts = pd.concat(parts, ignore_index=True)
    path = store.job_verdicts_path(job.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    verdicts.to_parquet(partial, index=False)
    os.replace(partial, path)
    return len(verdicts)


def _sourced(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    out = C.conform_clearout_columns(frame, keep=("email",))
    out["email"] = out["email"].astype("string[pyarrow]")
    out[C.VERDICT_SOURCE] = pd.Categorical([source] * len(out), dtype=C.SOURCE_DTYPE)
    return out
