"""lib/figures.py: counting words right, and figures too long for a metric card said short."""
from __future__ import annotations

import pytest

from lib.figures import compact_number, plural


@pytest.mark.parametrize(("count", "shown"), [(0, "0"), (999_999, "999,999"), (1_000_000, "1M"),
                                              (10_234_567, "10.2M"), (1_250_000_000, "1.2B")])
def test_a_million_or_more_is_said_short(count: int, shown: str) -> None:
    assert compact_number(count) == shown


def test_plural() -> None:
    assert (plural(1, "credit"), plural(1_234, "address", "addresses")) == ("1 credit", "1,234 addresses")
