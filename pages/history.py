"""History: every export run, what it changed in CleverTap, the audit log of CRM writes, undo, and who did what."""
import streamlit as st

from lib import ui
from lib.export import views
from lib.ui import exports as widgets

rt = ui.page_header("History", "Every export run: who, when, what it changed in CleverTap, per batch and per "
                               "profile. Undo a run's unsubscribes. Who did what in this app. Nothing here expires.")
runs_tab, people_tab = st.tabs(["Export runs", "Who did what"])
with people_tab:
    widgets.actions_section(rt)
all_runs = rt.store.list_export_runs(mode=rt.mode)
with runs_tab:
    if not all_runs:
        st.info("No export run yet: runs appear here once you apply one on Export.", icon=":material/info:")
        ui.link("pages/export.py", "Go to Export")
        st.stop()
    undone = views.undo_statuses(rt.store, all_runs)  # an undone run says so in the table and the picker
    st.dataframe(views.runs_table(all_runs, undone), key="history_runs", hide_index=True, width="stretch",
                 column_config={"Run": st.column_config.NumberColumn(width="small"),
                                "Kind": st.column_config.TextColumn(width=90),  # "Retry of 12" in full
                                **ui.counts("Records", "Processed", "Unprocessed")})
    by_id = {r.id: r for r in all_runs}
    if (chosen := st.session_state.pop("history_select", None)) in by_id:  # a run this page just started
        st.session_state["history_run"] = chosen
    run_id = st.selectbox("Run", list(by_id), key="history_run",
                          format_func=lambda i: f"Run {i} · {views.KIND_WORDS[by_id[i].kind]} · "
                                                f"{by_id[i].list_name} · {ui.timestamp(by_id[i].created_at)}"
                                                + (f" · {undone[i].word}" if i in undone else ""))
    run = rt.store.export_run(run_id)

    @st.fragment(run_every=2 if run.state in ("planned", "running") else None)
    def run_panel() -> None:
        widgets.run_panel(run_id, "history")
        if rt.store.export_run(run_id).state != run.state:
            st.rerun()  # finished: refresh the tabs below and stop polling

    run_panel()
    st.caption(ui.escape_md(views.policy_line(run)))
    tab_changes, tab_batches, tab_audit, tab_undo = st.tabs(["Profiles changed", "Batches", "Audit log", "Undo"])
with tab_changes:
    st.caption("Every profile of the run with its MSG-email before the run (where known) and its outcome. "
               "First 1,000 shown; the download has all.")
    st.dataframe(views.run_changes(rt.store, run_id, limit=1000), key="history_changes", hide_index=True,
                 width="stretch")
    st.download_button("Download every change (CSV)", key="history_download", file_name=f"run-{run_id}.csv",
                       data=ui.audited(lambda: views.changes_csv(rt.store.export_changes(run_id)),
                                       "download_export_changes", f"run {run_id}: {run.list_name}", run.mode),
                       mime="text/csv", on_click="ignore")
with tab_batches:
    st.dataframe(views.batches_table(rt.store, run_id), key="history_batches", hide_index=True,
                 width="stretch", column_config=ui.counts("Records", "Processed", "Unprocessed"))
with tab_audit:
    only_run = st.toggle("Only this run", value=True, key="history_audit_run")
    st.dataframe(views.audit_table(rt.store, run_id=run_id if only_run else None), key="history_audit",
                 hide_index=True, width="stretch")
with tab_undo:
    if run.kind != "export" or "unsubscribe" not in run.actions or run.state in ("planned", "running"):
        st.caption("Undo applies to a finished export run that unsubscribed profiles. Appended properties are "
                   "not undone: CleverTap cannot delete a property; the next Append overwrites them.")
    elif ui.allowed("operator", "Undoing a run"):
        widgets.undo_panel(run_id)
