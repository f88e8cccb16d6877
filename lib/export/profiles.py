"""Reading the profiles an export changed, by the key each change was sent with."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from collections.abc import Sequence

from lib import activity
from lib.clevertap import MAX_READ_CONCURRENCY, CleverTapClient, Profile
from lib.export.plan import KEY_EMAIL, KEY_IDENTITY


def read_profile(client: CleverTapClient, key_type: str, key_value: str) -> Profile | None:
    """The profile a change addresses, by the same key the change was sent with."""
    if key_type == KEY_IDENTITY:
        return client.get_profile(identity=key_value)
    if key_type == KEY_EMAIL:
        return client.get_profile(email=key_value)
    return client.get_profile(object_id=key_value)


def read_profiles(client: CleverTapClient, keys: Sequence[tuple[str, str]], *,
                  step: str | None = None) -> list[Profile | None]:
    """Profiles for (key_type, key_value) pairs, MAX_READ_CONCURRENCY at a time, in order.

    With `step`, how many are read so far is told to the work's activity (lib.activity) under that
    text: a few hundred reads take half a minute, and the page says how far they are.
    """
    if not keys:
        return []
    done = [0]
    lock = threading.Lock()

    def read(key: tuple[str, str]) -> Profile | None:
        profile = read_profile(client, *key)
        if step is not None:
            with lock:
                done[0] += 1
                count = done[0]
            activity.step(step, count, len(keys))
        return profile

    if step is not None:
        activity.step(step, 0, len(keys))
    with ThreadPoolExecutor(max_workers=MAX_READ_CONCURRENCY, thread_name_prefix="clevertap-read") as pool:
        return list(pool.map(activity.carry(read), keys))
