"""A key figure as pages show it (label, value, note, help), and counting words right."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Metric:
    label: str
    value: str
    note: str = ""  # unit or share, shown under the value
    help: str = ""


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    """`1 credit`, `2 credits`, `1,234 addresses` (with thousands separators)."""
    return f"{count:,} {noun if count == 1 else (nouns or noun + 's')}"


COMPACT_FROM = 1_000_000  # below this a figure is shown in full: six digits fit a metric card


def compact_number(count: int) -> str:
    """`12.3M`, `1.2B`: a count of a million or more in few characters (below, with separators)."""
    if abs(count) < COMPACT_FROM:
        return f"{count:,}"
    for size, suffix in ((1_000_000_000, "B"), (1_000_000, "M")):
        if abs(count) >= size:
            shown = f"{count / size:.1f}".removesuffix(".0")
            return f"{shown}{suffix}"
    return f"{count:,}"
