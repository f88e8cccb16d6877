"""Export: unsubscribe undeliverable addresses and/or append the Clearout columns in CleverTap, dry run first."""
import json

import streamlit as st

from lib import export, ui
from lib.export_plan import (RULES, ExportOptions, PlanError, append_table, columns_from_table,
                             confirmation_phrase, changes_csv, reason_counts, sample_payload)

ui.page_header("Export", "Write the verdicts to CleverTap: unsubscribe undeliverable addresses, append the "
                         "Clearout columns to profiles, or both. Always a dry run first.")
rt = ui.runtime()


@st.cache_resource(ttl=1800, max_entries=2, show_spinner="Dry run: planning every change…")
def dry_run(data_dir: str, list_id: int, job_id: int, options: ExportOptions, guardrail: float, nonce: int):
    """The plan, shared read-only (a million-row plan is not copied on every rerun); `nonce` = a new dry run."""
    return export.plan_export(rt.store, list_id, options, guardrail_pct=guardrail)


lists = export.verified_lists(rt.store, rt.mode)
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

by_id = {r.id: r for r in lists}
left, right = st.columns(2)
list_id = left.selectbox("Verified list", list(by_id), key="export_list",
                         format_func=lambda i: f"{by_id[i].name} · {by_id[i].rows:,} rows")
connection_id = right.selectbox("CleverTap project", list(connections), key="export_connection",
                                format_func=lambda i: f"{connections[i].name} ({connections[i].account_id}, "
                                                      f"{connections[i].region})")
record = by_id[list_id]
if waiting := export.missing_passcode(rt, connections[connection_id]):
    st.warning(f"{waiting} An export applied now waits until then.", icon=":material/key:")
email_only = not (record.identity_column or record.object_id_column)
if email_only:
    st.info("This list has addresses only, no CleverTap identities. Unsubscribe goes through CleverTap's "
            "Subscribe API, which works per **address**: every profile sharing an address is unsubscribed, "
            "also profiles outside this list. Append is not possible (that API cannot set properties): "
            "pull the audience from CleverTap on Lists to append.", icon=":material/mail:")

unsubscribe = st.checkbox("**Unsubscribe** undeliverable addresses (sets MSG-email to false)", value=True,
                          key="export_unsubscribe")
rules = ["invalid"]
if unsubscribe:
    st.caption("Always: addresses Clearout verified as **Invalid** (safe to send: No). Add only if you mean it:")
    for rule in RULES[1:]:
        if st.checkbox(rule.label, key=f"export_rule_{rule.code}", help=rule.warning):
            rules.append(rule.code)
            st.caption(f":orange[:material/warning:] {rule.warning}")
append = st.checkbox("**Append** Clearout columns to profiles as properties", key="export_append",
                     disabled=email_only)
columns = ()
if append and not email_only:
    edited = st.data_editor(append_table(), key="export_columns", hide_index=True, width="stretch",
                            disabled=["Clearout column"])
    columns = columns_from_table(edited)
st.text_input("Your name (kept in History with the run)", value=export.default_actor(), key="export_actor")

options = ExportOptions(unsubscribe=unsubscribe, append=append and not email_only, rules=tuple(rules),
                        **({"columns": columns} if append else {}))
job_id = rt.store.latest_done_job(list_id).id
choices = (list_id, job_id, options, rt.settings.export_guardrail_pct)
if st.button("Dry run", key="export_dry_run", type="primary"):
    st.session_state["export_nonce"] = st.session_state.get("export_nonce", 0) + 1
    st.session_state["export_planned"] = choices
planned = st.session_state.get("export_planned")
if planned is not None and planned != choices:
    st.info("Your choices changed since the dry run: run it again to see the exact plan.", icon=":material/refresh:")
elif planned is not None:
    try:
        plan = dry_run(str(rt.settings.data_dir), *choices, st.session_state["export_nonce"])
    except (PlanError, OSError) as exc:
        st.error(str(exc))
        st.stop()
    s = plan.summary
    st.subheader("Dry run: exactly what will be sent")
    c1, c2, c3, c4 = st.columns(4)
    c1.metric("Addresses in the list" if plan.method == "subscribe" else "Profiles in the list", f"{s.profiles:,}",
              help="Distinct profiles (or addresses) the list can reach")
    calls = -(-s.changes // 1000)
    c2.metric("To unsubscribe", f"{s.to_unsubscribe:,}", f"{s.unsubscribe_pct:.1f}% of the list",
              delta_color="off", delta_arrow="off")
    c3.metric("To append to", f"{s.to_append:,}")
    c4.metric("Records to send", f"{s.changes:,}", f"{calls:,} call{'s' if calls != 1 else ''} of ≤1,000",
              delta_color="off", delta_arrow="off")
    for message in plan.errors:
        st.error(message, icon=":material/block:")
    for message in plan.warnings:
        st.warning(message, icon=":material/warning:")
    for message in plan.notes:
        st.caption(message)
    if s.to_unsubscribe:
        st.markdown("**Unsubscribes by reason**")
        st.dataframe(reason_counts(plan), key="export_reasons", hide_index=True, width="stretch",
                     column_config=ui.counts("Profiles"))
    st.download_button("Download the profiles that will change (CSV)", key="export_download",
                       data=lambda: changes_csv(plan.changes), file_name=f"export-plan-{plan.tag}.csv",
                       mime="text/csv", disabled=s.changes == 0, on_click="ignore")
    with st.expander("Payload sample: the first records exactly as sent"):
        st.code(json.dumps(sample_payload(plan), indent=2, ensure_ascii=False), language="json")
    confirmation = ""
    if s.over_guardrail:
        confirmation = st.text_input(f"Type {confirmation_phrase(plan)} to unsubscribe more than the "
                                     f"{s.guardrail_pct:g}% guardrail", key="export_confirm")
    active = export.latest_active_run(rt.store, rt.mode)
    if active is not None:
        st.info(f"Run {active.id} is still sending: this one starts when it ends.", icon=":material/hourglass_top:")
    ready = plan.can_apply and (not s.over_guardrail or confirmation.strip() == confirmation_phrase(plan))
    if st.button(f"Apply: send {s.changes:,} records to {connections[connection_id].name}", key="export_apply",
                 type="primary", disabled=not ready):
        try:
            with st.spinner("Recording the plan…"):
                run = export.start_run(rt.store, plan, connections[connection_id],
                                       actor=st.session_state["export_actor"], confirmation=confirmation)
        except export.ExportError as exc:
            st.error(str(exc))
        else:
            st.session_state.pop("export_planned", None)
            st.rerun()

st.subheader("Progress")


shown = export.latest_run(rt.store, rt.mode)


@st.fragment(run_every=1 if shown is not None and shown.state in ("planned", "running") else None)
def run_panel() -> None:
    run = export.latest_run(rt.store, rt.mode)
    if run is None:
        st.caption("Nothing sent yet: make a dry run above, check it, then apply.")
        return
    ui.export_run_panel(run.id, "export")
    ui.link("pages/history.py", "See every run, its changes and undo on History")
    if shown is None or run.state != shown.state:
        st.rerun()  # the run started or ended: refresh the page (and stop or start polling)


run_panel()
