"""Server-side profiles: the generated dataset plus an overlay of uploads and subscription changes.

Profiles are addressed by an int key: 0..N-1 for generated ones, N+k for the k-th profile an
upload created. MSG-email is resolved at read time from two sources, the latest change winning:
the profile's own value (dataset default or an upload) and an address-level change made through
/1/subscribe (which applies to every profile sharing the normalised address, present or future).
The generated profiles' MSG-email overrides sit in flat arrays, since bulk unsubscribes of up to
a million profiles are the sandbox's heaviest write.
"""
from __future__ import annotations

import hashlib
import json
import threading
from array import array
from dataclasses import dataclass, field
from typing import Any, Iterable, NamedTuple

import numpy as np

from lib.emails import normalise_email
from lib.sandbox.dataset import EVENTS, Dataset
from lib.sandbox.state import StateStore

_MSG_UNSET, _MSG_FALSE, _MSG_TRUE = 0, 1, 2
# CleverTap's own profile properties; everything else counts towards the 256 custom keys.
SYSTEM_KEYS = frozenset({"Name", "Email", "Phone", "Gender", "DOB", "Education", "Employed",
                         "Married", "Age", "Photo", "Identity", "tz"})
_GENERATED_CUSTOM_KEYS = frozenset({"Customer Type", "City"})


def _is_custom(key: str) -> bool:
    return key not in SYSTEM_KEYS and not key.startswith("MSG-")


@dataclass
class CreatedProfile:
    identity: str | None
    object_id: str
    data: dict[str, Any] = field(default_factory=dict)
    msg: tuple[bool, int] | None = None  # (subscribed, seq) set by an upload
    platform: str = "Web"

    def to_json(self) -> str:
        return json.dumps({"identity": self.identity, "objectId": self.object_id, "data": self.data,
                           "msg": self.msg, "platform": self.platform})

    @classmethod
    def from_json(cls, text: str) -> "CreatedProfile":
        raw = json.loads(text)
        msg = tuple(raw["msg"]) if raw.get("msg") else None
        return cls(raw["identity"], raw["objectId"], raw["data"], msg, raw.get("platform", "Web"))


class ProfileChange(NamedTuple):
    """One validated upload record: who, and what changes (MSG-email apart).

    A NamedTuple rather than a frozen dataclass: a 1000-record upload builds 1000 of them, and
    a frozen dataclass's __init__ costs a microsecond each.
    """

    identity: str | None
    object_id: str | None
    data: dict[str, Any]
    msg_email: bool | None
    custom_keys: frozenset[str] = frozenset()  # the custom (non-system) keys among `data`


class ProfileStore:
    """All reads and writes of profiles go through here, under one lock."""

    def __init__(self, dataset: Dataset, state: StateStore | None) -> None:
        self.ds = dataset
        self.n = dataset.count
        self._state = state
        self.lock = threading.RLock()
        self._msg_value = bytearray(self.n)
        self._msg_seq = array("Q", bytes(8 * self.n))
        self._changes: dict[int, dict[str, Any]] = {}
        self._created: list[CreatedProfile] = []
        self._created_by_identity: dict[str, int] = {}
        self._created_by_object: dict[str, int] = {}
        self._addresses: dict[str, tuple[bool, int]] = {}
        self._email_moves: dict[str, set[int]] = {}  # normalised address -> keys given it by upload
        self._seq = 0
        if state is not None:
            self._load(state)

    # ---- persistence -------------------------------------------------------------------------
    def _load(self, state: StateStore) -> None:
        self._seq = int(state.get_meta("seq") or 0)
        for idx, text in state.load_generated():
            if idx >= self.n:
                continue
            raw = json.loads(text)
            if raw.get("c"):
                self._changes[idx] = raw["c"]
                self._note_email(idx, raw["c"])
            if raw.get("m"):
                value, seq = raw["m"]
                self._msg_value[idx] = _MSG_TRUE if value else _MSG_FALSE
                self._msg_seq[idx] = seq
        for ordinal, text in state.load_created():
            profile = CreatedProfile.from_json(text)
            self._add_created(profile)
            self._note_email(self.n + ordinal, profile.data)
        for email, subscribed, seq in state.load_addresses():
            self._addresses[email] = (bool(subscribed), seq)

    def _persist(self, keys: Iterable[int]) -> None:
        if self._state is None:
            return
        generated, created = [], []
        for key in sorted(set(keys)):
            if key < self.n:
                msg = None
                if self._msg_value[key]:
                    msg = [self._msg_value[key] == _MSG_TRUE, self._msg_seq[key]]
                generated.append((key, json.dumps({"c": self._changes.get(key), "m": msg})))
            else:
                created.append((key - self.n, self._created[key - self.n].to_json()))
        self._state.save_profiles(generated, created, self._seq)

    # ---- lookups -----------------------------------------------------------------------------
    def key_of_identity(self, identity: str) -> int | None:
        i = self.ds.index_of_identity(identity)
        if i is not None:
            return i
        ordinal = self._created_by_identity.get(identity)
        return None if ordinal is None else self.n + ordinal

    def key_of_object_id(self, object_id: str) -> int | None:
        i = self.ds.index_of_object_id(object_id)
        if i is not None:
            return i
        ordinal = self._created_by_object.get(object_id)
        return None if ordinal is None else self.n + ordinal

    def keys_of_email(self, address: str) -> list[int]:
        """Every profile whose current address normalises to the same as `address`, by key."""
        target = normalise_email(address)
        if target is None:
            return []
        with self.lock:
            candidates = set(self.ds.indices_of_email(target)) | self._email_moves.get(target, set())
            return sorted(k for k in candidates if normalise_email(self._email_of(k)) == target)

    def _email_of(self, key: int) -> str | None:
        if key < self.n:
            change = self._changes.get(key)
            if change is not None and "Email" in change:
                return change["Email"]
            return self.ds.email(key)
        return self._created[key - self.n].data.get("Email")

    # ---- reads -------------------------------------------------------------------------------
    def profile_data(self, key: int) -> dict[str, Any]:
        """The profile's properties as CleverTap holds them now (a fresh dict)."""
        if key < self.n:
            data = self.ds.profile_data(key)
            change = self._changes.get(key)
            if change:
                data.update(change)
            stored = self._msg_value[key]
            own = (stored == _MSG_TRUE, self._msg_seq[key]) if stored else (data["MSG-email"], 0)
        else:
            created = self._created[key - self.n]
            data = dict(created.data)
            own = created.msg or (True, 0)
        subscribed, seq = own
        if self._addresses:
            address = normalise_email(data.get("Email"))
            if address is not None:
                override = self._addresses.get(address)
                if override is not None and override[1] > seq:
                    subscribed = override[0]
        data["MSG-email"] = subscribed
        return data

    def record(self, key: int, *, profile: bool = True, events: bool = True, app: bool = True
               ) -> dict[str, Any]:
        """The record shape of profile.json and of cursor pages."""
        if key < self.n:
            identity, object_id = self.ds.identity(key), self.ds.object_id(key)
            platform, event_summary = self.ds.platform_name(key), self.ds.events(key)
        else:
            created = self._created[key - self.n]
            identity, object_id, platform, event_summary = (
                created.identity, created.object_id, created.platform, {})
        data = self.profile_data(key)
        record: dict[str, Any] = {}
        email, name = data.get("Email"), data.get("Name")
        if identity is not None:
            record["identity"] = identity
        if email is not None:
            record["email"] = email
        if name is not None:
            record["name"] = name
        record["all_identities"] = [x for x in (identity, email) if x]
        if profile:
            record["profileData"] = data
        if app:
            record["platformInfo"] = [{"platform": platform, "objectId": object_id}]
        if events:
            record["events"] = event_summary
        return record

    def all_keys(self) -> np.ndarray:
        return np.arange(self.n + len(self._created), dtype=np.int64)

    def event_keys(self, event: str, from_ago: int, to_ago: int) -> np.ndarray:
        # Profiles created by upload have no events (uploaded event records are only counted).
        return self.ds.event_members(event, from_ago, to_ago).astype(np.int64)

    @property
    def created_count(self) -> int:
        return len(self._created)

    # ---- writes ------------------------------------------------------------------------------
    def apply(self, changes: list[tuple[int, ProfileChange]], max_custom_keys: int) -> tuple[int, list[int]]:
        """Upsert validated records (an unknown identity or objectId creates a profile).

        `changes` pairs each record's number with its change. Returns how many profiles were
        created and the numbers of the records refused because the profile would end up with
        more than `max_custom_keys` custom properties.
        """
        touched: list[int] = []
        refused: list[int] = []
        created_before = len(self._created)
        with self.lock:
            for number, change in changes:
                key = self._locate(change)
                if change.custom_keys and self._custom_count(key, change.custom_keys) > max_custom_keys:
                    refused.append(number)
                    continue
                if key is None:
                    key = self._create(change)
                self._seq += 1
                if key < self.n:
                    if change.data:
                        self._changes.setdefault(key, {}).update(change.data)
                    if change.msg_email is not None:
                        self._msg_value[key] = _MSG_TRUE if change.msg_email else _MSG_FALSE
                        self._msg_seq[key] = self._seq
                else:
                    created = self._created[key - self.n]
                    created.data.update(change.data)
                    if change.msg_email is not None:
                        created.msg = (change.msg_email, self._seq)
                if "Email" in change.data:
                    self._note_email(key, change.data)
                touched.append(key)
            self._persist(touched)
        return len(self._created) - created_before, refused

    def _custom_count(self, key: int | None, new_keys: frozenset[str]) -> int:
        if key is None:
            return len(new_keys)
        if key < self.n:
            held = self._changes.get(key, {}).keys() | _GENERATED_CUSTOM_KEYS
        else:
            held = self._created[key - self.n].data.keys()
        if len(held) + len(new_keys) <= 256:  # cheap bound first: the usual case
            return len(held) + len(new_keys)
        return len({k for k in held if _is_custom(k)} | new_keys)

    def _locate(self, change: ProfileChange) -> int | None:
        key = None if change.identity is None else self.key_of_identity(change.identity)
        if key is None and change.object_id is not None:
            key = self.key_of_object_id(change.object_id)
        return key

    def _create(self, change: ProfileChange) -> int:
        object_id = change.object_id or ("__" + _stable_hex(f"{self.ds.seed}:{change.identity}"))
        self._add_created(CreatedProfile(change.identity, object_id))
        return self.n + len(self._created) - 1

    def _add_created(self, profile: CreatedProfile) -> None:
        ordinal = len(self._created)
        self._created.append(profile)
        if profile.identity is not None:
            self._created_by_identity[profile.identity] = ordinal
        self._created_by_object[profile.object_id] = ordinal

    def _note_email(self, key: int, data: dict[str, Any]) -> None:
        address = normalise_email(data.get("Email"))
        if address is not None:
            self._email_moves.setdefault(address, set()).add(key)

    def set_address_subscription(self, changes: list[tuple[str, bool]]) -> None:
        """Address-level subscribe/unsubscribe: every profile with that normalised address follows."""
        rows = []
        with self.lock:
            for address, subscribed in changes:
                self._seq += 1
                self._addresses[address] = (subscribed, self._seq)
                rows.append((address, int(subscribed), self._seq))
            if self._state is not None:
                self._state.save_addresses(rows, self._seq)


def _stable_hex(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


EVENT_NAMES = frozenset(EVENTS)
