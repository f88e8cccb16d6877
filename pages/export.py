"""Export: unsubscribe undeliverable addresses and/or append the Clearout columns in CleverTap, dry run first."""
import streamlit as st

from lib import ui
from lib.export import runs, views
from lib.export.planfile import verified_lists
from lib.ui import exports as widgets

rt = ui.page_header("Export", "Write the verdicts to CleverTap: unsubscribe undeliverable addresses, append the "
                              "Clearout columns to profiles, or both. Always a dry run first.")
lists = {r.id: r for r in verified_lists(rt.store, rt.mode)}
connections = {c.id: c for c in rt.store.list_connections(rt.mode)}
if not lists:
    st.info("No verified list yet: verify a list first, then come back to write its verdicts to CleverTap.",
            icon=":material/info:")
    ui.link("pages/verify.py", "Go to Verify")
    st.stop()
if not connections:
    st.info("No CleverTap project connected yet: connect one, then come back.", icon=":material/info:")
    ui.link("pages/connect.py", "Go to Connect")
    st.stop()

left, right = st.columns(2)
list_id = left.selectbox("Verified list", list(lists), key="export_list",
                         format_func=lambda i: f"{lists[i].name} · {lists[i].rows:,} rows")
connection_id = right.selectbox("CleverTap project", list(connections), key="export_connection",
                                format_func=lambda i: f"{connections[i].name} ({connections[i].account_id}, "
                                                      f"{connections[i].region})")
record, connection = lists[list_id], connections[connection_id]
if waiting := views.waiting_for_passcode(rt.clients, connection):
    st.warning(ui.escape_md(waiting), icon=":material/key:")
if ui.allowed("operator", "Exporting to CleverTap"):
    widgets.dry_run_section(rt, record, connection)

st.subheader("Progress")
shown = runs.latest_run(rt.store, rt.mode)


@st.fragment(run_every=1 if shown is not None and shown.state in ("planned", "running") else None)
def run_panel() -> None:
    run = runs.latest_run(rt.store, rt.mode)
    if run is None:
        st.caption("Nothing sent yet: make a dry run above, check it, then apply.")
        return
    widgets.run_panel(run.id, "export")
    ui.link("pages/history.py", "See every run, its changes and undo on History")
    if shown is None or run.state != shown.state:
        st.rerun()  # the run started or ended: refresh the page (and stop or start polling)


run_panel()
ui.glossary()  # the funnel's words, as on Lists, Verify and Results
