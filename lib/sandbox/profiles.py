"""Server-side profiles: the generated dataset plus an overlay of uploads and subscription changes.

Profiles are addressed by an int key: 0..N-1 for generated ones, N+k for the k-th profile an
upload created. MSG-email is resolved at read time from two sources, the latest change winning:
the profile's own value (dataset default or an upload) and an address-level change made through
/1/subscribe (which applies to every profile sharing the normalised address, present or future).

Uploads of a million profiles are the sandbox's heaviest write, so the overlay is compact: MSG-email
lives in flat arrays, property changes are interned dicts shared by every profile that received the
same values, and a created profile costs an identity string and a few array slots.
"""
from __future__ import annotations

import hashlib
import json
import threading
from array import array
from collections.abc import Iterable
from typing import Any, NamedTuple

import numpy as np

from lib.emails import normalise_email
from lib.sandbox.dataset import Dataset
from lib.sandbox.state import StateStore

_MSG_UNSET, _MSG_FALSE, _MSG_TRUE = 0, 1, 2
# CleverTap's own profile properties; everything else counts towards the 256 custom keys.
SYSTEM_KEYS = frozenset({"Name", "Email", "Phone", "Gender", "DOB", "Education", "Employed",
                         "Married", "Age", "Photo", "Identity", "tz"})
_GENERATED_CUSTOM_KEYS = frozenset({"Customer Type", "City"})
_MAX_INTERNED = 100_000
_CREATED_PLATFORM = "Web"


def _is_custom(key: str) -> bool:
    return key not in SYSTEM_KEYS and not key.startswith("MSG-")


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
        # Per key (generated and created): MSG-email set by an upload, and when (a sequence number).
        self._msg_value = bytearray(self.n)
        self._msg_seq = array("Q", bytes(8 * self.n))
        self._data: dict[int, dict[str, Any]] = {}  # key -> uploaded properties (shared, never mutated)
        self._interned: dict[tuple[tuple[Any, ...], tuple[type, ...]], dict[str, Any]] = {}
        self._created_identity: list[str | None] = []
        self._created_by_identity: dict[str, int] = {}
        self._created_object: dict[int, str] = {}      # objectIds given by uploads
        self._created_by_object: dict[str, int] = {}
        self._derived_upto = 0                          # created profiles whose derived objectId is indexed
        self._addresses: dict[str, tuple[bool, int]] = {}
        self._email_moves: dict[str, set[int]] = {}   # normalised address -> keys given it by upload
        self._seq = 0
        if state is not None:
            self._load(state)

    # ---- persistence -------------------------------------------------------------------------
    def _load(self, state: StateStore) -> None:
        self._seq = int(state.get_meta("seq") or 0)
        for idx, text in state.load_generated():
            if idx < self.n:
                self._restore(idx, json.loads(text))
        for _ordinal, text in state.load_created():
            raw = json.loads(text)
            key = self._add_created(raw.get("identity"), raw.get("objectId"))
            self._restore(key, raw)
        for email, subscribed, seq in state.load_addresses():
            self._addresses[email] = (bool(subscribed), seq)

    def _restore(self, key: int, raw: dict[str, Any]) -> None:
        if raw.get("c"):
            self._data[key] = self._intern(raw["c"])
            self._note_email(key, raw["c"])
        if raw.get("m"):
            value, seq = raw["m"]
            self._msg_value[key] = _MSG_TRUE if value else _MSG_FALSE
            self._msg_seq[key] = seq

    def _persist(self, keys: Iterable[int]) -> None:
        if self._state is None:
            return
        generated, created = [], []
        for key in sorted(set(keys)):
            msg = [self._msg_value[key] == _MSG_TRUE, self._msg_seq[key]] if self._msg_value[key] else None
            row: dict[str, Any] = {"c": self._data.get(key), "m": msg}
            if key < self.n:
                generated.append((key, json.dumps(row)))
            else:
                ordinal = key - self.n
                row.update(identity=self._created_identity[ordinal], objectId=self._created_object.get(ordinal))
                created.append((ordinal, json.dumps(row)))
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
        if self._derived_upto < len(self._created_identity):
            with self.lock:  # index the derived objectIds of profiles created since the last lookup
                for ordinal in range(self._derived_upto, len(self._created_identity)):
                    if ordinal not in self._created_object:
                        self._created_by_object.setdefault(self._object_id_of(ordinal), ordinal)
                self._derived_upto = len(self._created_identity)
        found = self._created_by_object.get(object_id)
        return None if found is None else self.n + found

    def _object_id_of(self, ordinal: int) -> str:
        given = self._created_object.get(ordinal)
        if given is not None:
            return given
        return "__" + hashlib.blake2b(f"{self.ds.seed}:{self._created_identity[ordinal]}".encode(),
                                      digest_size=16).hexdigest()

    def keys_of_email(self, address: str) -> list[int]:
        """Every profile whose current address normalises to the same as `address`, by key."""
        target = normalise_email(address)
        if target is None:
            return []
        with self.lock:
            candidates = set(self.ds.indices_of_email(target)) | self._email_moves.get(target, set())
            return sorted(k for k in candidates if normalise_email(self._email_of(k)) == target)

    def _email_of(self, key: int) -> str | None:
        change = self._data.get(key)
        if change is not None and "Email" in change:
            email: str | None = change["Email"]
            return email
        return self.ds.email(key) if key < self.n else None

    # ---- reads -------------------------------------------------------------------------------
    def profile_data(self, key: int) -> dict[str, Any]:
        """The profile's properties as CleverTap holds them now (a fresh dict)."""
        if key < self.n:
            data = self.ds.profile_data(key)
            default = data["MSG-email"]
        else:
            data, default = {}, True
        change = self._data.get(key)
        if change:
            data.update(change)
        stored = self._msg_value[key]
        subscribed, seq = (stored == _MSG_TRUE, self._msg_seq[key]) if stored else (default, 0)
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
            ordinal = key - self.n
            identity, object_id = self._created_identity[ordinal], self._object_id_of(ordinal)
            platform, event_summary = _CREATED_PLATFORM, {}
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
        return np.arange(self.n + len(self._created_identity), dtype=np.int64)

    def event_keys(self, event: str, from_ago: int, to_ago: int) -> np.ndarray:
        # Profiles created by upload have no events (uploaded event records are only counted).
        return self.ds.event_members(event, from_ago, to_ago).astype(np.int64)

    @property
    def created_count(self) -> int:
        return len(self._created_identity)

    # ---- writes ------------------------------------------------------------------------------
    def apply(self, changes: list[tuple[int, ProfileChange]], max_custom_keys: int) -> tuple[int, list[int]]:
        """Upsert validated records (an unknown identity or objectId creates a profile).

        `changes` pairs each record's number with its change. Returns how many profiles were
        created and the numbers of the records refused because the profile would end up with
        more than `max_custom_keys` custom properties.
        """
        touched: list[int] = []
        refused: list[int] = []
        data_of, msg_value, msg_seq = self._data, self._msg_value, self._msg_seq
        index_of_identity, created_by_identity, n = self.ds.index_of_identity, self._created_by_identity, self.n
        # Records of one call mostly share one (already validated, shared) data dict: intern it once.
        last_data: dict[str, Any] | None = None
        last_interned: dict[str, Any] = {}
        with self.lock:
            created_before = len(self._created_identity)
            seq = self._seq
            try:
                for number, change in changes:
                    identity = change.identity
                    if identity is not None:  # key_of_identity, inlined: it runs for every record
                        key = index_of_identity(identity)
                        if key is None:
                            ordinal = created_by_identity.get(identity)
                            if ordinal is not None:
                                key = n + ordinal
                        if key is None and change.object_id is not None:
                            key = self.key_of_object_id(change.object_id)
                    else:
                        key = self._locate(change)
                    custom = change.custom_keys
                    if custom and (len(custom) if key is None else self._custom_count(key, custom)) > max_custom_keys:
                        refused.append(number)
                        continue
                    if key is None:
                        key = self._add_created(identity, change.object_id)
                    seq += 1
                    data = change.data
                    if data:
                        old = data_of.get(key)
                        if old is None:
                            if data is not last_data:
                                last_data, last_interned = data, self._intern(data)
                            data_of[key] = last_interned
                        elif not (old.items() >= data.items()  # a repeat changes nothing (1 == True)
                                  and all(type(old[k]) is type(v) for k, v in data.items())):
                            data_of[key] = self._intern({**old, **data})
                        if "Email" in data:
                            self._note_email(key, data)
                    if change.msg_email is not None:
                        msg_value[key] = _MSG_TRUE if change.msg_email else _MSG_FALSE
                        msg_seq[key] = seq
                    touched.append(key)
            finally:
                self._seq = seq
            self._persist(touched)
            return len(self._created_identity) - created_before, refused

    def _intern(self, data: dict[str, Any]) -> dict[str, Any]:
        """One shared dict per distinct set of values (a million "MSG-email + run tag" uploads
        then cost one dict, not a million). Types are part of the signature: 1 == True in Python."""
        try:
            signature = (tuple(data.items()), tuple(map(type, data.values())))
            shared = self._interned.get(signature)
        except TypeError:  # a list value: unhashable, keep it as is
            return data
        if shared is not None:
            return shared
        if len(self._interned) < _MAX_INTERNED:
            self._interned[signature] = data
        return data

    def _custom_count(self, key: int | None, new_keys: frozenset[str]) -> int:
        if key is None:
            return len(new_keys)
        held: set[str] = set(self._data.get(key, {}).keys())
        if key < self.n:
            held |= _GENERATED_CUSTOM_KEYS
        if len(held) + len(new_keys) <= 256:  # cheap bound first: the usual case
            return len(held) + len(new_keys)
        return len({k for k in held if _is_custom(k)} | new_keys)

    def _locate(self, change: ProfileChange) -> int | None:
        key = None if change.identity is None else self.key_of_identity(change.identity)
        if key is None and change.object_id is not None:
            key = self.key_of_object_id(change.object_id)
        return key

    def _add_created(self, identity: str | None, object_id: str | None) -> int:
        ordinal = len(self._created_identity)
        self._created_identity.append(identity)
        if identity is not None:
            self._created_by_identity[identity] = ordinal
        if object_id is not None or identity is None:
            given = object_id or "__" + hashlib.blake2b(f"{self.ds.seed}:anon:{ordinal}".encode(),
                                                        digest_size=16).hexdigest()
            self._created_object[ordinal] = given
            self._created_by_object[given] = ordinal
        self._msg_value.append(_MSG_UNSET)
        self._msg_seq.append(0)
        return self.n + ordinal

    def _note_email(self, key: int, data: dict[str, Any]) -> None:
        address = normalise_email(data.get("Email"))
        if address is not None:
            self._email_moves.setdefault(address, set()).add(key)

    def address_subscription(self, address: str) -> bool | None:
        """The latest address-level change of `address` (True: resubscribed), None when it had none.

        Kept for addresses no profile has too, and applied to profiles created later with it. No API
        route reads it: see PROFILE_NOT_FOUND in clevertap_api.py. Tests do (Sandbox.address_subscription).
        """
        target = normalise_email(address)
        with self.lock:
            found = self._addresses.get(target) if target is not None else None
        return None if found is None else found[0]

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

