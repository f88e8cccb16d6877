"""lib/export_plan.py: what a dry run plans, pure (no HTTP)."""
from __future__ import annotations

import io
import json

import pandas as pd
import pytest

from lib import columns as C
from lib.export.payloads import resubscribe_data, sample_payload, upload_body, upload_records
from lib.export.plan import ExportOptions, build_plan, confirmation_phrase
from lib.export.properties import (DEFAULT_APPEND, MAX_KEY_BYTES, RUN_SOURCE, STAMP_PROPERTY, AppendColumn,
                                   property_name_errors)
from lib.export.views import changes_csv, reason_counts
from lib.merge import append_verdicts
from tests.export.support import verdicts_for

TAG = "20250101-abcdef"


def audience(statuses, *, msg=None, identities=None, disposable=None, reasons=None) -> pd.DataFrame:
    n = len(statuses)
    emails = [f"person{i}@example.com" for i in range(n)]
    rows = pd.DataFrame({
        "identity": pd.Series(identities if identities is not None else [f"u{i}" for i in range(n)],
                              dtype="string[pyarrow]"),
        "objectId": pd.Series([f"__{i:032x}" for i in range(n)], dtype="string[pyarrow]"),
        "email": pd.Series(emails, dtype="string[pyarrow]"),
        "MSG-email": pd.array(msg if msg is not None else [True] * n, dtype="boolean")})
    verdicts = verdicts_for(emails, statuses, disposable=disposable)
    if reasons is not None:
        verdicts[C.REASON] = pd.Series(reasons, dtype="string[pyarrow]")
    return append_verdicts(rows, "email", verdicts)


def plan_of(merged, options=ExportOptions(), *, guardrail_pct=30.0, email_only=False):
    keys = {} if email_only else {"identity_column": "identity", "object_id_column": "objectId",
                                  "msg_email_column": "MSG-email"}
    return build_plan(merged, list_id=1, job_id=1, list_name="L", email_column="email",
                      **{"identity_column": None, "object_id_column": None, "msg_email_column": None, **keys},
                      options=options, guardrail_pct=guardrail_pct, tag=TAG)


def test_default_policy_unsubscribes_invalid_only() -> None:
    statuses = [C.INVALID, C.VALID, C.CATCH_ALL, C.UNKNOWN, C.INVALID, C.VALID, C.VALID, C.VALID, C.VALID, C.VALID]
    plan = plan_of(audience(statuses, disposable=[False, True] + [False] * 8))
    assert list(plan.changes["key_value"]) == ["u0", "u4"]
    assert plan.summary.by_rule == {"Invalid": 2} and plan.summary.unsubscribe_pct == 20.0
    assert not plan.summary.over_guardrail and plan.can_apply


@pytest.mark.parametrize("rule, extra", [("disposable", "u1"), ("catch_all", "u2"), ("unknown", "u3")])
def test_each_option_adds_its_outcome(rule: str, extra: str) -> None:
    statuses = [C.INVALID, C.VALID, C.CATCH_ALL, C.UNKNOWN]
    plan = plan_of(audience(statuses, disposable=[False, True, False, False]),
                   ExportOptions(rules=(rule,)), guardrail_pct=100)
    assert set(plan.changes["key_value"]) == {"u0", extra}
    assert "invalid" in plan.options.rules  # invalid cannot be switched off


def test_already_unsubscribed_duplicates_and_missing_keys_are_not_sent() -> None:
    merged = audience([C.INVALID] * 5, msg=[True, False, True, True, None], identities=["a", "b", "a", None, "e"])
    merged.loc[3, "objectId"] = None
    plan = plan_of(merged, guardrail_pct=100)
    assert list(plan.changes["key_value"]) == ["a", "e"]
    s = plan.summary
    assert (s.already_unsubscribed, s.duplicates, s.no_key, s.profiles, s.prior_known) == (1, 1, 1, 3, 1)
    assert any("already unsubscribed" in n for n in plan.notes)
    assert any("does not say whether" in n for n in plan.notes)  # e: its previous state is unknown


def test_object_id_is_the_key_when_there_is_no_identity() -> None:
    plan = plan_of(audience([C.INVALID, C.INVALID], identities=[None, " "]), guardrail_pct=100)
    assert list(plan.changes["key_type"]) == ["objectId", "objectId"]
    assert sample_payload(plan)["body"]["d"][0] == {
        "objectId": f"__{0:032x}", "type": "profile", "profileData": {"MSG-email": False, STAMP_PROPERTY: TAG}}


def test_upload_body_is_the_encoded_records_byte_for_byte() -> None:
    rows = [("identity", "a", True, None), ("objectId", '__q"uo\\te', True, None), ("identity", "ü-1", False, None),
            ("identity", "b", True, '{"Clearout Status":"Invalid","Note":"é"}'),
            ("identity", "c", False, json.dumps(resubscribe_data(TAG)))]
    body, count = upload_body(rows, TAG)
    assert count == 5
    assert body == json.dumps({"d": upload_records(rows, TAG)}, separators=(",", ":")).encode()
    assert json.loads(body)["d"][1] == {"objectId": '__q"uo\\te', "type": "profile",
                                        "profileData": {"MSG-email": False, STAMP_PROPERTY: TAG}}
    assert upload_body([], TAG) == (b'{"d":[]}', 0)


def test_guardrail_share_and_phrase() -> None:
    plan = plan_of(audience([C.INVALID] * 4 + [C.VALID] * 6), guardrail_pct=30.0)
    assert plan.summary.unsubscribe_pct == 40.0 and plan.summary.over_guardrail
    assert confirmation_phrase(plan) == "UNSUBSCRIBE 4"
    assert any("guardrail" in w for w in plan.warnings)


def test_append_writes_chosen_columns_with_dates_and_run_id() -> None:
    plan = plan_of(audience([C.INVALID, C.VALID]), ExportOptions(unsubscribe=True, append=True))
    records = sample_payload(plan)["body"]["d"]
    assert records[0]["profileData"] == {
        "MSG-email": False, STAMP_PROPERTY: TAG, "Clearout Status": "Invalid", "Clearout Safe to Send": "No",
        "Clearout Reason": "Mailbox not found", "Clearout Verified At": "$D_1741064767", "Clearout Export Run": TAG}
    assert "MSG-email" not in records[1]["profileData"]  # valid: appended only
    assert plan.summary.to_append == 2 and plan.summary.to_unsubscribe == 1
    assert any("256" in w for w in plan.warnings)


def test_renamed_columns_and_json_escaping() -> None:
    columns = (AppendColumn(C.REASON, "Why (Clearout)"), AppendColumn(C.TIME_TAKEN, "ms"))
    merged = audience([C.VALID], reasons=['He said "hi", ünïcode \\ ok'])
    plan = plan_of(merged, ExportOptions(unsubscribe=False, append=True, columns=columns))
    assert json.loads(plan.changes["properties_json"][0]) == {"Why (Clearout)": 'He said "hi", ünïcode \\ ok',
                                                               "ms": 120}


@pytest.mark.parametrize("name, problem", [
    ("", "has no name"), ("x" * (MAX_KEY_BYTES + 1), "bytes"), ("é" * 61, "bytes"),
    ("Email", "reserved"), ("MSG-sms", "reserved"), (STAMP_PROPERTY, "reserved"), (" padded", "space"),
])
def test_property_names_are_checked(name: str, problem: str) -> None:
    errors = property_name_errors([AppendColumn(C.STATUS, name)])
    assert errors and problem in errors[0]


def test_property_names_within_limits_pass_and_duplicates_fail() -> None:
    assert property_name_errors([AppendColumn(C.STATUS, "é" * 60)]) == []  # 120 bytes exactly
    assert property_name_errors(list(DEFAULT_APPEND)) == []
    errors = property_name_errors([AppendColumn(C.STATUS, "Same"), AppendColumn(C.REASON, "same")])
    assert errors == ["Property name 'same' is used twice."]
    plan = plan_of(audience([C.VALID]), ExportOptions(append=True, columns=(AppendColumn(C.STATUS, "Email"),)))
    assert plan.errors and not plan.can_apply


def test_values_over_512_bytes_are_left_out_and_reported() -> None:
    long = "ü" * 257  # 514 bytes, 257 characters
    merged = audience([C.INVALID, C.VALID], reasons=[long, "short"])
    plan = plan_of(merged, ExportOptions(append=True, columns=(AppendColumn(C.REASON, "Reason"),
                                                               AppendColumn(RUN_SOURCE, "Run"))), guardrail_pct=100)
    first, second = (json.loads(p) for p in plan.changes["properties_json"])
    assert first == {"Run": TAG} and second == {"Reason": "short", "Run": TAG}
    assert any("1 value(s) of Reason are longer than 512 bytes" in w for w in plan.warnings)


def test_email_only_lists_plan_subscribe_calls_and_refuse_append() -> None:
    merged = audience([C.INVALID, C.INVALID, C.VALID])
    merged["email"] = pd.Series(["A@x.com ", "a@x.com", "c@x.com"], dtype="string[pyarrow]")
    plan = plan_of(merged, email_only=True, guardrail_pct=100)
    assert plan.method == "subscribe" and list(plan.changes["key_value"]) == ["a@x.com"]
    assert sample_payload(plan) == {"endpoint": "/1/subscribe", "body": {"d": [
        {"type": "email", "value": "a@x.com", "status": "Unsubscribe"}]}}
    appending = plan_of(merged, ExportOptions(append=True), email_only=True)
    assert any("Subscribe API cannot set" in e for e in appending.errors) and not appending.can_apply


def test_nothing_chosen_is_an_error() -> None:
    plan = plan_of(audience([C.INVALID]), ExportOptions(unsubscribe=False, append=False))
    assert plan.errors == ("Choose Unsubscribe, Append, or both.",)


def test_reason_counts_and_csv_download() -> None:
    merged = audience([C.INVALID, C.INVALID, C.CATCH_ALL, C.VALID], reasons=["Mailbox not found", "=cmd()", "x", "y"])
    plan = plan_of(merged, ExportOptions(rules=("catch_all",)), guardrail_pct=100)
    counts = reason_counts(plan)
    assert counts["Profiles"].sum() == 3 and set(counts["Rule"]) == {"Invalid", "Catch-all"}
    table = pd.read_csv(io.BytesIO(changes_csv(plan.changes)))
    assert list(table["Action"]) == ["Unsubscribe"] * 3
    assert "'=cmd()" in set(table["Clearout reason"])  # neutralised for spreadsheets
    assert set(table["MSG-email before"]) == {"subscribed"}
    exact = pd.read_csv(io.BytesIO(changes_csv(plan.changes, "exact")))
    assert "=cmd()" in set(exact["Clearout reason"])  # for re-import: as it is


def test_the_exact_plan_csv_keeps_object_ids_that_start_with_a_dash() -> None:
    merged = audience([C.INVALID, C.INVALID], identities=[None, None])
    merged["objectId"] = pd.Series(["-3gq2k9", "+44abc"], dtype="string[pyarrow]")
    plan = plan_of(merged, guardrail_pct=100)
    exact = pd.read_csv(io.BytesIO(changes_csv(plan.changes, "exact")), dtype=str)
    assert list(exact["Value"]) == ["-3gq2k9", "+44abc"]  # they still match CleverTap's
    sheet = pd.read_csv(io.BytesIO(changes_csv(plan.changes)), dtype=str, encoding="utf-8-sig")
    assert list(sheet["Value"]) == ["'-3gq2k9", "'+44abc"]  # a spreadsheet shows them, does not run them


def bounced(types: list[str | None], reasons: list[str]) -> pd.DataFrame:
    merged = audience([C.INVALID] * len(types), reasons=reasons)
    merged[C.BOUNCE_TYPE] = pd.Series(types, dtype="string[pyarrow]")
    return merged


def test_soft_bounces_are_a_separate_rule_off_by_default() -> None:
    merged = bounced(["hard", "soft", "Soft", "soft", None],
                     ["Mailbox not found", "Message receiving limit reached", "Mailbox quota exceeded",
                      "Probably Spamtrap/Honeypot", "Domain is part of blocklist"])
    plan = plan_of(merged, guardrail_pct=100)
    # Hard bounces, the spam trap (soft by type, harmful to mail anyway) and the blocklisted: by default.
    assert list(plan.changes["key_value"]) == ["u0", "u3", "u4"]
    assert plan.summary.by_rule == {"Invalid": 3}
    both = plan_of(merged, ExportOptions(rules=("soft_bounce",)), guardrail_pct=100)
    assert list(both.changes["key_value"]) == ["u0", "u1", "u2", "u3", "u4"]
    assert both.summary.by_rule == {"Invalid": 3, "Soft bounce": 2}
    assert set(both.changes.loc[both.changes["rule"] == "Soft bounce", "reason"]) == {
        "Message receiving limit reached", "Mailbox quota exceeded"}
