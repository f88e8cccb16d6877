"""Verify: see what a run costs before spending anything, start it, follow the jobs (three at a time)."""
import streamlit as st

from lib import ui
from lib.errors import UserError
from lib.ui.jobs import job_rows, rerun_when_jobs_finish
from lib.ui.verify import cost, current_cost
from lib.verification import views
from lib.verification.start import start_verification, unfinished_job

rt = ui.page_header("Verify", "Verify a list with Clearout: see the cost first, then follow the job "
                              "(Clearout verifies three lists at a time; more wait in line).")
if waiting := views.waiting_reason(rt.store, rt.mode, has_token=rt.clients.has_clearout_token()):
    st.warning(ui.escape_md(waiting), icon=":material/key:")
    ui.link("pages/connect.py", "Go to Connect")

lists = {record.id: record for record in rt.store.list_lists(rt.mode, states=("ready",))}
if not lists:
    st.info("No list is ready to verify yet. Create one from a CSV file or a CleverTap audience on "
            "the Lists page, then come back here.", icon=":material/info:")
    ui.link("pages/lists.py", "Go to Lists")
else:
    if st.session_state.get("verify_list") not in lists:
        st.session_state["verify_list"] = next(iter(lists))
    list_id = st.selectbox("List to verify", options=list(lists), key="verify_list",
                           format_func=lambda i: f"{lists[i].name} · {lists[i].rows:,} rows")
    record = lists[list_id]
    if last := rt.store.latest_done_job(list_id):
        st.caption(f"Last verified {ui.timestamp(last.finished_at)}: its verdicts are on Results. Verifying again "
                   "reuses fresh verdicts for free and asks Clearout again only about the rest (Unknown results, "
                   "older verdicts, new addresses).")
    try:
        plan = current_cost(list_id, record.updated_at)
    except UserError as exc:
        ui.error(exc)
        st.stop()
    balance, reserved = ui.clearout_balance(), rt.store.reserved_credits(rt.mode)
    st.subheader("What this run costs")
    ui.metric_row(views.cost_metrics(plan, balance, reserved, rt.settings.verify_cache_days))
    ui.glossary()
    ready = views.start_readiness(plan, balance, reserved, list_name=record.name,
                                  running=unfinished_job(rt.store, list_id), verified_before=last is not None,
                                  part_rows=rt.settings.verify_part_rows)
    ui.say(ready.tone, ready.message)
    if ui.allowed("operator", "Verifying (it spends Clearout credits)") and st.button(
            ready.label, key="verify_start", type="primary" if ready.primary else "secondary", disabled=ready.disabled):
        try:
            start_verification(rt.store, plan, available_credits=balance.available, mode=rt.mode,
                               user=ui.current_user())
        except UserError as exc:
            ui.error(exc)
        else:
            cost.clear()
            started = f"Started: {ui.escape_md(record.name)} is queued. Follow it below."
            st.session_state["verify_flash"] = ("success", started)
            st.rerun()  # shows the list as in flight, with Start disabled
    ui.flash("verify_flash")

st.subheader("Verification jobs")


@st.fragment(run_every=2)
def job_panel() -> None:
    items = views.job_views(rt.store, rt.mode, limit=15)
    rerun_when_jobs_finish(items, "verify_in_flight")
    if not items:
        st.caption("No verification yet: pick a list above and start one." if lists else
                   "No verification yet: add a list on Lists first.")
        return
    job_rows(items, "verify")
    if any(v.job.state == "done" for v in items):
        ui.link("pages/results.py", "See the verdicts on Results")


job_panel()
