"""The Lists page's three parts: an audience form (count, then pull), a CSV upload, and My lists."""
from __future__ import annotations

import streamlit as st

from lib import audiences, lists
from lib.access import ADMIN, OPERATOR
from lib.connections import ConnectionView
from lib.errors import UserError
from lib.progress import activity_line, list_subject
from lib.runtime import Runtime
from lib.store import ListRecord
from lib.ui import allowed, current_user, escape_md, link, timestamp
from lib.ui.tasks import task_answer

state = st.session_state


def audience_form(rt: Runtime, views: dict[int, ConnectionView]) -> None:
    """Build a query, have the worker count it, then pull it into a new list."""
    if not allowed(OPERATOR, "Adding a list"):
        return
    if not views:
        st.info("No CleverTap project connected yet: connect one first, or add a CSV file instead.",
                icon=":material/info:")
        link("pages/connect.py", "Connect a CleverTap project")
        return
    st.caption("CleverTap cannot list a dashboard segment's members, so an audience is a query: the "
               "profiles that did an event in a date range, optionally narrowed by profile properties.")
    connection_id = st.selectbox("CleverTap connection", list(views), key="lists_connection",
                                 format_func=lambda i: views[i].connection.name)
    event = st.selectbox("Event", audiences.SUGGESTED_EVENTS, key="lists_event", accept_new_options=True,
                         help="Pick one or type any event name: names are case-sensitive.")
    dates = st.date_input("Date range", value=audiences.default_range(), key="lists_dates")
    rows = state.setdefault("lists_filter_rows", 0)
    for i in range(rows):
        name_col, op_col, value_col = st.columns([2, 1, 2])
        name_col.text_input("Profile property", key=f"lists_filter_name_{i}", placeholder="Customer Type")
        op_col.selectbox("Operator", audiences.OPERATORS, key=f"lists_filter_op_{i}")
        value_col.text_input("Value", key=f"lists_filter_value_{i}", placeholder="Gold")
    st.button("Add a profile filter", icon=":material/add:", key="lists_add_filter", on_click=state.update,
              args=({"lists_filter_rows": rows + 1},))
    picked = [*dates, None, None] if isinstance(dates, (list, tuple)) else [dates, None]
    try:
        query = audiences.build_query(connection_id, event, picked[0], picked[1],
                                      [(state[f"lists_filter_name_{i}"], state[f"lists_filter_op_{i}"],
                                        state[f"lists_filter_value_{i}"]) for i in range(rows)])
    except UserError as exc:
        st.warning(escape_md(exc.message))
        return
    if st.button("Count matching profiles", key="lists_count"):
        try:
            state["lists_count_task"] = audiences.request_count(rt.store, rt.mode, query, user=current_user()).id
        except UserError as exc:
            st.error(escape_md(exc.message))
            return
        state["lists_count_query"] = query
    if state.get("lists_count_query") == query:
        task_answer("lists_count_task", "CleverTap is counting…", lambda task: _offer_pull(rt, query, task))


def _offer_pull(rt: Runtime, query: audiences.AudienceQuery, task: object) -> None:
    count = audiences.count_of(task)  # type: ignore[arg-type]
    if count is None:
        return
    st.success(f"**{count:,}** profiles match: {escape_md(query.describe())}.")
    list_name = st.text_input("List name", value=f"{query.event_name} {query.to_date:%Y-%m-%d}",
                              key="lists_audience_name")
    if st.button(f"Pull {count:,} profiles into My lists", key="lists_pull", type="primary", disabled=count == 0):
        try:
            audience = audiences.save_audience(rt.store, query, list_name, user=current_user())
            state["lists_chosen"] = audiences.start_pull(rt.store, rt.mode, audience, list_name,
                                                         expected_rows=count, user=current_user()).id
            state.pop("lists_count_query", None)
            state.pop("lists_count_task", None)
            st.rerun()
        except UserError as exc:
            st.error(escape_md(exc.message))


def saved_audiences(rt: Runtime, views: dict[int, ConnectionView]) -> None:
    saved = [a for a in rt.store.list_audiences() if a.connection_id in views]
    if not saved or not current_user().can(OPERATOR):
        return
    with st.expander(f"Saved audiences ({len(saved)})"):
        for audience in saved:
            text_col, button_col = st.columns([5, 1])
            text_col.markdown(f"**{escape_md(audience.name)}** · "
                              f"{escape_md(audiences.AudienceQuery.from_audience(audience).describe())}"
                              f" · last pulled {timestamp(audience.last_pulled_at)}")
            if button_col.button("Pull again", key=f"lists_repull_{audience.id}"):
                try:
                    state["lists_chosen"] = audiences.start_pull(rt.store, rt.mode, audience, audience.name,
                                                                 user=current_user()).id
                except UserError as exc:
                    st.error(escape_md(exc.message))
                else:
                    st.rerun()


def csv_form(rt: Runtime) -> None:
    if not allowed(OPERATOR, "Adding a list"):
        return
    st.caption("A CSV file with an Email column, e.g. a segment downloaded from CleverTap's Find People. "
               f"Up to {rt.settings.upload_max_mb} MB (UPLOAD_MAX_MB); comma, semicolon or tab separated.")
    # The browser refuses a bigger file before sending it (the uploader says "200MB per file", from the
    # same setting); lib.serve sets Streamlit's server cap to match.
    # A form: the file, the name and the click reach the server together. Apart, a name typed just before
    # the click made its own rerun on leaving the field, and a busy server could drop the click.
    with st.form("lists_csv_form", border=False):
        upload = st.file_uploader("CSV file", key="lists_upload",
                                  max_upload_size=max(1, rt.settings.upload_max_mb))
        csv_name = st.text_input("List name", key="lists_csv_name", placeholder="Defaults to the file name")
        added = st.form_submit_button("Add to My lists", key="lists_add_csv", type="primary")
    if not added:
        return
    if upload is None:
        st.error("Choose a CSV file first (drag it onto the box above, or browse).")
        return
    try:
        with st.spinner(f"Reading {escape_md(upload.name)}…"):
            record, notice = lists.add_csv_list(rt.store, rt.mode, upload, file_name=upload.name,
                                                max_bytes=rt.settings.upload_max_bytes,
                                                name=csv_name.strip() or None, user=current_user())
    except UserError as exc:
        st.error(escape_md(exc.message))
        return
    st.success(f"Added **{escape_md(record.name)}**: {lists.added_line(record)} (email column: "
               f"{escape_md(record.email_column)}). It is chosen in My lists below.")
    state["lists_chosen"] = record.id  # the list just added is the one to look at and verify
    if notice:
        st.warning(escape_md(notice))


def pull_progress(rt: Runtime, pulling: list[ListRecord]) -> None:
    """Polls while pulls run (call it from a fragment); reruns the page when one ends."""
    current = {r.id: r for r in rt.store.list_lists(rt.mode, states=["pulling"])}
    if set(current) != {r.id for r in pulling}:
        st.rerun(scope="app")  # a pull ended: refresh the whole table
    for record in current.values():
        share = lists.progress(record)
        total = f" of {record.expected_rows:,}" if record.expected_rows is not None else ""
        st.progress(share or 0.0, text=f"Pulling **{escape_md(record.name)}**: {record.rows:,}{total} profiles")
        if doing := activity_line(rt.store.activity(list_subject(record.id))):
            st.caption(f":material/hourglass_top: {escape_md(doing)}")


def list_table(records: list[ListRecord]) -> None:
    st.dataframe(lists.overview(records), key="lists_table", height=min(400, 38 + 35 * len(records)),
                 hide_index=True,
                 # The figures first: at a 1280-pixel window the long Source text is what scrolls out of view.
                 column_order=("Name", "State", *lists.COUNT_COLUMNS, "Added", "Source"),
                 column_config={"Name": st.column_config.TextColumn(width="medium"),
                                "Source": st.column_config.TextColumn(width="large"),
                                "Added": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
                                **{c: st.column_config.NumberColumn(format="localized", help=h)
                                   for c, h in lists.COUNT_HELP.items()}})


def chosen_list(rt: Runtime, chosen: ListRecord) -> None:
    """What can be done with one list: pull again, preview, verify, rename, delete."""
    if chosen.state == "failed":
        st.error(escape_md(chosen.error or "This list failed."))
        if chosen.audience_id and current_user().can(OPERATOR) and st.button("Pull it again", key="lists_retry"):
            try:
                audiences.pull_again(rt.store, rt.mode, chosen, user=current_user())
                st.rerun()
            except UserError as exc:
                st.error(escape_md(exc.message))
    if chosen.state == "ready":
        with st.expander(f"Preview: the first {lists.PREVIEW_ROWS} rows"):
            try:
                st.dataframe(lists.preview(rt.store, chosen), key="lists_preview", hide_index=True)
            except UserError as exc:
                st.info(escape_md(exc.message))
        if current_user().can(OPERATOR) and st.button("Verify this list", key="lists_verify", type="primary",
                                                      icon=":material/verified:",
                     help="Opens Verify with this list chosen: the cost is shown before anything starts"):
            state["verify_list"] = chosen.id
            st.switch_page("pages/verify.py")
    if not current_user().can(OPERATOR):
        return
    name_col, rename_col, delete_col = st.columns([3, 1, 1], vertical_alignment="bottom")
    new_name = name_col.text_input("Name", value=chosen.name, key=f"lists_rename_{chosen.id}")
    if rename_col.button("Rename", key="lists_rename"):
        try:
            lists.rename_list(rt.store, chosen.id, new_name, user=current_user())
            st.rerun()
        except UserError as exc:
            st.error(escape_md(exc.message))
    if not current_user().can(ADMIN):
        return
    delete_col.button("Delete", key="lists_delete", on_click=state.update, args=({"lists_confirm": chosen.id},))
    if state.get("lists_confirm") == chosen.id:
        st.warning(f"Delete **{escape_md(chosen.name)}** with its file and verification results? "
                   "This cannot be undone.")
        yes, no = st.columns(2)
        if yes.button("Yes, delete", key="lists_delete_yes", type="primary"):
            try:
                lists.delete_list(rt.store, chosen.id, user=current_user())
            except UserError as exc:
                st.error(escape_md(exc.message))
            else:
                state.pop("lists_confirm")
                st.rerun()
        no.button("Cancel", key="lists_delete_no", on_click=state.pop, args=("lists_confirm",))
