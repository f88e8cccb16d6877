"""Test helpers for exports: verified lists written straight to the store, from sandbox profiles.

A verified list here is what Lists + Verify leave behind (docs/architecture.md, data contracts):
the list's Parquet, a 'ready' record with its stats, a 'done' job and its verdicts Parquet. The
profiles are read from the sandbox over HTTP, so identities and addresses exist there.
"""
from __future__ import annotations

import json
from datetime import date, timedelta
from collections.abc import Callable, Sequence

import pandas as pd

from lib import columns as C
from lib.clevertap import CleverTapClient
from lib.export.plan import STAMP_PROPERTY
from lib.emails import normalise_emails, valid_syntax_mask
from lib.store import Connection, ListRecord, Store

SAFE = {C.VALID: C.YES, C.INVALID: C.NO, C.CATCH_ALL: C.RISKY, C.UNKNOWN: C.UNKNOWN}


def client_for(sb, **kwargs) -> CleverTapClient:
    return CleverTapClient(sb.account_id, sb.passcode, sb.region, base_url=sb.clevertap_base_template, **kwargs)


def connect(store: Store, sb, name: str = "Sandbox project") -> Connection:
    return store.add_connection(name=name, account_id=sb.account_id, region=sb.region.upper(),
                                mode="sandbox", passcode_storage="memory")


def pull(sb, count: int) -> pd.DataFrame:
    """The first `count` sandbox profiles with an address, audience-shaped, read over HTTP."""
    today = date.today()
    rows: list[dict] = []
    with client_for(sb) as client:
        for page in client.iter_profiles("App Launched", today - timedelta(days=89), today, batch_size=230):
            for record in page:
                data = record.get("profileData") or {}
                platforms = record.get("platformInfo") or [{}]
                if not data.get("Email"):
                    continue
                rows.append({"identity": record.get("identity"), "objectId": platforms[0].get("objectId"),
                             "email": data["Email"], "name": data.get("Name"), "MSG-email": data.get("MSG-email")})
                if len(rows) == count:
                    break
            if len(rows) == count:
                break
    frame = pd.DataFrame(rows)
    for column in ("identity", "objectId", "email", "name"):
        frame[column] = frame[column].astype("string[pyarrow]")
    frame["MSG-email"] = frame["MSG-email"].astype("boolean")
    return frame


def verdicts_for(emails: Sequence[str], statuses: Sequence[str], *, disposable: Sequence[bool] | None = None
                 ) -> pd.DataFrame:
    """Verdicts (`email` normalised and unique + 15 columns + source) with one status per address."""
    frame = pd.DataFrame({"email": list(emails), "status": list(statuses),
                          "disposable": list(disposable) if disposable is not None else [False] * len(emails)})
    frame["email"] = normalise_emails(frame["email"])
    frame = frame.drop_duplicates("email")
    n = len(frame)
    out = pd.DataFrame({"email": frame["email"].to_numpy()})
    for name in C.CLEAROUT_COLUMN_NAMES:
        out[name] = [None] * n
    out[C.STATUS] = frame["status"].to_numpy()
    out[C.SAFE_TO_SEND] = [SAFE[s] for s in frame["status"]]
    out[C.REASON] = ["Mailbox not found" if s == C.INVALID else f"{s} reason" for s in frame["status"]]
    out[C.DISPOSABLE] = [C.YES if d else C.NO for d in frame["disposable"]]
    out[C.DOMAIN] = [e.split("@")[-1] for e in frame["email"]]
    out[C.VERIFIED_AT] = "2025-03-04T05:06:07Z"
    out[C.TIME_TAKEN] = 120
    out = C.conform_clearout_columns(out, keep=("email",))
    out[C.VERDICT_SOURCE] = pd.Categorical([C.SOURCE_NEW] * n, dtype=C.SOURCE_DTYPE)
    return out


def make_verified_list(store: Store, rows: pd.DataFrame, statuses: Sequence[str] | Callable[[int], str], *,
                       name: str = "Audience", email_column: str = "email", audience: bool = True,
                       disposable: Sequence[bool] | None = None) -> ListRecord:
    """A ready list of `rows` with a done verification job whose verdicts give row i `statuses[i]`."""
    if callable(statuses):
        statuses = [statuses(i) for i in range(len(rows))]
    record = store.create_list(name=name, mode="sandbox", source_kind="audience" if audience else "csv",
                               source=name, state="ready")
    path = store.list_path(record.id)
    path.parent.mkdir(parents=True, exist_ok=True)
    rows.to_parquet(path, index=False)
    normalised = normalise_emails(rows[email_column])
    valid = valid_syntax_mask(normalised)
    unique = int(normalised[valid].nunique())
    columns = {"email_column": email_column}
    if audience:
        columns.update(identity_column="identity", object_id_column="objectId", msg_email_column="MSG-email")
    record = store.update_list(record.id, rows=len(rows), valid_emails=int(valid.sum()), unique_emails=unique,
                               duplicates=int(valid.sum()) - unique, missing_emails=int(normalised.isna().sum()),
                               **columns)
    present = normalised.notna().to_numpy()
    verdicts = verdicts_for(normalised[present].tolist(), [s for s, p in zip(statuses, present) if p],
                            disposable=None if disposable is None else [d for d, p in zip(disposable, present) if p])
    job = store.create_job(list_id=record.id, unique_emails=len(verdicts), cached=0, syntax_invalid=0,
                           to_verify=len(verdicts))
    store.update_job(job.id, state="done", percent=100.0)
    target = store.job_verdicts_path(job.id)
    target.parent.mkdir(parents=True, exist_ok=True)
    verdicts.to_parquet(target, index=False)
    return record


def csv_list(store: Store, emails: Sequence[str], statuses: Sequence[str], *, name: str = "Newsletter") -> ListRecord:
    """A verified CSV-shaped list with only an Email column (addresses, no identities)."""
    rows = pd.DataFrame({"Email": pd.Series(list(emails), dtype="string[pyarrow]")})
    return make_verified_list(store, rows, statuses, name=name, email_column="Email", audience=False)


def profile_of(sb, key_type: str, key_value: str) -> dict:
    found = sb.profile(**{{"identity": "identity", "objectId": "object_id", "email": "email"}[key_type]: key_value})
    assert found is not None, (key_type, key_value)
    return found["profileData"]


def assert_state_matches_plan(sb, plan) -> None:
    """Every planned profile holds exactly what the plan said; the others keep their MSG-email."""
    for change in plan.read_changes().itertuples():
        data = profile_of(sb, change.key_type, change.key_value)
        if change.unsubscribe:
            assert data["MSG-email"] is False and data[STAMP_PROPERTY] == plan.tag
        if isinstance(change.properties_json, str):
            for key, value in json.loads(change.properties_json).items():
                assert data[key] == value or str(data[key]) == str(value).removeprefix("$D_"), key
