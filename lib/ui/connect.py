"""The Connect page's parts: saved projects (with re-entering a lost passcode and removing), the form
for a new project, and the Clearout token with the balance."""
from __future__ import annotations

import streamlit as st

from lib import connections as conn
from lib.access import ADMIN
from lib.clevertap import REGIONS
from lib.errors import UserError
from lib.runtime import Runtime
from lib.ui import current_user, escape_md, flash, timestamp

state = st.session_state


def _save(rt: Runtime, account_id: str, passcode_key: str, region: str, name: str, remember_key: str,
          flash_key: str) -> None:
    try:
        connection = conn.check_and_save(rt, name=name, account_id=account_id, passcode=state.get(passcode_key, ""),
                                         region=region, remember=state.get(remember_key, False), user=current_user())
    except conn.ConnectError as exc:
        state[flash_key] = ("error", escape_md(exc.message))
        if exc.region and flash_key == "connect_flash":  # pre-select the region CleverTap named
            state["connect_region"], state["connect_dashboard_url"] = exc.region, ""
            state[flash_key] = ("error", f"{escape_md(exc.message)}. {exc.region} is selected now: press "
                                         "**Test and save**.")
        return
    except UserError as exc:
        state[flash_key] = ("error", escape_md(exc.message))
        return
    state[passcode_key] = ""
    state[flash_key] = ("success", f"Connected {escape_md(connection.name)}: CleverTap accepted the credentials.")


def _save_new(rt: Runtime) -> None:
    try:
        region = conn.resolve_region(state["connect_region"], state.get("connect_dashboard_url"))
    except conn.ConnectError as exc:
        state["connect_flash"] = ("error", escape_md(exc.message))
        return
    _save(rt, state["connect_account_id"], "connect_passcode", region, state["connect_name"], "connect_remember",
          "connect_flash")


def saved_projects(rt: Runtime, views: list[conn.ConnectionView]) -> None:
    """The connected projects; an admin can re-enter a lost passcode and remove one."""
    admin = current_user().can(ADMIN)
    if not views:
        st.info("No CleverTap project connected yet: fill in the form below and press **Test and save**.",
                icon=":material/info:")
    for view in views:
        c = view.connection
        with st.container(border=True):
            left, right = st.columns([5, 1])
            left.markdown(f"**{escape_md(c.name)}** · `{escape_md(c.account_id)}` · {conn.region_label(c.region)}")
            left.caption(f"Last successful check: {timestamp(c.last_checked_at)} · {view.secret_label}")
            flash(f"connect_flash_{c.id}")
            if not admin:
                continue
            right.button("Remove", key=f"connect_remove_{c.id}", on_click=state.update,
                         args=({"connect_confirm_remove": c.id},))
            if view.secret == "needed":
                left.text_input("Passcode", type="password", key=f"connect_repass_{c.id}")
                left.checkbox("Remember in .env (mode 0600)", key=f"connect_reremember_{c.id}",
                              disabled=not conn.can_remember(rt))
                left.button("Test and save", key=f"connect_resave_{c.id}", on_click=_save,
                            args=(rt, c.account_id, f"connect_repass_{c.id}", c.region, c.name,
                                  f"connect_reremember_{c.id}", f"connect_flash_{c.id}"))
            if state.get("connect_confirm_remove") == c.id:
                st.warning(f"Remove **{escape_md(c.name)}**? Its saved audiences go too; lists already pulled "
                           "stay. The passcode is forgotten (also from .env).")
                yes, no = st.columns(2)
                if yes.button("Yes, remove", key=f"connect_remove_yes_{c.id}", type="primary"):
                    try:
                        conn.remove_connection(rt, c.id, user=current_user())
                    except UserError as exc:
                        st.error(escape_md(exc.message))
                    else:
                        state.pop("connect_confirm_remove")
                        st.rerun()
                no.button("Cancel", key=f"connect_remove_no_{c.id}", on_click=state.pop,
                          args=("connect_confirm_remove",))


def new_project_form(rt: Runtime, expanded: bool) -> None:
    defaults = conn.form_defaults(rt)
    state.setdefault("connect_account_id", defaults.account_id)
    state.setdefault("connect_name", defaults.name)
    state.setdefault("connect_region", defaults.region if defaults.region in REGIONS else "IN1")
    state.setdefault("connect_passcode", defaults.passcode)
    with st.expander("Connect a CleverTap project", expanded=expanded):
        if rt.settings.is_sandbox:
            st.caption(":material/science: Sandbox mode: the form holds the demo project's credentials and connects "
                       "to the simulated CleverTap on this machine.")
        st.text_input("Project ID", key="connect_account_id", placeholder="W8R-8R5-K55Z",
                      help="CleverTap dashboard → Settings → Project.")
        st.text_input("Passcode", type="password", key="connect_passcode", placeholder=defaults.passcode_hint,
                      help="CleverTap dashboard → Settings → Passcode. Never stored in the database.")
        region_col, url_col = st.columns(2)
        region_col.selectbox("Region", list(REGIONS), key="connect_region", format_func=conn.region_label,
                             help=conn.REGION_HINT)
        url_col.text_input("…or paste your dashboard URL", key="connect_dashboard_url",
                           placeholder="https://in1.dashboard.clevertap.com/…", help="The region is read from it.")
        st.text_input("Account name", key="connect_name", placeholder="e.g. Shop app (production)",
                      help="A nickname that tells your connections apart.")
        st.checkbox("Remember the passcode in .env (mode 0600) so it survives a restart",
                    key="connect_remember", disabled=not defaults.can_remember,
                    help="Not needed in sandbox mode." if rt.settings.is_sandbox else
                    "Unticked: kept in this server's memory only, and asked again after a restart.")
        st.button("Test and save", key="connect_save", type="primary", on_click=_save_new, args=(rt,))
    flash("connect_flash")


def _save_token(rt: Runtime) -> None:
    try:
        credits = conn.save_clearout_token(rt, state.get("connect_token", ""), user=current_user(),
                                           remember=state.get("connect_token_remember", False))
    except UserError as exc:
        state["connect_token_flash"] = ("error", escape_md(exc.message))
        return
    state["connect_token"] = ""
    state["connect_token_flash"] = ("success", f"Clearout token saved: {credits.available:,} credits available.")


def clearout_section(rt: Runtime) -> None:
    clearout = conn.clearout_view(rt)
    if clearout.credits is not None:
        st.metric("Clearout credits available", f"{clearout.credits:,}")
        st.caption(clearout.storage_label + (f" · {escape_md(clearout.message)}" if clearout.message else ""))
    elif clearout.storage != "none":
        st.info(f"{escape_md(clearout.message or '')} ({clearout.storage_label})", icon=":material/hourglass_top:")
    else:
        st.info("No Clearout API token yet: enter it below to verify lists.", icon=":material/info:")
    if not current_user().can(ADMIN):
        return
    title = "Replace the Clearout API token" if clearout.storage != "none" else "Enter the Clearout API token"
    with st.expander(title, expanded=clearout.storage == "none"):
        st.text_input("Clearout API token", type="password", key="connect_token",
                      help="app.clearout.io → Developer → API token. Never stored in the database.")
        st.checkbox("Remember the token in .env (mode 0600)", key="connect_token_remember",
                    disabled=not conn.can_remember(rt))
        st.button("Check and save token", key="connect_token_save", on_click=_save_token, args=(rt,))
    flash("connect_token_flash")
