"""Verify: see what a run costs before spending anything, start it, follow the jobs (three at a time)."""
from dataclasses import replace

import streamlit as st

from lib import jobs, ui
from lib.clearout import ClearoutError
from lib.verification import VerificationError, VerificationPlan, plan_verification, unfinished_job

ui.page_header("Verify", "Verify a list with Clearout: see the cost first, then follow the job "
                         "(Clearout verifies three lists at a time; more wait in line).")
rt = ui.runtime()


@st.cache_data(ttl=60, max_entries=16, show_spinner="Counting addresses…")
def cost(list_id: int, updated_at: str, cache_days: int, cache_rows: int, jobs_done: int) -> VerificationPlan:
    plan = plan_verification(rt.store, list_id, cache_days=cache_days)
    return replace(plan, upload=plan.upload.iloc[:0])  # the counts only: a million addresses stay out


if waiting := jobs.waiting_reason(rt):
    st.warning(waiting, icon=":material/key:")
    ui.link("pages/connect.py", "Go to Connect")

lists = rt.store.list_lists(rt.mode, states=("ready",))
if not lists:
    st.info("No list is ready to verify yet. Create one from a CSV file or a CleverTap audience on "
            "the Lists page, then come back here.", icon=":material/info:")
    ui.link("pages/lists.py", "Go to Lists")
else:
    by_id = {record.id: record for record in lists}
    st.session_state.setdefault("verify_list", lists[0].id)
    if st.session_state["verify_list"] not in by_id:
        st.session_state["verify_list"] = lists[0].id
    list_id = st.selectbox("List to verify", options=list(by_id), key="verify_list",
                           format_func=lambda i: f"{by_id[i].name} · {by_id[i].rows:,} rows")
    record = by_id[list_id]
    if last := rt.store.latest_done_job(list_id):
        st.caption(f"Last verified {ui.timestamp(last.finished_at)}: its verdicts are on Results. "
                   "Verifying again reuses fresh verdicts for free and asks Clearout again only about the "
                   "rest (Unknown results, older verdicts, new addresses).")

    try:
        plan = cost(list_id, record.updated_at, rt.settings.verify_cache_days, rt.store.cache_size(),
                    len(rt.store.list_jobs(states=("done",), mode=rt.mode)))
    except (VerificationError, OSError) as exc:
        st.error(str(exc))
        st.stop()
    balance = ui.clearout_balance()
    reserved = rt.store.reserved_credits(rt.mode)

    st.subheader("What this run costs")
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("Distinct addresses", f"{plan.unique_emails:,}", help="Distinct addresses after trimming and "
              "lower-casing, including those that fail the syntax check: one verdict each. Duplicates and empty "
              "cells are not counted (My lists counts only the valid ones).")
    c2.metric("Free: fresh in cache", f"{plan.cached:,}", help=f"Verified in the last "
              f"{rt.settings.verify_cache_days} days (Unknown results are never reused)")
    c3.metric("Free: syntax errors", f"{plan.syntax_invalid:,}", help="Cannot be delivered: marked "
              "Invalid (\"Syntax error\") without asking Clearout")
    c4.metric("Credits needed", f"{plan.to_verify:,}", help="At most: Clearout does not charge Unknown "
              "results. Addresses whose last verdict was Unknown are verified again.")
    c5.metric("Credits available", "—" if balance.available is None else f"{balance.available:,}",
              help=f"Your Clearout balance; {reserved:,} of it held for jobs already started" if reserved
              else "Your Clearout balance")

    short, running = None, unfinished_job(rt.store, list_id)
    if running is not None:
        st.info(f"{record.name} is being verified now ({jobs.describe(running, record.name).label}): "
                "follow it below.", icon=":material/hourglass_top:")
    elif plan.to_verify and balance.available is None:
        st.warning(f"The Clearout balance is unknown: {balance.message}", icon=":material/warning:")
    elif plan.to_verify and plan.to_verify > balance.available - reserved:
        short = plan.to_verify - (balance.available - reserved)
        st.error(f"Not enough credits: this run needs {plan.to_verify:,} and "
                 f"{balance.available - reserved:,} are available. Buy at least {short:,} more credits "
                 "at clearout.io, then come back: nothing has been started or charged.",
                 icon=":material/credit_card_off:")
    elif not plan.to_verify:
        st.success("Nothing to buy: every address has a fresh verdict or fails the syntax check. "
                   "Starting finishes at once, without using Clearout.", icon=":material/check_circle:")

    blocked = running is not None or (bool(plan.to_verify) and (short is not None or balance.available is None))
    again = last is not None  # then the verdicts are on Results already: spending more is not the next step
    if st.button(f"{'Verify again' if again else 'Start verification'} ({plan.to_verify:,} "
                 f"credit{'' if plan.to_verify == 1 else 's'})",
                 key="verify_start", type="secondary" if again else "primary",
                 disabled=blocked or plan.unique_emails == 0):
        try:
            job = jobs.start(rt, list_id)
        except (VerificationError, ClearoutError) as exc:
            st.error(str(exc))
        else:
            ui.clearout_balance(refresh=True)
            cost.clear()
            st.session_state["verify_flash"] = (
                f"{record.name} is verified: see its verdicts on Results." if job.state == "done"
                else f"Started: {record.name} is queued. Follow it below.")
            st.rerun()  # shows the list as in flight, with Start disabled
    if flash := st.session_state.pop("verify_flash", None):
        st.success(flash, icon=":material/rocket_launch:")

st.subheader("Verification jobs")


@st.fragment(run_every=2)
def job_panel() -> None:
    views = jobs.job_views(rt.store, rt.mode, limit=15)
    ui.rerun_when_jobs_finish(views, "verify_in_flight")
    if not views:
        st.caption("No verification yet: pick a list above and start one." if lists else
                   "No verification yet: add a list on Lists first.")
        return
    ui.job_rows(views, "verify")
    if any(v.job.state == "done" for v in views):
        ui.link("pages/results.py", "See the verdicts on Results")


job_panel()
