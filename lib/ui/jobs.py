"""Verification job rows (Verify and Home): list, state, progress, credits, and a Cancel button."""
from __future__ import annotations

import streamlit as st

from lib.ui import escape_md, runtime
from lib.verification import views
from lib.verification.views import JobView


def job_rows(items: list[JobView], key_prefix: str) -> None:
    for view in items:
        with st.container(border=True):
            left, right = st.columns([5, 1], vertical_alignment="center")
            left.markdown(f"**{escape_md(view.list_name)}** · {view.label}")
            if view.job.state in ("uploading", "verifying", "downloading"):
                left.progress(view.progress)
            (left.error if view.job.state == "failed" else left.caption)(view.detail)
            if view.cancellable:
                # A callback: it runs before the rerun that the click starts, which then shows the result.
                right.button("Cancel", key=f"{key_prefix}_cancel_{view.job.id}", on_click=_cancel,
                             args=(view.job.id,),
                             help="Stop this verification; rows Clearout has not verified yet are free")


def _cancel(job_id: int) -> None:
    views.cancel(runtime().store, job_id)


def rerun_when_jobs_finish(items: list[JobView], key: str) -> None:
    """From a polling fragment: rerun the whole page once a job it showed in flight has finished,
    so the figures outside the fragment (cost, balance, steps) catch up."""
    in_flight = {view.job.id for view in items if not view.job.is_final}
    before = st.session_state.get(key)
    st.session_state[key] = in_flight
    if before and before - in_flight:
        st.rerun()

