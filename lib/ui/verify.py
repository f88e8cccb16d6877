"""The Verify page's cached price of a run (planning reads the list and the cache)."""
from __future__ import annotations

import streamlit as st

from lib.ui import runtime
from lib.verification.plan import VerificationPlan, plan_verification


@st.cache_data(ttl=60, max_entries=16, show_spinner="Counting addresses…")
def cost(list_id: int, updated_at: str, cache_days: int, cache_rows: int, jobs_done: int) -> VerificationPlan:
    """The counts of a run; the key changes when the list, the cache or the finished jobs do."""
    return plan_verification(runtime().store, list_id, cache_days=cache_days)


def current_cost(list_id: int, updated_at: str) -> VerificationPlan:
    rt = runtime()
    return cost(list_id, updated_at, rt.settings.verify_cache_days, rt.store.cache_size(),
                len(rt.store.list_jobs(states=("done",), mode=rt.mode)))
