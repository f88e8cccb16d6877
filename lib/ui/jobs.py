"""Verification job rows (Verify and Home): list, state, progress, credits, and a Cancel button."""
from __future__ import annotations

from typing import Any

import streamlit as st

from lib.access import OPERATOR
from lib.errors import UserError
from lib.figures import plural
from lib.ui import current_user, escape_md, flash, runtime
from lib.verification import start, views
from lib.verification.views import JobView


def job_rows(items: list[JobView], key_prefix: str) -> None:
    operator = current_user().can(OPERATOR)  # decisions and Cancel spend or save credits
    for view in items:
        with st.container(border=True):
            left, right = st.columns([5, 1], vertical_alignment="center")
            left.markdown(f"**{escape_md(view.list_name)}** · {view.label}")
            if view.job.state in ("uploading", "verifying", "downloading", "parts"):
                left.progress(view.progress)
            (left.error if view.job.state == "failed" else left.caption)(escape_md(view.detail))
            if view.activity:
                left.caption(f":material/hourglass_top: {escape_md(view.activity)}")
            if view.needs_decision and operator:
                decide(view, left, key_prefix)
            elif view.needs_decision:
                left.caption(":material/lock: An operator of this app decides about this upload.")
            if view.parts:
                parts(view, left, key_prefix, operator)
            if view.cancellable and operator:
                # A callback: it runs before the rerun that the click starts, which then shows the result.
                right.button("Cancel", key=f"{key_prefix}_cancel_{view.job.id}", on_click=_cancel,
                             args=(view.job.id, f"{key_prefix}_flash_{view.job.id}"),
                             help="Stop this verification; rows Clearout has not verified yet are free")
            flash(f"{key_prefix}_flash_{view.job.id}")


def parts(view: JobView, where: Any, key_prefix: str, operator: bool) -> None:
    """A job sent in parts: each part's state, the decisions a part waits for, and a retry of the
    failed parts alone (operators only)."""
    for part in view.parts:
        if part.needs_decision and operator:
            where.markdown(f"**{part.list_name}** · {part.label}")
            decide(part, where, key_prefix)
    if view.retryable_parts and operator:
        where.button(f"Retry the failed {plural(view.retryable_parts, 'part')}",
                     key=f"{key_prefix}_retry_{view.job.id}", type="primary", on_click=_retry,
                     args=(view.job.id, f"{key_prefix}_flash_{view.job.id}"),
                     help="Only the failed parts go again; a part Clearout already holds is fetched, not bought again")
        flash(f"{key_prefix}_flash_{view.job.id}")
    with where.expander(f"{len(view.parts)} parts"):
        for part in view.parts:
            st.caption(f"{part.list_name} · {part.label} · {escape_md(part.detail)}")


def _retry(job_id: int, flash_key: str) -> None:
    try:
        start.retry_failed_parts(runtime().store, job_id, user=current_user())
    except UserError as exc:
        st.session_state[flash_key] = ("error", escape_md(exc.message))


def decide(view: JobView, where: Any, key_prefix: str) -> None:
    """An upload whose answer never came: attach the list Clearout holds (the default), or upload
    again only with a confirmation that names the credits at risk."""
    job = view.job
    where.warning(escape_md(view.decision or ""), icon=":material/help:")
    where.text_input("Clearout list id", key=f"{key_prefix}_attach_{job.id}", placeholder="5f8a1c2b3d4e5f6a7b8c9d0e",
                     help="app.clearout.io → Email Verifier: open the list, its id is in the address bar")
    where.button("Use this Clearout list", key=f"{key_prefix}_attach_go_{job.id}", type="primary",
                 on_click=_attach, args=(job.id, f"{key_prefix}_attach_{job.id}", f"{key_prefix}_flash_{job.id}"))
    with where.expander("It is not on Clearout: upload again"):
        ticked = st.checkbox(f"Upload again, knowing that up to {plural(job.to_verify, 'credit')} may be charged "
                             "a second time", key=f"{key_prefix}_again_ok_{job.id}")
        st.button(f"Upload again ({plural(job.to_verify, 'credit')} at risk)", key=f"{key_prefix}_again_{job.id}",
                  disabled=not ticked, on_click=_again, args=(job.id, job.to_verify, f"{key_prefix}_flash_{job.id}"))


def _attach(job_id: int, field: str, flash_key: str) -> None:
    try:
        start.attach_list_id(runtime().store, job_id, st.session_state.get(field, ""), user=current_user())
    except UserError as exc:
        st.session_state[flash_key] = ("error", escape_md(exc.message))


def _again(job_id: int, credits: int, flash_key: str) -> None:
    try:
        start.confirm_upload_again(runtime().store, job_id, credits_at_risk=credits, user=current_user())
    except UserError as exc:
        st.session_state[flash_key] = ("error", escape_md(exc.message))


def _cancel(job_id: int, flash_key: str) -> None:
    try:
        views.cancel(runtime().store, job_id, user=current_user())
    except UserError as exc:
        st.session_state[flash_key] = ("error", escape_md(exc.message))


def rerun_when_jobs_finish(items: list[JobView], key: str) -> None:
    """From a polling fragment: rerun the whole page once a job it showed in flight has finished,
    so the figures outside the fragment (cost, balance, steps) catch up."""
    in_flight = {view.job.id for view in items if not view.job.is_final}
    before = st.session_state.get(key)
    st.session_state[key] = in_flight
    if before and before - in_flight:
        st.rerun()

