"""The door and the sidebar's "who": sign-in through the team's identity provider (st.login), the
page for a person without a role, the refusal to serve a network without sign-in, and sign-out."""
from __future__ import annotations

import streamlit as st

from lib.access import ROLE_MEANS, ROLE_WORDS, User
from lib.ui import escape_md, serving_decision, sign_in


def door() -> None:
    """For a visitor the app does not serve: the reason and the way in. Stops the script."""
    decision = serving_decision()
    st.title("List hygiene · Clearout × CleverTap")
    if decision.serving == "refuse":
        st.error(escape_md(decision.message), icon=":material/block:")
        st.stop()
    found = sign_in()
    if found is None:
        st.subheader("Sign in")
        st.markdown("This app reads your team's CleverTap audiences and writes unsubscribes back to them: sign in "
                    "with your company account to continue.")
        st.button("Sign in", key="auth_sign_in", type="primary", icon=":material/login:", on_click=st.login)
        st.stop()
    st.subheader("No access yet")
    st.warning(escape_md(found.refusal or "This app has not given you a role."), icon=":material/lock:")
    st.markdown("\n".join(f"* **{ROLE_WORDS[role]}**: {means}" for role, means in ROLE_MEANS.items()))
    st.button("Sign out", key="auth_sign_out_no_role", icon=":material/logout:", on_click=st.logout)
    st.stop()


def sidebar(user: User | None) -> None:
    """Who is signed in, with which role, and sign-out; the door for nobody (it stops the script)."""
    if user is None:
        door()
        return
    if user.local:
        open_network = serving_decision().serving == "open"
        st.sidebar.markdown(":material/computer: **" + escape_md(user.name) + "**"
                            + (" · :red-badge[open to the network]" if open_network else ""))
        st.sidebar.caption(f"{ROLE_WORDS[user.role]}: every right. Configure sign-in to give your team roles "
                           "(README, \"Sign-in\").")
        return
    st.sidebar.markdown(f":material/person: **{escape_md(user.name)}** · {ROLE_WORDS[user.role]}")
    st.sidebar.caption(escape_md(user.email))
    st.sidebar.button("Sign out", key="auth_sign_out", icon=":material/logout:", on_click=st.logout)
