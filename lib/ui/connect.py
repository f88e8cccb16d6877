"""The Connect page's parts: saved projects (with re-entering a lost passcode and removing), the form
for a new project, and the Clearout token with the balance."""
from __future__ import annotations

import streamlit as st

from lib import connections as conn
from lib.access import ADMIN
from lib.clevertap import REGIONS
from lib.errors import UserError
from lib.runtime import Runtime
from lib.ui import big_metric, current_user, escape_md, flash, timestamp

state = st.session_state


# After a successful save the form starts again with fresh widgets (new keys): a field reset from the
# script (`state[key] = ""`) is not always redrawn by Streamlit 1.67, and the Connect form then showed
# the dots of a passcode the app no longer held for it.
_GENERATION = "connect_form_generation"


def _key(name: str) -> str:
    """The key of a new-project form field in this generation of the form."""
    generation = state.get(_GENERATION, 0)
    return f"connect_{name}" + (f"_{generation}" if generation else "")


def _save(rt: Runtime, account_id: str, passcode_key: str, region: str, name: str, remember_key: str,
          flash_key: str) -> bool:
    try:
        connection = conn.check_and_save(rt, name=name, account_id=account_id, passcode=state.get(passcode_key, ""),
                                         region=region, remember=state.get(remember_key, False), user=current_user())
    except conn.ConnectError as exc:
        state[flash_key] = ("error", escape_md(exc.message))
        if exc.region and flash_key == "connect_flash":  # pre-select the region CleverTap named
            state[_key("region")], state[_key("dashboard_url")] = exc.region, ""
            state[flash_key] = ("error", f"{escape_md(exc.message)}. {exc.region} is selected now: press "
                                         "**Test and save**.")
        return False
    except UserError as exc:
        state[flash_key] = ("error", escape_md(exc.message))
        return False
    state.pop(passcode_key, None)
    state[flash_key] = ("success", f"Connected {escape_md(connection.name)}: CleverTap accepted the credentials.")
    return True


def _resave(rt: Runtime, account_id: str, passcode_key: str, region: str, name: str, remember_key: str,
            flash_key: str) -> None:
    """A saved project's passcode entered again (its form's callback)."""
    _save(rt, account_id, passcode_key, region, name, remember_key, flash_key)


def _save_new(rt: Runtime) -> None:
    try:
        region = conn.resolve_region(state[_key("region")], state.get(_key("dashboard_url")))
    except conn.ConnectError as exc:
        state["connect_flash"] = ("error", escape_md(exc.message))
        return
    fields = [_key(f) for f in ("account_id", "passcode", "name", "region", "dashboard_url", "remember")]
    if _save(rt, state[_key("account_id")], _key("passcode"), region, state[_key("name")], _key("remember"),
             "connect_flash"):
        for field in fields:
            state.pop(field, None)
        state[_GENERATION] = state.get(_GENERATION, 0) + 1


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
            left.markdown(f"**{escape_md(c.name)}** · {escape_md(c.account_id)} · {conn.region_label(c.region)}")
            left.caption(f"Last successful check: {timestamp(c.last_checked_at)} · {view.secret_label}")
            flash(f"connect_flash_{c.id}")
            if not admin:
                continue
            right.button("Remove", key=f"connect_remove_{c.id}", on_click=state.update,
                         args=({"connect_confirm_remove": c.id},))
            if view.secret == "needed":
                with left.form(f"connect_repass_form_{c.id}", border=False):  # a form: see new_project_form
                    st.text_input("Passcode", type="password", key=f"connect_repass_{c.id}")
                    st.checkbox("Remember in .env (mode 0600)", key=f"connect_reremember_{c.id}",
                                disabled=not conn.can_remember(rt))
                    st.form_submit_button("Test and save", key=f"connect_resave_{c.id}", on_click=_resave,
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
    state.setdefault(_key("account_id"), defaults.account_id)
    state.setdefault(_key("name"), defaults.name)
    state.setdefault(_key("region"), defaults.region if defaults.region in REGIONS else "IN1")
    state.setdefault(_key("passcode"), defaults.passcode)
    # A form, not loose widgets: outside a form Streamlit (1.67) sends a text field's value only on
    # Enter or when the field loses focus to something outside the widget. Tab from a password field
    # moves the focus to its own "Show password" button, inside the widget, so nothing is sent, and
    # leaving that button later sends nothing either: "Enter the passcode" while the field shows dots.
    # A form sends every field's value with the submit, wherever the focus went.
    with st.expander("Connect a CleverTap project", expanded=expanded), st.form("connect_form", border=False):
        if rt.settings.is_sandbox:
            st.caption(":material/science: Sandbox mode: the form holds the demo project's credentials and connects "
                       "to the simulated CleverTap on this machine.")
        st.text_input("Project ID", key=_key("account_id"), placeholder="W8R-8R5-K55Z",
                      help="CleverTap dashboard → Settings → Project.")
        st.text_input("Passcode", type="password", key=_key("passcode"), placeholder=defaults.passcode_hint,
                      help="CleverTap dashboard → Settings → Passcode. Never stored in the database.")
        region_col, url_col = st.columns(2)
        region_col.selectbox("Region", list(REGIONS), key=_key("region"), format_func=conn.region_label,
                             help=conn.REGION_HINT)
        url_col.text_input("…or paste your dashboard URL", key=_key("dashboard_url"),
                           placeholder="https://in1.dashboard.clevertap.com/…", help="The region is read from it.")
        st.text_input("Account name", key=_key("name"), placeholder="e.g. Shop app (production)",
                      help="A nickname that tells your connections apart.")
        st.checkbox("Remember the passcode in .env (mode 0600) so it survives a restart",
                    key=_key("remember"), disabled=not defaults.can_remember,
                    help="Not needed in sandbox mode." if rt.settings.is_sandbox else
                    "Unticked: kept in this server's memory only, and asked again after a restart.")
        st.form_submit_button("Test and save", key="connect_save", type="primary", on_click=_save_new, args=(rt,))
    flash("connect_flash")


def _token_key(name: str) -> str:
    generation = state.get(_GENERATION + "_token", 0)
    return f"connect_{name}" + (f"_{generation}" if generation else "")


def _save_token(rt: Runtime) -> None:
    try:
        credits = conn.save_clearout_token(rt, state.get(_token_key("token"), ""), user=current_user(),
                                           remember=state.get(_token_key("token_remember"), False))
    except UserError as exc:
        state["connect_token_flash"] = ("error", escape_md(exc.message))
        return
    for field in ("token", "token_remember"):
        state.pop(_token_key(field), None)
    state[_GENERATION + "_token"] = state.get(_GENERATION + "_token", 0) + 1  # fresh widgets: see _GENERATION
    state["connect_token_flash"] = ("success", f"Clearout token saved: {credits.available:,} credits available.")


def clearout_section(rt: Runtime) -> None:
    clearout = conn.clearout_view(rt)
    if clearout.credits is not None:
        big_metric("Clearout credits available", f"{clearout.credits:,}")
        st.caption(clearout.storage_label + (f" · {escape_md(clearout.message)}" if clearout.message else ""))
    elif clearout.storage != "none":
        st.info(f"{escape_md(clearout.message or '')} ({clearout.storage_label})", icon=":material/hourglass_top:")
    else:
        st.info("No Clearout API token yet: enter it below to verify lists.", icon=":material/info:")
    if not current_user().can(ADMIN):
        return
    title = "Replace the Clearout API token" if clearout.storage != "none" else "Enter the Clearout API token"
    with st.expander(title, expanded=clearout.storage == "none"), st.form("connect_token_form", border=False):
        st.text_input("Clearout API token", type="password", key=_token_key("token"),
                      help="app.clearout.io → Developer → API token. Never stored in the database.")
        st.checkbox("Remember the token in .env (mode 0600)", key=_token_key("token_remember"),
                    disabled=not conn.can_remember(rt))
        st.form_submit_button("Check and save token", key="connect_token_save", on_click=_save_token, args=(rt,))
    flash("connect_token_flash")
