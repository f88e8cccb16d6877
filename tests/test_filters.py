"""lib/filters.py: which rows match the Results filters, and what each filter offers."""
from __future__ import annotations

import pandas as pd
import pytest

from lib import columns as co
from lib import merge
from lib.filters import filter_options, filter_rows
from lib.merge import append_verdicts
from tests.test_merge import rows, verdicts  # noqa: F401 - fixtures


@pytest.fixture
def merged(rows, verdicts) -> pd.DataFrame:  # noqa: F811 - the fixtures above
    return append_verdicts(rows, "email", verdicts)


def test_filters_combine_with_and_across_and_or_within(merged):
    assert filter_rows(merged).equals(merged)
    invalid = filter_rows(merged, statuses=[co.INVALID])
    assert invalid["Name"].tolist() == ["Bob", "Typo"]
    assert filter_rows(merged, statuses=[co.INVALID, co.CATCH_ALL])["Name"].tolist() == ["Bob", "Cat", "Typo"]
    assert filter_rows(merged, statuses=[co.INVALID], domains=["ACME.io "])["Name"].tolist() == ["Bob"]
    assert filter_rows(merged, safe_to_send=[co.YES])["Name"].tolist() == ["Ann", "Ann again"]
    assert filter_rows(merged, reasons=[merge.NO_EMAIL_REASON])["Name"].tolist() == ["Nobody", "Blank", "NA"]
    assert filter_rows(merged, flags=["Role", "Disposable"])["Name"].tolist() == ["Cat", "Dan"]
    assert filter_rows(merged, flags=["Free"], statuses=[co.INVALID]).empty


def test_filters_reject_words_that_do_not_exist(merged):
    with pytest.raises(ValueError, match="Catchall"):
        filter_rows(merged, statuses=["Catchall"])
    with pytest.raises(ValueError, match="Spammy"):
        filter_rows(merged, flags=["Spammy"])


def test_filter_options_offer_what_is_present(merged):
    options = filter_options(merged, top_domains=2)
    assert options.statuses == (co.VALID, co.INVALID, co.CATCH_ALL, co.UNKNOWN, co.NO_EMAIL)
    assert options.safe_to_send == (co.YES, co.RISKY, co.NO, co.UNKNOWN)
    assert options.reasons[0] == merge.NO_EMAIL_REASON  # 3 rows, the most frequent
    assert set(options.reasons) == set(merged[co.REASON].dropna())
    assert options.flags == ("Disposable", "Role", "Free")
    assert options.domains == ("acme.io", "gmail.com")  # 2 rows each (ties by name), then mailinator.com
