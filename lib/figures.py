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
