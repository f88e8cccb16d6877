"""The seeded CleverTap project: N profiles held as compact numpy columns, materialised on demand.

Nothing per profile is stored as Python objects at start-up (20k profiles start in milliseconds,
1M in about a second): identity, objectId and email are pure functions of the row index, and
identities/objectIds decode back to the index, so lookups need no index tables. Only an email
lookup builds one (lazily, once).

Defects of real lists are built in: missing emails, surrounding spaces, invalid syntax, case-only
duplicates across profiles, mixed case, role and disposable addresses, typo domains, gibberish
local parts, ~5% already unsubscribed (MSG-email false), a few profiles with no identity.
"""
from __future__ import annotations

import hashlib
import threading
from array import array
from datetime import UTC, date, datetime
from typing import Any

import numpy as np

from lib.emails import normalise_email
from lib.sandbox import pools

EVENTS = ("App Launched", "Product Viewed", "Added to Cart", "Charged", "App Installed")
_EVENT_SHARE = (0.88, 0.62, 0.35, 0.22, 0.30)
_EVENT_MEAN_COUNT = (14.0, 9.0, 3.0, 2.0, 1.0)
WINDOW_DAYS = 90  # event dates fall on the 90 days before the anchor date

# Email defects (one per profile).
(D_NONE, D_MISSING, D_SPACES, D_INVALID, D_CASE_DUP, D_MIXED_CASE, D_ROLE) = range(7)
_DEFECT_SHARE = (0.0, 0.04, 0.025, 0.015, 0.025, 0.08, 0.025)
# Local-part patterns.
(P_DOT, P_JOINED, P_INITIAL, P_UNDERSCORE, P_FIRST_NUM, P_JOINED_NUM, P_GIBBERISH) = range(7)
_PATTERN_SHARE = (0.25, 0.15, 0.10, 0.08, 0.17, 0.22, 0.03)
# Identity kinds: numeric string, "user_<n>", none (objectId only).
ID_NUMERIC, ID_USER, ID_NONE = range(3)
_ID_SHARE = (0.58, 0.38, 0.04)
ID_BASE = 1_000_000
_MSG_FALSE_SHARE = 0.05
_PHONE_SHARE = 0.6
_OBJECT_MULTIPLIER = 0x9E3779B97F4B  # odd, so invertible modulo 2**48
_MASK48 = (1 << 48) - 1

DOMAINS: tuple[str, ...] = (
    tuple(d for d, _ in pools.CONSUMER_DOMAINS) + pools.CORPORATE_DOMAINS + pools.TYPO_DOMAINS
    + pools.DISPOSABLE_DOMAINS)
_FIRST_CORPORATE = len(pools.CONSUMER_DOMAINS)
_N_CORPORATE = len(pools.CORPORATE_DOMAINS)


def _domain_weights() -> np.ndarray:
    weights = [w for _, w in pools.CONSUMER_DOMAINS]
    weights += [pools.CORPORATE_SHARE / _N_CORPORATE] * _N_CORPORATE
    weights += [pools.TYPO_SHARE / len(pools.TYPO_DOMAINS)] * len(pools.TYPO_DOMAINS)
    weights += [pools.DISPOSABLE_SHARE / len(pools.DISPOSABLE_DOMAINS)] * len(pools.DISPOSABLE_DOMAINS)
    array = np.array(weights, dtype=float)
    shares: np.ndarray = array / array.sum()
    return shares


def _shares(values: tuple[float, ...]) -> np.ndarray:
    array = np.array(values, dtype=float)
    array[0] = max(0.0, 1.0 - array[1:].sum()) if array[0] == 0.0 else array[0]
    shares: np.ndarray = array / array.sum()
    return shares


def _compact(values: np.ndarray) -> bytes | array[int]:
    if values.dtype == np.bool_ or values.dtype == np.uint8:
        return values.astype(np.uint8).tobytes()
    return array("H", values.astype(np.uint16).tobytes())


def _slug(name: str) -> str:
    return name.lower().replace("'", "").replace(" ", "")


class Dataset:
    """The generated profiles of one seed; read-only after construction."""

    def __init__(self, seed: int, count: int, anchor: date) -> None:
        self.seed = seed
        self.count = count
        self.anchor = anchor
        self.anchor_epoch = int(datetime(anchor.year, anchor.month, anchor.day,
                                         tzinfo=UTC).timestamp())
        rng = np.random.default_rng([seed, 0xC1E7])
        n = count
        self.first = rng.integers(0, len(pools.FIRST_NAMES), n, dtype=np.uint16)
        self.last = rng.integers(0, len(pools.LAST_NAMES), n, dtype=np.uint16)
        self.pattern = rng.choice(len(_PATTERN_SHARE), n, p=_shares(_PATTERN_SHARE)).astype(np.uint8)
        self.number = rng.integers(1, 9999, n, dtype=np.uint16)
        self.domain = rng.choice(len(DOMAINS), n, p=_domain_weights()).astype(np.uint8)
        self.defect = rng.choice(len(_DEFECT_SHARE), n, p=_shares(_DEFECT_SHARE)).astype(np.uint8)
        self.id_kind = rng.choice(3, n, p=_shares(_ID_SHARE)).astype(np.uint8)
        self.msg_false = rng.random(n) < _MSG_FALSE_SHARE
        self.has_phone = rng.random(n) < _PHONE_SHARE
        self.customer_type = rng.choice(4, n, p=[0.45, 0.3, 0.18, 0.07]).astype(np.uint8)
        self.city = rng.integers(0, len(pools.CITIES), n, dtype=np.uint8)
        self.platform = rng.choice(3, n, p=[0.55, 0.3, 0.15]).astype(np.uint8)
        self.partner = self._case_duplicate_partners(rng)
        # Per event: days-ago of first and last occurrence (0 = never) and a count.
        self.first_ago = np.zeros((len(EVENTS), n), dtype=np.uint8)
        self.last_ago = np.zeros((len(EVENTS), n), dtype=np.uint8)
        self.counts = np.zeros((len(EVENTS), n), dtype=np.uint16)
        for e, (share, mean) in enumerate(zip(_EVENT_SHARE, _EVENT_MEAN_COUNT)):
            has = rng.random(n) < share
            a = rng.integers(1, WINDOW_DAYS + 1, n)
            b = rng.integers(1, WINDOW_DAYS + 1, n)
            counts = 1 + rng.geometric(1.0 / mean, n) - 1 if mean > 1 else np.ones(n, dtype=np.int64)
            if mean <= 1:  # a one-off event (install): first == last
                b = a
            counts = np.where(a == b, 1, np.maximum(counts, 2))
            self.first_ago[e] = np.where(has, np.maximum(a, b), 0)
            self.last_ago[e] = np.where(has, np.minimum(a, b), 0)
            self.counts[e] = np.where(has, np.minimum(counts, 60000), 0)
        self._object_mask = int.from_bytes(hashlib.sha256(f"objmask:{seed}".encode()).digest()[:6], "big")
        self._object_inverse = pow(_OBJECT_MULTIPLIER, -1, 1 << 48)
        # Per-row reads index these columns thousands of times per page: bytes / array('H') give
        # plain ints several times faster than numpy scalars, at the same memory.
        for name in ("first", "last", "pattern", "number", "domain", "defect", "id_kind", "msg_false",
                     "has_phone", "customer_type", "city", "platform"):
            setattr(self, name, _compact(getattr(self, name)))
        self._first_ago = [row.tobytes() for row in self.first_ago]
        self._last_ago = [row.tobytes() for row in self.last_ago]
        self._counts = [_compact(row) for row in self.counts]
        del self.counts
        self._email_index: dict[str, Any] | None = None
        self._index_lock = threading.Lock()

    def _case_duplicate_partners(self, rng: np.random.Generator) -> dict[int, int]:
        """Each case-duplicate profile copies the address of an earlier clean profile, recased."""
        clean = np.flatnonzero(self.defect == D_NONE)
        dups = np.flatnonzero(self.defect == D_CASE_DUP)
        before = np.searchsorted(clean, dups)
        picks = np.floor(rng.random(len(dups)) * before).astype(np.int64)
        partners: dict[int, int] = {}
        for i, k, p in zip(dups.tolist(), before.tolist(), picks.tolist()):
            if k == 0:
                self.defect[i] = D_NONE
            else:
                partners[i] = int(clean[p])
        return partners

    # ---- identifiers -------------------------------------------------------------------------
    def identity(self, i: int) -> str | None:
        kind = self.id_kind[i]
        if kind == ID_NUMERIC:
            return str(ID_BASE + i)
        if kind == ID_USER:
            return f"user_{i + 1}"
        return None

    def index_of_identity(self, identity: str) -> int | None:
        if identity.startswith("user_"):
            digits, kind, offset = identity[5:], ID_USER, 1
        else:
            digits, kind, offset = identity, ID_NUMERIC, ID_BASE
        if not digits.isdigit() or digits.startswith("0") or len(digits) > 12:
            return None
        i = int(digits) - offset
        if 0 <= i < self.count and self.id_kind[i] == kind:
            return i
        return None

    def object_id(self, i: int) -> str:
        head = hashlib.blake2b(f"{self.seed}:{i}".encode(), digest_size=10).hexdigest()
        tail = ((i ^ self._object_mask) * _OBJECT_MULTIPLIER) & _MASK48  # invertible: decodes to i
        return f"__{head}{tail:012x}"

    def index_of_object_id(self, object_id: str) -> int | None:
        if len(object_id) != 34 or not object_id.startswith("__"):
            return None
        try:
            i = ((int(object_id[22:], 16) * self._object_inverse) & _MASK48) ^ self._object_mask
        except ValueError:
            return None
        if 0 <= i < self.count and self.object_id(i) == object_id:
            return i
        return None

    # ---- profile fields ----------------------------------------------------------------------
    def name(self, i: int) -> str:
        return f"{pools.FIRST_NAMES[self.first[i]]} {pools.LAST_NAMES[self.last[i]]}"

    def _core_email(self, i: int) -> str:
        first = _slug(pools.FIRST_NAMES[self.first[i]])
        last = _slug(pools.LAST_NAMES[self.last[i]])
        number = self.number[i]
        domain_index = self.domain[i]
        defect = self.defect[i]
        if defect == D_ROLE:
            if not _FIRST_CORPORATE <= domain_index < _FIRST_CORPORATE + _N_CORPORATE:
                domain_index = _FIRST_CORPORATE + (i * 7 + number) % _N_CORPORATE
            local = pools.ROLE_LOCALS[(i + number) % len(pools.ROLE_LOCALS)]
            return f"{local}@{DOMAINS[domain_index]}"
        pattern = self.pattern[i]
        if pattern == P_DOT:
            local = f"{first}.{last}"
        elif pattern == P_JOINED:
            local = f"{first}{last}"
        elif pattern == P_INITIAL:
            local = f"{first[0]}{last}"
        elif pattern == P_UNDERSCORE:
            local = f"{first}_{last}"
        elif pattern == P_FIRST_NUM:
            local = f"{first}{number}"
        elif pattern == P_JOINED_NUM:
            local = f"{first}.{last}{number % 100}"
        else:
            digest = hashlib.blake2b(f"g{self.seed}:{i}".encode(), digest_size=8).digest()
            local = "".join("bcdfghjklmnpqrstvwxz"[b % 20] for b in digest[:7]) + str(number % 100)
        return f"{local}@{DOMAINS[domain_index]}"

    def email(self, i: int) -> str | None:
        """The address as stored in CleverTap, defects included (None when the profile has none)."""
        defect = self.defect[i]
        if defect == D_MISSING:
            return None
        if defect == D_CASE_DUP:
            core = self._core_email(self.partner[i])
            local, _, domain = core.partition("@")
            variant = i % 3
            if variant == 0:
                return core.upper()
            if variant == 1:
                return f"{local.title()}@{domain}"
            return f"{local}@{domain.capitalize()}"
        core = self._core_email(i)
        if defect == D_SPACES:
            return (" " + core) if i % 2 else (core + "  ")
        if defect == D_MIXED_CASE:
            local, _, domain = core.partition("@")
            return f"{local[:1].upper()}{local[1:]}@{domain}"
        if defect == D_INVALID:
            local, _, domain = core.partition("@")
            variant = i % 5
            if variant == 0:
                return f"{local}@{domain.rsplit('.', 1)[0]}"   # no TLD
            if variant == 1:
                return f"{local}.{domain}"                       # no @
            if variant == 2:
                return f"{local}@@{domain}"
            if variant == 3:
                return f"{local.replace('.', ' ', 1) if '.' in local else local + ' x'}@{domain}"
            return f"{local}@{domain.replace('.', ',', 1)}"
        return core

    def phone(self, i: int) -> str | None:
        if not self.has_phone[i]:
            return None
        return f"+91{9000000000 - (i * 7919 + self.seed * 104729) % 2000000000}"

    def events(self, i: int) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for e, event in enumerate(EVENTS):
            first = self._first_ago[e][i]
            if first:
                seconds = (i * 2654435761 + e * 40503) % 86400
                out[event] = {"count": self._counts[e][i],
                              "first_seen": self.anchor_epoch - first * 86400 + seconds,
                              "last_seen": self.anchor_epoch - self._last_ago[e][i] * 86400 + seconds}
        return out

    def profile_data(self, i: int) -> dict[str, Any]:
        data: dict[str, Any] = {"Name": self.name(i)}
        email = self.email(i)
        if email is not None:
            data["Email"] = email
        phone = self.phone(i)
        if phone is not None:
            data["Phone"] = phone
        data["MSG-email"] = not self.msg_false[i]
        data["Customer Type"] = pools.CUSTOMER_TYPES[self.customer_type[i]]
        data["City"] = pools.CITIES[self.city[i]]
        return data

    def platform_name(self, i: int) -> str:
        return pools.PLATFORMS[self.platform[i]]

    # ---- queries -----------------------------------------------------------------------------
    def event_members(self, event: str, from_ago: int, to_ago: int) -> np.ndarray:
        """Indices of profiles that did `event` between two days (given as days before the anchor).

        A profile counts when its first..last occurrence span overlaps the range: the sandbox keeps
        only first/last/count per event, like CleverTap's own event summary.
        """
        e = EVENTS.index(event)
        first, last = self.first_ago[e], self.last_ago[e]
        mask = (first > 0) & (last.astype(np.int64) <= from_ago) & (first.astype(np.int64) >= to_ago)
        return np.flatnonzero(mask)

    def indices_of_email(self, normalised: str) -> list[int]:
        """Generated profiles whose stored address normalises to `normalised` (built once, lazily)."""
        with self._index_lock:
            if self._email_index is None:
                index: dict[str, Any] = {}
                for i in range(self.count):
                    key = normalise_email(self.email(i))
                    if key is None:
                        continue
                    known = index.get(key)
                    if known is None:
                        index[key] = i
                    elif isinstance(known, list):
                        known.append(i)
                    else:
                        index[key] = [known, i]
                self._email_index = index
        found = self._email_index.get(normalised)
        if found is None:
            return []
        return list(found) if isinstance(found, list) else [found]
