"""Home: where to start, jobs in flight and recent lists at a glance, and the Clearout credits."""
import streamlit as st

from lib import guide, ui
from lib.ui.jobs import job_rows, rerun_when_jobs_finish
from lib.verification import views

rt = ui.page_header("Home", "Keep CleverTap email audiences clean with Clearout: connect, pick a list, "
                            "verify it, review the verdicts, write them back.")
steps = guide.steps(rt.store, rt.mode, has_token=rt.clients.has_clearout_token())
upcoming = guide.next_step(steps)
main, side = st.columns([3, 1])
with main:
    st.subheader("Five steps")
    for step in steps:
        mark = (":green[:material/check_circle:]" if step.done else
                ":blue[:material/arrow_forward:]" if step is upcoming else ":gray[:material/radio_button_unchecked:]")
        left, right = st.columns([1, 3], vertical_alignment="center")
        left.page_link(step.page, label=f"{step.number}. {step.title}", icon=step.icon)
        right.markdown(f"{mark} {ui.escape_md(step.status)}")
    if upcoming is not None:
        st.info(f"**Next: {upcoming.title}.** {ui.escape_md(upcoming.status)}.", icon=":material/arrow_forward:")
with side:
    balance = ui.clearout_balance()
    ui.big_metric("Clearout credits", ui.balance_text(balance))
    if balance.message:
        st.caption(ui.escape_md(balance.message))

st.subheader("Verifications in progress")


@st.fragment(run_every=2)
def in_flight() -> None:
    if waiting := views.waiting_reason(rt.store, rt.mode, has_token=rt.clients.has_clearout_token()):
        st.warning(ui.escape_md(waiting), icon=":material/key:")
    items = views.job_views(rt.store, rt.mode, unfinished_only=True)
    rerun_when_jobs_finish(items, "home_in_flight")
    if items:
        job_rows(items, "home")
    else:
        st.caption("Nothing is being verified right now. Start a verification on the Verify page.")


in_flight()

st.subheader("Recent lists")
recent = guide.recent_lists(rt.store, rt.mode)
if recent.empty:
    st.caption("No lists yet: create one from a CSV file or a CleverTap audience on the Lists page.")
    ui.link("pages/lists.py", "Create a list")
else:
    st.dataframe(recent, hide_index=True, key="home_recent_lists",
                 column_config=ui.counts("Rows", "Distinct addresses"))
