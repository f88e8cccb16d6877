"""Home: where to start, jobs in flight and recent lists at a glance, and the Clearout credits."""
import streamlit as st

from lib import guide, jobs, ui

ui.page_header("Home", "Keep CleverTap email audiences clean with Clearout: connect, pick a list, "
                       "verify it, review the verdicts, write them back.")
rt = ui.runtime()

steps = guide.steps(rt)
upcoming = guide.next_step(steps)
main, side = st.columns([3, 1])
with main:
    st.subheader("Five steps")
    for step in steps:
        mark = (":green[:material/check_circle:]" if step.done else
                ":blue[:material/arrow_forward:]" if step is upcoming else ":gray[:material/radio_button_unchecked:]")
        left, right = st.columns([1, 3], vertical_alignment="center")
        left.page_link(step.page, label=f"{step.number}. {step.title}", icon=step.icon)
        right.markdown(f"{mark} {step.status}")
    if upcoming is not None:
        st.info(f"**Next: {upcoming.title}.** {upcoming.status}.", icon=":material/arrow_forward:")
with side:
    balance = ui.clearout_balance()
    st.metric("Clearout credits", "—" if balance.available is None else f"{balance.available:,}")
    if balance.message:
        st.caption(balance.message)

st.subheader("Verifications in progress")


@st.fragment(run_every=2)
def in_flight() -> None:
    if waiting := jobs.waiting_reason(rt):
        st.warning(waiting, icon=":material/key:")
    views = jobs.job_views(rt.store, rt.mode, unfinished_only=True)
    ui.rerun_when_jobs_finish(views, "home_in_flight")
    if views:
        ui.job_rows(views, "home")
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
                 column_config=ui.counts("Rows", "Valid unique addresses"))
