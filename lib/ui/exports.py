"""Export and History widgets: one run's progress, outcome, read-back and unprocessed records; the
dry-run cache."""
from __future__ import annotations

import json
from pathlib import Path

import streamlit as st

from lib import download_links, funnel
from lib.downloads import EXACT, SPREADSHEET
from lib.filters import Selection

from lib import actions
from lib.access import OPERATOR
from lib.errors import UserError
from lib.export import runs, views
from lib.export.payloads import sample_payload
from lib.export.plan import (RULES, UNKNOWN_PRIOR_CHOICES, ExportOptions, ExportPlan,
                             confirmation_phrase)
from lib.export.properties import append_table, columns_from_table
from lib.export.undo import start_undo
from lib.figures import plural
from lib.runtime import Runtime
from lib.store import Connection, ListRecord, Task
from lib.tasks import dry_run_of, request_dry_run, request_read_back, request_undo_preview, undo_preview_of
from lib.ui import audited, counts, current_user, escape_md, flash, link, metric_row, recorder, runtime, timestamp
from lib.ui.tasks import task_answer


def plan_link(plan: ExportPlan, connection: Connection, flavour: str = SPREADSHEET) -> str:
    """This session's download link of a plan's changes (lib.download_links), made once per plan and
    flavour (for a spreadsheet, or exact: identifiers such as objectIds starting with "-" untouched)."""
    links: dict[tuple[str, str], str] = st.session_state.setdefault("export_links", {})
    token = links.get((plan.tag, flavour))
    if token is None or download_links.take(token) is None:
        token = download_links.offer(download_links.Download(
            data_dir=runtime().store.data_dir, merged=Path(), parts=plan.changes_files, selection=Selection(),
            file_format=download_links.CSV, flavour=flavour,
            file_name=f"export-plan-{plan.tag}{'' if flavour == SPREADSHEET else '_exact'}.csv",
            rows=plan.summary.changes, kind=download_links.PLAN,
            on_start=recorder("download_export_plan", f"dry run {plan.tag}: {plan.list_name} → {connection.name}",
                              connection.mode)))
        links[(plan.tag, flavour)] = token
    return f"./{download_links.ROUTE}/{token}"


def _stop(run_id: int, flash_key: str) -> None:
    try:
        runs.stop_run(runtime().store, run_id, user=current_user())
    except UserError as exc:
        st.session_state[flash_key] = ("error", escape_md(exc.message))


def _resume(run_id: int, flash_key: str) -> None:
    try:
        runs.resume_run(runtime().store, run_id, user=current_user())
    except UserError as exc:
        st.session_state[flash_key] = ("error", escape_md(exc.message))


def run_panel(run_id: int, key: str) -> None:
    """What the store says about an export run; call it from an `st.fragment(run_every=...)` while it runs.

    Stop, resume, retry and read-back are offered to operators only (the services refuse others too).
    """
    store = runtime().store
    user = current_user()
    operator = user.can(OPERATOR)
    status = views.run_status(store, run_id)
    run = status.run
    flash(f"{key}_flash_{run.id}")
    st.markdown(f"**Run {run.id}** · {views.KIND_WORDS[run.kind].lower()} of **{escape_md(run.list_name)}** to "
                f"**{escape_md(run.connection_name)}** ({escape_md(run.account_id)}, {run.region}) · by "
                f"{escape_md(run.actor)} · {timestamp(run.created_at)}")
    if run.state in ("planned", "running"):
        st.progress(status.fraction, text=escape_md(views.progress_text(status)))
        if status.activity:
            st.caption(status.line)
        if status.waiting:
            st.warning(escape_md(status.waiting), icon=":material/key:")
            link("pages/connect.py", "Enter the passcode on Connect to resume")
        if operator:
            st.button("Stop after the batches in flight", key=f"{key}_stop_{run.id}", on_click=_stop,
                      args=(run.id, f"{key}_flash_{run.id}"),
                      help="Finished batches stay recorded; resume later to send the rest")
        return
    undone = views.undo_status(store, run) if run.kind == "export" else None
    checked = views.read_back_summary(run)
    if run.state == "done" and undone is not None:
        st.info(f"Done, then {undone.line} · {status.line}", icon=":material/undo:")
    elif run.state == "done" and checked is not None and checked.different:
        st.warning(f"Done, but the read-back found {plural(checked.different, 'sampled profile')} not as planned "
                   f"(below) · {status.line}", icon=":material/warning:")
    elif run.state == "done":
        st.success(f"Done · {status.line}", icon=":material/check_circle:")
    else:
        (st.error if run.state == "failed" else st.warning)(
            f"{'Failed' if run.state == 'failed' else 'Stopped'} · {status.line}"
            + (f" · {escape_md(run.error)}" if run.error else ""), icon=":material/warning:")
        if operator:
            st.button("Resume: send the batches not sent yet", key=f"{key}_resume_{run.id}",
                      on_click=_resume, args=(run.id, f"{key}_flash_{run.id}"))
    if (table := views.read_back_table(run)) is not None and checked is not None:
        st.markdown(checked.line)
        st.dataframe(table, key=f"{key}_readback_{run.id}", hide_index=True, width="stretch")
    if run.state == "done" and operator:
        asked = f"{key}_recheck_task_{run.id}"
        if st.button("Check again now", key=f"{key}_recheck_{run.id}"):
            st.session_state[asked] = request_read_back(store, run.mode, run.id, user=user).id
        task_answer(asked, "Reading a sample back from CleverTap…", lambda task: None)
    st.caption(views.dashboard_help(run.region, undo=run.kind == "undo"))
    if status.unprocessed:
        st.markdown(f"**{status.unprocessed:,} record(s) CleverTap left unprocessed** (first 1,000):")
        st.dataframe(views.run_changes(store, run.id, outcomes=["unprocessed"], limit=1000),
                     key=f"{key}_unprocessed_{run.id}", hide_index=True, width="stretch")
        if operator and st.button("Retry the unprocessed records", key=f"{key}_retry_{run.id}"):
            try:
                runs.start_retry(store, run.id, user=user)
                st.rerun()
            except UserError as exc:
                st.error(escape_md(exc.message))


def choices(email_only: bool) -> ExportOptions:
    """The export's options as the user ticks them: unsubscribe (with its rules), append (with columns)."""
    if email_only:
        st.info("This list has addresses only, no CleverTap identities. Unsubscribe goes through CleverTap's "
                "Subscribe API, which works per **address**: every profile sharing an address is unsubscribed, "
                "also profiles outside this list. Append is not possible (that API cannot set properties): "
                "pull the audience from CleverTap on Lists to append.", icon=":material/mail:")
    unsubscribe = st.checkbox("**Unsubscribe** undeliverable addresses (sets MSG-email to false)", value=True,
                              key="export_unsubscribe")
    rules = ["invalid"]
    if unsubscribe:
        st.caption("Always: addresses Clearout verified as **Invalid** that bounce for good (hard bounces, spam "
                   "traps, blocklisted). Add only if you mean it:")
        for rule in RULES[1:]:
            if st.checkbox(rule.label, key=f"export_rule_{rule.code}", help=rule.warning):
                rules.append(rule.code)
                st.caption(f":orange[:material/warning:] {rule.warning}")
    append = st.checkbox("**Append** Clearout columns to profiles as properties", key="export_append",
                         disabled=email_only)
    if append and not email_only:
        edited = st.data_editor(append_table(), key="export_columns", hide_index=True, width="stretch",
                                disabled=["Clearout column"])
        return ExportOptions(unsubscribe=unsubscribe, append=True, rules=tuple(rules),
                             columns=columns_from_table(edited))
    return ExportOptions(unsubscribe=unsubscribe, append=False, rules=tuple(rules))


def dry_run_section(rt: Runtime, record: ListRecord, connection: Connection) -> None:
    """The choices, the Dry run button and, once made, the plan with Apply (operators only)."""
    options = choices(email_only=not (record.identity_column or record.object_id_column))
    st.caption(f"Kept in History with the run: {escape_md(current_user().label)}")
    job = rt.store.latest_done_job(record.id)
    chosen = (record.id, job.id if job else 0, options, rt.settings.export_guardrail_pct)
    if st.button("Dry run", key="export_dry_run", type="primary"):
        try:
            task = request_dry_run(rt.store, rt.mode, record.id, job.id if job else 0, options,
                                   guardrail_pct=rt.settings.export_guardrail_pct, user=current_user())
        except UserError as exc:
            st.error(escape_md(exc.message))
            return
        st.session_state["export_planned"] = chosen
        st.session_state["export_plan_task"] = task.id
    planned = st.session_state.get("export_planned")
    if planned is not None and planned != chosen:
        st.info("Your choices changed since the dry run: run it again to see the exact plan.",
                icon=":material/refresh:")
    elif planned is not None:
        task_answer("export_plan_task", f"Dry run: planning every change of the {record.rows:,} rows…",
                    lambda task: _show_plan(task, connection))


def _show_plan(task: Task, connection: Connection) -> None:
    plan = dry_run_of(task)
    if plan is not None:
        dry_run_panel(plan, connection)


def dry_run_panel(plan: ExportPlan, connection: Connection) -> None:
    """Exactly what will be sent, and the Apply button (with the guardrail's typed confirmation)."""
    rt = runtime()
    s = plan.summary
    st.subheader("Dry run: exactly what will be sent")
    metric_row(views.plan_metrics(plan))
    if plan.options.unsubscribe:
        unit = funnel.export_unit(plan.method)
        st.markdown(funnel.export_reconciliation(s, unit))  # figures only: no user text
        st.plotly_chart(funnel.figure(funnel.export_stages(s, unit), f"From the rows your rules take to the {unit} "
                                                                     "unsubscribed"),
                        config={"displaylogo": False}, theme=None, key="export_funnel")
    for message in plan.errors:
        st.error(escape_md(message), icon=":material/block:")
    for message in plan.warnings:
        st.warning(escape_md(message), icon=":material/warning:")
    for message in plan.notes:
        st.caption(escape_md(message))
    if s.to_unsubscribe:
        st.markdown("**Unsubscribes by reason**")
        st.dataframe(views.reason_counts(plan), key="export_reasons", hide_index=True, width="stretch",
                     column_config=counts("Profiles"))
    if s.changes and plan.changes_files:
        sheet, exact = st.columns(2)
        changing = funnel.counted(s.changes, funnel.export_unit(plan.method))
        sheet.link_button(f"The {changing} that will change: CSV for a spreadsheet",
                          plan_link(plan, connection), icon=":material/download:", width="stretch")
        exact.link_button("The same, CSV exact (identifiers untouched)", plan_link(plan, connection, EXACT),
                          icon=":material/download:", width="stretch")
    with st.expander("Payload sample: the first records exactly as sent"):
        st.code(json.dumps(sample_payload(plan), indent=2, ensure_ascii=False), language="json")
    confirmation = ""
    if s.over_guardrail:
        confirmation = st.text_input(f"Type {confirmation_phrase(plan)} to unsubscribe more than the "
                                     f"{s.guardrail_pct:g}% guardrail", key="export_confirm")
    unknown_prior = None
    if plan.needs_prior_choice:  # an explicit choice, kept with the run: nothing is pre-selected
        unknown_prior = st.radio(views.prior_choice_question(plan), list(UNKNOWN_PRIOR_CHOICES), index=None,
                                 key=f"export_unknown_prior_{plan.tag}", format_func=UNKNOWN_PRIOR_CHOICES.get)
    ready = views.apply_readiness(plan, confirmation, connection.name, runs.latest_active_run(rt.store, rt.mode),
                                  unknown_prior)
    if ready.note:
        st.info(escape_md(ready.note), icon=":material/hourglass_top:")
    if st.button(escape_md(ready.label), key="export_apply", type="primary", disabled=ready.disabled):
        try:
            with st.spinner("Recording the plan…"):
                runs.start_run(rt.store, plan, connection, user=current_user(), confirmation=confirmation,
                               unknown_prior=unknown_prior)
        except UserError as exc:
            st.error(escape_md(exc.message))
        else:
            st.session_state.pop("export_planned", None)
            st.session_state.pop("export_plan_task", None)
            st.rerun()


UNDO_EXPLAINED = ("Undo re-subscribes only profiles this run changed **from subscribed**, and only while they "
                  "are still as the run left them (checked in CleverTap just before writing). Profiles that "
                  "were unsubscribed before the run, were re-subscribed since, or were unsubscribed again by "
                  "another run are left alone. An unsubscribe by CleverTap itself after this run (a bounce) "
                  "cannot be told apart from ours: undo soon after a mistaken run.")


def undo_panel(run_id: int) -> None:
    """The undo of one run: a dry run the worker makes (it reads the profiles), then the button."""
    rt = runtime()
    st.markdown(UNDO_EXPLAINED)
    key = f"history_undo_task_{run_id}"
    if st.button("Dry run the undo", key="history_undo_dry_run"):
        st.session_state[key] = request_undo_preview(rt.store, rt.mode, run_id, user=current_user()).id
    task_answer(key, "Undo dry run: reading the current state of the profiles from CleverTap…",
                lambda task: _undo_preview(task, run_id))


def _undo_preview(task: Task, run_id: int) -> None:
    preview = undo_preview_of(task)
    if preview is None:
        return
    choice = preview.choice
    metrics = st.container()
    if preview.needs_choice:  # an explicit choice, kept with the undo run: nothing is pre-selected
        choice = st.radio(views.undo_choice_question(preview), list(UNKNOWN_PRIOR_CHOICES), index=None,
                          key=f"history_unknown_prior_{run_id}", format_func=UNKNOWN_PRIOR_CHOICES.get)
    with metrics:
        metric_row(views.undo_metrics(preview, choice))
    st.dataframe(preview.preview_table(), key="history_undo_preview", hide_index=True, width="stretch")
    if not preview.checked_all:
        st.caption(f"The first {len(preview.preview):,} of {preview.candidates:,} checked now; every one is "
                   "checked again just before its batch is written.")
    count = preview.resubscribes(choice)
    unit = funnel.export_unit(runtime().store.export_run(run_id).method)
    if st.button(f"Undo run {run_id}: re-subscribe {'' if preview.checked_all else 'up to '}"
                 f"{funnel.counted(count, unit)}", key="history_undo", type="primary",
                 disabled=count == 0 or (preview.needs_choice and choice is None)):
        try:
            undo = start_undo(runtime().store, run_id, user=current_user(),
                              unknown_prior=choice if preview.needs_choice else None)
        except UserError as exc:
            st.error(escape_md(exc.message))
        else:
            st.session_state.pop(f"history_undo_task_{run_id}", None)
            st.session_state["history_select"] = undo.id
            st.rerun()


def actions_section(rt: Runtime) -> None:
    """History's "Who did what": every action a person took in this app, newest first, and the whole
    audit as CSV (the download is itself recorded)."""
    st.caption("Every action taken in this app (connect, lists, verifications, exports, undo, downloads), with "
               "who and when, in every mode. The 1,000 latest are shown; the download has all.")
    st.dataframe(actions.actions_table(rt.store.list_actions(limit=1000)), key="history_actions", hide_index=True,
                 width="stretch")
    st.download_button("Download the audit (CSV)", key="history_actions_download", icon=":material/download:",
                       data=audited(lambda: actions.actions_csv(rt.store.list_actions(limit=None)), "download_audit",
                                    "who did what (all)"),
                       file_name="audit-who-did-what.csv", mime="text/csv", on_click="ignore")
