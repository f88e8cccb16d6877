"""History: every export run, what it changed in CleverTap, the audit log of CRM writes, and undo."""
import streamlit as st

from lib import export, ui
from lib.clevertap import CleverTapError
from lib.export_plan import changes_csv
from lib.runtime import MissingSecretError

ui.page_header("History", "Every export run: who, when, what it changed in CleverTap, per batch and per "
                          "profile. Undo a run's unsubscribes. Nothing here expires.")
rt = ui.runtime()


@st.cache_resource(ttl=600, max_entries=4, show_spinner="Undo dry run: reading the current state of the profiles…")
def undo_dry_run(data_dir: str, run_id: int, nonce: int) -> export.UndoPlan:
    with export.client_for_run(rt, run_id) as client:
        return export.plan_undo(rt.store, run_id, client)


runs = rt.store.list_export_runs(mode=rt.mode)
if not runs:
    st.info("No export run yet: runs appear here once you apply one on Export.", icon=":material/info:")
    ui.link("pages/export.py", "Go to Export")
    st.stop()

st.dataframe(export.runs_table(runs), key="history_runs", hide_index=True, width="stretch",
             column_config={"Run": st.column_config.NumberColumn(width="small"),
                            "Kind": st.column_config.TextColumn(width=90),  # "Retry of 12" in full
                            **ui.counts("Records", "Processed", "Unprocessed")})
by_id = {r.id: r for r in runs}
if (chosen := st.session_state.pop("history_select", None)) in by_id:  # a run this page just started
    st.session_state["history_run"] = chosen
run_id = st.selectbox("Run", list(by_id), key="history_run",
                      format_func=lambda i: f"Run {i} · {export.KIND_WORDS[by_id[i].kind]} · "
                                            f"{by_id[i].list_name} · {ui.timestamp(by_id[i].created_at)}")


run = rt.store.get_export_run(run_id)


@st.fragment(run_every=2 if run.state in ("planned", "running") else None)
def run_panel() -> None:
    ui.export_run_panel(run_id, "history")
    if rt.store.get_export_run(run_id).state != run.state:
        st.rerun()  # finished: refresh the tabs below and stop polling


run_panel()
policy = run.policy
st.caption(f"Tag **{run.tag}** · policy: {', '.join(policy.get('rules') or []) or '-'} · "
           f"appended: {', '.join(n for _, n in policy.get('properties') or []) or '-'} · "
           f"{'per profile (/1/upload)' if run.method == 'upload' else 'per address (/1/subscribe)'}")

tab_changes, tab_batches, tab_audit, tab_undo = st.tabs(["Profiles changed", "Batches", "Audit log", "Undo"])
with tab_changes:
    st.caption("Every profile of the run with its MSG-email before the run (where known) and its outcome. "
               "First 1,000 shown; the download has all.")
    st.dataframe(export.run_changes(rt.store, run_id, limit=1000), key="history_changes", hide_index=True,
                 width="stretch")
    st.download_button("Download every change (CSV)", key="history_download", file_name=f"run-{run_id}.csv",
                       data=lambda: changes_csv(rt.store.export_changes(run_id)), mime="text/csv",
                       on_click="ignore")
with tab_batches:
    st.dataframe(export.batches_table(rt.store, run_id), key="history_batches", hide_index=True,
                 width="stretch", column_config=ui.counts("Records", "Processed", "Unprocessed"))
with tab_audit:
    only_run = st.toggle("Only this run", value=True, key="history_audit_run")
    st.dataframe(export.audit_table(rt.store, run_id=run_id if only_run else None), key="history_audit",
                 hide_index=True, width="stretch")
with tab_undo:
    if run.kind != "export" or "unsubscribe" not in run.actions or run.state in ("planned", "running"):
        st.caption("Undo applies to a finished export run that unsubscribed profiles. Appended properties are "
                   "not undone: CleverTap cannot delete a property; the next Append overwrites them.")
        st.stop()
    st.markdown("Undo re-subscribes only profiles this run changed **from subscribed**, and only while they "
                "are still as the run left them (checked in CleverTap just before writing). Profiles that "
                "were unsubscribed before the run, were re-subscribed since, or were unsubscribed again by "
                "another run are left alone. An unsubscribe by CleverTap itself after this run (a bounce) "
                "cannot be told apart from ours: undo soon after a mistaken run.")
    if st.button("Dry run the undo", key="history_undo_dry_run"):
        st.session_state["history_undo_nonce"] = st.session_state.get("history_undo_nonce", 0) + 1
        st.session_state["history_undo_run"] = run_id
    if st.session_state.get("history_undo_run") == run_id:
        try:
            plan = undo_dry_run(str(rt.settings.data_dir), run_id, st.session_state["history_undo_nonce"])
        except (MissingSecretError, export.ExportError, CleverTapError) as exc:
            st.error(str(exc))
            st.stop()
        c = plan.counts
        c1, c2, c3, c4 = st.columns(4)
        c1.metric("Unsubscribed by the run", f"{c['unsubscribed_by_run']:,}")
        c2.metric("Will be re-subscribed", f"{plan.will_resubscribe:,}",
                  help=None if plan.checked_all else "At most: each is checked just before writing")
        c3.metric("Unsubscribed before: left alone", f"{c['were_unsubscribed_before']:,}")
        c4.metric("State before unknown: left alone", f"{c['prior_unknown']:,}")
        st.dataframe(plan.preview, key="history_undo_preview", hide_index=True, width="stretch")
        if not plan.checked_all:
            st.caption(f"The first {len(plan.preview):,} of {len(plan.candidates):,} checked now; every one is "
                       "checked again just before its batch is written.")
        if st.button(f"Undo run {run_id}: re-subscribe up to {len(plan.candidates):,} profiles", key="history_undo",
                     type="primary", disabled=plan.candidates.empty):
            try:
                undo = export.start_undo(rt.store, plan, actor=st.session_state.get("export_actor")
                                         or export.default_actor())
            except export.ExportError as exc:
                st.error(str(exc))
            else:
                st.session_state.pop("history_undo_run", None)
                st.session_state["history_select"] = undo.id
                st.rerun()
