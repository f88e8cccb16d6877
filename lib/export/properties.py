"""What an Append writes to CleverTap profiles: the columns and the names they get, CleverTap's limits
on them, and each row's properties as the JSON object sent.

The "run id" property that Append can write holds the run's tag (also shown in History), not the
store's integer id: two installations writing to one project would both have a run 1.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from collections.abc import Sequence

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from lib import columns as co

# CleverTap limits [UUP]; the reference gives bytes, platform-considerations gives characters: bytes
# is the stricter reading, so that is what we check.
MAX_KEY_BYTES = 120

MAX_VALUE_BYTES = 512

MAX_CUSTOM_KEYS = 256

STAMP_PROPERTY = "Clearout Unsubscribe Run"

RUN_SOURCE = "Export run id"  # pseudo column: the run's tag, written like a Clearout column

# Keys CleverTap reserves for its own profile fields; an appended property must not reuse them.
SYSTEM_KEYS = frozenset({"Name", "Email", "Phone", "Gender", "DOB", "Education", "Employed", "Married",
                         "Age", "Photo", "Identity", "tz"})


@dataclass(frozen=True)
class AppendColumn:
    source: str  # a Clearout column name, or RUN_SOURCE
    name: str    # the CleverTap property name


DEFAULT_APPEND: tuple[AppendColumn, ...] = (
    AppendColumn(co.STATUS, "Clearout Status"),
    AppendColumn(co.SAFE_TO_SEND, "Clearout Safe to Send"),
    AppendColumn(co.REASON, "Clearout Reason"),
    AppendColumn(co.VERIFIED_AT, "Clearout Verified At"),
    AppendColumn(RUN_SOURCE, "Clearout Export Run"),
)

APPEND_SOURCES: tuple[str, ...] = (*co.CLEAROUT_COLUMN_NAMES, RUN_SOURCE)


# ---- checks ---------------------------------------------------------------------------------------

def property_name_errors(columns: Sequence[AppendColumn]) -> list[str]:
    """Why these property names cannot be written (empty when they can)."""
    errors, seen = [], set()
    for column in columns:
        name = column.name
        if column.source not in APPEND_SOURCES:
            errors.append(f"{column.source!r} is not a Clearout column.")
        if not name.strip():
            errors.append(f"The property for {column.source} has no name.")
            continue
        if name != name.strip():
            errors.append(f"Property name {name!r} starts or ends with a space.")
        if len(name.encode()) > MAX_KEY_BYTES:
            errors.append(f"Property name {name[:40]!r}… is {len(name.encode())} bytes; CleverTap allows "
                          f"{MAX_KEY_BYTES}.")
        if name in SYSTEM_KEYS or name.startswith("MSG-") or name == STAMP_PROPERTY:
            errors.append(f"Property name {name!r} is reserved (a CleverTap field or our undo stamp).")
        if name.lower() in seen:
            errors.append(f"Property name {name!r} is used twice.")
        seen.add(name.lower())
    return errors


def custom_key_warning(columns: Sequence[AppendColumn], unsubscribe: bool) -> str:
    keys = len(columns) + (1 if unsubscribe else 0)
    return (f"This export uses {keys} custom profile propert{'y' if keys == 1 else 'ies'} "
            f"({', '.join([c.name for c in columns] + ([STAMP_PROPERTY] if unsubscribe else []))}). "
            f"CleverTap allows {MAX_CUSTOM_KEYS} custom keys and refuses records that would go over: "
            "reuse the same names on every export rather than inventing new ones.")


def _json_strings(values: pd.Series) -> pa.Array:
    """Each non-missing value as a JSON literal (str, number or $D_ date), null where missing."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        seconds = values.dt.as_unit("ms").array.asi8 // 1000
        text = pd.Series(seconds, index=values.index).astype("string[pyarrow]")
        text = ('"$D_' + text + '"').where(values.notna().to_numpy())
        return pa.array(text.array, pa.large_string())
    if pd.api.types.is_integer_dtype(values.dtype):
        return pa.array(values.astype("string[pyarrow]").array, pa.large_string())
    codes, uniques = pd.factorize(values.astype("string[pyarrow]"), use_na_sentinel=True)
    encoded = np.array([json.dumps(str(u), ensure_ascii=False) for u in uniques] + [None], dtype=object)
    return pa.array(encoded[codes], pa.large_string())


def _text(value: str) -> pa.Scalar:
    return pa.scalar(value, pa.large_string())


def properties_json(merged: pd.DataFrame, columns: Sequence[AppendColumn],
                     tag: str) -> tuple[pd.Series, dict[str, int]]:
    """Per row, the JSON object of appended properties; and per property, how many values were too long.

    Text columns hold few distinct values (statuses, reasons, domains): each `"name":value` fragment is
    made once per distinct value and taken per row, and the fragments joined by one Arrow kernel.
    """
    n = len(merged)
    fragments, dropped = [], {}
    for column in columns:
        key = json.dumps(column.name, ensure_ascii=False) + ":"
        if column.source == RUN_SOURCE:  # a tag is short: never over the limit
            fragments.append(pa.repeat(_text(key + json.dumps(tag)), n))
            continue
        source = merged[column.source]
        if isinstance(source.dtype, pd.DatetimeTZDtype) or pd.api.types.is_integer_dtype(source.dtype):
            fragments.append(pc.binary_join_element_wise(_text(key), _json_strings(source), _text(""),
                                                         null_handling="emit_null"))
            continue
        codes, uniques = pd.factorize(source.astype("string[pyarrow]"), use_na_sentinel=True)
        texts = [str(u) for u in uniques]
        # Bytes, not characters: CleverTap's limit.
        too_long = np.array([len(text.encode()) > MAX_VALUE_BYTES for text in texts] + [False])
        made = pa.array([None if long else key + json.dumps(text, ensure_ascii=False)
                         for text, long in zip(texts, too_long)] + [None], pa.large_string())
        positions = np.where(codes < 0, len(texts), codes)
        if count := int(too_long[positions].sum()):
            dropped[column.name] = count
        fragments.append(made.take(pa.array(positions)))
    if not fragments:
        return pd.Series(pd.NA, index=merged.index, dtype="string[pyarrow]"), dropped
    joined = pc.binary_join_element_wise(*fragments, _text(","), null_handling="skip")
    objects = pc.binary_join_element_wise(_text("{"), joined, _text("}"), _text(""))
    series = pd.Series(pd.arrays.ArrowStringArray(pa.chunked_array([objects.cast(pa.string())])),
                       index=merged.index)
    return series.mask(series == "{}"), dropped


# ---- the Append editor ----------------------------------------------------------------------------

def append_table(columns: Sequence[AppendColumn] = DEFAULT_APPEND) -> pd.DataFrame:
    """Every appendable column, ticked and named as in `columns`: what the page's editor shows."""
    chosen = {c.source: c.name for c in columns}
    sources = [c.source for c in columns] + [s for s in APPEND_SOURCES if s not in chosen]
    return pd.DataFrame({"Append": [s in chosen for s in sources], "Clearout column": sources,
                         "Property name in CleverTap": [chosen.get(s, s) for s in sources]})


def columns_from_table(table: pd.DataFrame) -> tuple[AppendColumn, ...]:
    """The ticked rows of an edited `append_table`."""
    ticked = table[table["Append"].fillna(False).astype(bool)]
    return tuple(AppendColumn(str(source), "" if pd.isna(name) else str(name))
                 for source, name in zip(ticked["Clearout column"], ticked["Property name in CleverTap"]))
