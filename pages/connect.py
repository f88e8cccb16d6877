"""Connect: CleverTap projects (Project ID, passcode, region) and the Clearout API token."""
import streamlit as st

from lib import connections as conn
from lib import ui
from lib.clevertap import REGIONS

ui.page_header("Connect", "Connect CleverTap projects (Project ID, passcode, region) and your Clearout API token.")
rt = ui.runtime()
state = st.session_state
defaults = conn.form_defaults(rt)
state.setdefault("connect_account_id", defaults.account_id)
state.setdefault("connect_name", defaults.name)
state.setdefault("connect_region", defaults.region if defaults.region in REGIONS else "IN1")
state.setdefault("connect_passcode", defaults.passcode)


def flash(key: str) -> None:
    kind, text = state.pop(key, (None, None))
    if kind:
        getattr(st, kind)(text)


def save(account_id: str, passcode_key: str, region: str, name: str, remember_key: str, flash_key: str) -> None:
    try:
        connection = conn.check_and_save(rt, name=name, account_id=account_id, passcode=state.get(passcode_key, ""),
                                         region=region, remember=state.get(remember_key, False))
    except conn.ConnectError as exc:
        state[flash_key] = ("error", exc.message)
        if exc.region and flash_key == "connect_flash":  # pre-select the region CleverTap named
            state["connect_region"], state["connect_dashboard_url"] = exc.region, ""
            state[flash_key] = ("error", f"{exc.message}. {exc.region} is selected now: press **Test and save**.")
        return
    state[passcode_key] = ""
    state[flash_key] = ("success", f"Connected {connection.name}: CleverTap accepted the credentials.")


def save_new() -> None:
    try:
        region = conn.resolve_region(state["connect_region"], state.get("connect_dashboard_url"))
    except conn.ConnectError as exc:
        state["connect_flash"] = ("error", exc.message)
        return
    save(state["connect_account_id"], "connect_passcode", region, state["connect_name"], "connect_remember",
         "connect_flash")


st.subheader("CleverTap projects")
views = conn.connection_views(rt)
if not views:
    st.info("No CleverTap project connected yet: fill in the form below and press **Test and save**.",
            icon=":material/info:")
for view in views:
    c = view.connection
    with st.container(border=True):
        left, right = st.columns([5, 1])
        left.markdown(f"**{c.name}** · `{c.account_id}` · {conn.region_label(c.region)}")
        left.caption(f"Last successful check: {ui.timestamp(c.last_checked_at)} · {view.secret_label}")
        right.button("Remove", key=f"connect_remove_{c.id}", on_click=state.update,
                     args=({"connect_confirm_remove": c.id},))
        flash(f"connect_flash_{c.id}")
        if view.secret == "needed":
            left.text_input("Passcode", type="password", key=f"connect_repass_{c.id}")
            left.checkbox("Remember in .env (mode 0600)", key=f"connect_reremember_{c.id}",
                          disabled=not conn.can_remember(rt))
            left.button("Test and save", key=f"connect_resave_{c.id}", on_click=save,
                        args=(c.account_id, f"connect_repass_{c.id}", c.region, c.name,
                              f"connect_reremember_{c.id}", f"connect_flash_{c.id}"))
        if state.get("connect_confirm_remove") == c.id:
            st.warning(f"Remove **{c.name}**? Its saved audiences go too; lists already pulled stay. "
                       "The passcode is forgotten (also from .env).")
            yes, no = st.columns(2)
            if yes.button("Yes, remove", key=f"connect_remove_yes_{c.id}", type="primary"):
                conn.remove_connection(rt, c.id)
                state.pop("connect_confirm_remove")
                st.rerun()
            no.button("Cancel", key=f"connect_remove_no_{c.id}", on_click=state.pop, args=("connect_confirm_remove",))

with st.expander("Connect a CleverTap project", expanded=not views):
    if rt.settings.is_sandbox:
        st.caption(":material/science: Sandbox mode: the form holds the demo project's credentials and connects to the "
                   "simulated CleverTap on this machine.")
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
    st.button("Test and save", key="connect_save", type="primary", on_click=save_new)
flash("connect_flash")

st.subheader("Clearout")
clearout = conn.clearout_view(rt)
if clearout.credits is not None:
    st.metric("Clearout credits available", f"{clearout.credits.available:,}")
    st.caption(clearout.storage_label)
elif clearout.error:
    st.error(f"{clearout.error} ({clearout.storage_label})")
else:
    st.info("No Clearout API token yet: enter it below to verify lists.", icon=":material/info:")


def save_token() -> None:
    try:
        credits = conn.save_clearout_token(rt, state.get("connect_token", ""),
                                           remember=state.get("connect_token_remember", False))
    except conn.ConnectError as exc:
        state["connect_token_flash"] = ("error", exc.message)
        return
    state["connect_token"] = ""
    state["connect_token_flash"] = ("success", f"Clearout token saved: {credits.available:,} credits available.")


with st.expander("Replace the Clearout API token" if clearout.storage != "none" else "Enter the Clearout API token",
                 expanded=clearout.storage == "none"):
    st.text_input("Clearout API token", type="password", key="connect_token",
                  help="app.clearout.io → Developer → API token. Never stored in the database.")
    st.checkbox("Remember the token in .env (mode 0600)", key="connect_token_remember",
                disabled=not conn.can_remember(rt))
    st.button("Check and save token", key="connect_token_save", on_click=save_token)
flash("connect_token_flash")
