"""Read-back: a sample of a run's sent changes read from CleverTap again and compared with the plan."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

from lib import http
from lib.clevertap import CleverTapClient, Profile
from lib.export.plan import METHOD_SUBSCRIBE, METHOD_UPLOAD, STAMP_PROPERTY
from lib.export.profiles import read_profiles
from lib.export.runs import RESUBSCRIBE_STATUS
from lib.store import ExportRun, Store, utc_now

READ_BACK_SAMPLE = 20

READ_BACK_RETRY_S = 2.0     # UNCONFIRMED how soon an upload is readable: one more look after this
SKIP_NOT_FOUND = "not found in CleverTap"
# An address-level change (the Subscribe API) to an address no profile has: CleverTap accepted it and
# applies it to any profile with that address, created later included, but no API reads it back.
NO_PROFILE = ("no profile with this address yet: the address-level preference was accepted, but CleverTap "
              "shows it only on a profile with this address")


@dataclass(frozen=True)
class ReadBack:
    key_type: str
    key_value: str
    expected: str
    found: str
    confirmed: bool | None  # None: cannot be read back (an address with no profile)


def _expected(run: ExportRun, unsubscribe: bool, properties_json: str | None) -> dict[str, Any]:
    want: dict[str, Any] = {}
    if run.kind == "undo" or run.policy.get("subscribe_status") == RESUBSCRIBE_STATUS:
        want["MSG-email"] = True
    elif unsubscribe:
        want["MSG-email"] = False
        if run.method == METHOD_UPLOAD:
            want[STAMP_PROPERTY] = run.tag
    if properties_json and run.method == METHOD_UPLOAD:
        want.update(json.loads(properties_json))
    return want


def _same(found: Any, wanted: Any) -> bool:
    if isinstance(wanted, str) and wanted.startswith("$D_") and not isinstance(found, str):
        return str(found) == wanted[3:]  # a date may come back as epoch seconds
    return bool(found == wanted)


def _check(profile: Profile | None, want: dict[str, Any], method: str) -> tuple[str, bool | None]:
    if profile is None:
        return (NO_PROFILE, None) if method == METHOD_SUBSCRIBE else (SKIP_NOT_FOUND, False)
    found = {k: profile.msg_email if k == "MSG-email" else profile.properties.get(k) for k in want}
    ok = all(_same(found[k], v) for k, v in want.items())
    text = ", ".join(f"{k}={json.dumps(found[k])}" for k in want if not _same(found[k], want[k]))
    return ("as planned" if ok else text), ok


def read_back(store: Store, run: ExportRun, client: CleverTapClient, *, sample: int = READ_BACK_SAMPLE
              ) -> list[ReadBack]:
    """Read a random sample of the run's sent changes with /1/profile.json and compare."""
    rows = store.export_change_sample(run.id, sample, outcome="ok")
    wants = [_expected(run, bool(u), p) for u, p in zip(rows["unsubscribe"], rows["properties_json"].astype(object)
                                                       .where(rows["properties_json"].notna(), None))]
    keys = list(zip(rows["key_type"], rows["key_value"]))
    checks = [_check(p, w, run.method)
              for p, w in zip(read_profiles(client, keys, step="Reading a sample back from CleverTap"), wants)]
    missing = [i for i, (_, ok) in enumerate(checks) if ok is False]
    if missing:  # a write may take a moment to become readable
        http.sleep(READ_BACK_RETRY_S)
        again = read_profiles(client, [keys[i] for i in missing])
        for i, profile in zip(missing, again):
            checks[i] = _check(profile, wants[i], run.method)
    return [ReadBack(k, v, ", ".join(f"{a}={json.dumps(b)}" for a, b in w.items()), found, ok)
            for (k, v), w, (found, ok) in zip(keys, wants, checks)]


def record_read_back(store: Store, run: ExportRun, client: CleverTapClient, *,
                     sample: int = READ_BACK_SAMPLE) -> list[ReadBack]:
    """`read_back`, kept with the run (counts_json) for the pages."""
    checks = read_back(store, run, client, sample=sample)
    run = store.export_run(run.id)
    store.update_export_run(run.id, counts={**run.counts, "read_back": {
        "at": utc_now(), "rows": [asdict(c) for c in checks]}})
    return checks
