"""lib/funnel.py: one set of words and figures, and every funnel adds up."""
from __future__ import annotations

import re

import pandas as pd

from lib import columns as C
from lib import funnel
from lib.export.plan import ExportOptions
from tests.export.test_plan import audience, plan_of


def test_the_dry_run_sentence_reconciles_results_with_the_profiles_unsubscribed() -> None:
    statuses = [C.INVALID, C.INVALID, C.CATCH_ALL, C.VALID, C.INVALID, C.UNKNOWN, C.INVALID, C.VALID]
    merged = audience(statuses, msg=[True, True, True, True, False, True, True, True],
                      identities=["u0", "u0", "u2", "u3", "u4", "u5", None, "u7"])
    merged[C.SAFE_TO_SEND] = merged[C.SAFE_TO_SEND].astype(str).where(merged.index != 3, C.NO)  # No, not Invalid
    plan = plan_of(merged.astype({C.SAFE_TO_SEND: C.SAFE_TO_SEND_DTYPE}),
                   ExportOptions(rules=("catch_all",)), guardrail_pct=100)
    s = plan.summary
    # Row 6 has an objectId but no identity: it still names a profile. Rows 0 and 1 name one profile.
    assert (s.undeliverable_rows, s.undeliverable_matched, s.matched_rows) == (5, 4, 5)
    text = funnel.export_reconciliation(s)
    numbers = [int(n.replace(",", "")) for n in re.findall(r"\d[\d,]*", text)]
    assert text.startswith("5 undeliverable rows (as on Results) − 1 your rules leave alone")
    assert "+ 1 row of the extra rules you ticked = 5 rows matching your rules" in text
    assert "− 1 repeating a profile − 1 already unsubscribed = **3 profiles to unsubscribe**" in text
    assert numbers[-1] == s.to_unsubscribe == 3
    stages = {stage.label: stage.count for stage in funnel.export_stages(s)}
    assert stages == {"Matching your rules": 5, "With a profile key": 5, "Distinct profiles": 4, "To unsubscribe": 3}


def test_every_stage_has_its_meaning_and_the_verdict_split_adds_up() -> None:
    stages = funnel.verdict_stages(15, 4, 2, 9, done=True)
    assert [s.label for s in stages] == ["Distinct addresses", "Syntax errors", "From the cache", "Bought"]
    assert stages[0].count == sum(s.count for s in stages[1:])
    assert all(s.help for s in stages[:3]) and funnel.verdict_stages(1, 0, 0, 1, done=False)[3].label == "To buy"
    assert dict(funnel.glossary())["Distinct addresses"].startswith("Different addresses")


def test_the_funnel_chart_says_what_each_bar_counts() -> None:
    figure = funnel.figure([funnel.Stage("Rows", 20, "rows"), funnel.Stage("Distinct addresses", 15, "addresses")],
                           "t")
    assert list(figure.data[0].text) == ["20 rows", "15 addresses"]
    assert pd.Series(figure.data[0].x).tolist() == [20, 15]


def test_one_of_a_kind_is_said_in_the_singular_and_address_lists_count_addresses() -> None:
    statuses = [C.INVALID, C.VALID, C.VALID]
    plan = plan_of(audience(statuses, msg=[True] * 3, identities=["u0", "u1", "u2"]), ExportOptions(),
                   guardrail_pct=100)
    text = funnel.export_reconciliation(plan.summary, "addresses")
    assert text == "1 undeliverable row (as on Results) = 1 row matching your rules = **1 address to unsubscribe**"
    assert [stage.text for stage in funnel.export_stages(plan.summary)] == ["1 row", "1 row", "1 profile", "1 profile"]
    assert funnel.export_unit(plan.method) == "profiles"
