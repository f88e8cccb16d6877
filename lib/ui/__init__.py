"""The only part of lib/ that imports Streamlit: the cached runtime, the page frame, shared widgets.

Pages import `lib.ui` for the frame every page has, and `lib.ui.<area>` for an area's widgets.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import pandas as pd
import streamlit as st

from lib import actions, funnel, serving
from lib.access import NotAllowed, Role, SignIn, User, local_user, signed_in
from lib.figures import COMPACT_FROM, Metric, compact_number
from lib.guide import PAGE_ICONS
from lib.runtime import Runtime, start_runtime
from lib.settings import load_settings
from lib.verification.balance import Balance, current_balance
from lib.worker.status import worker_status


@st.cache_resource(show_spinner="Starting services…", on_release=Runtime.close)
def runtime() -> Runtime:
    """One Runtime per server process: shared by all sessions and reruns."""
    return start_runtime(load_settings(), role="app")


def mode_badge() -> None:
    if runtime().settings.is_sandbox:
        st.sidebar.markdown(":orange-badge[:material/science: Sandbox] simulated CleverTap and Clearout")
    else:
        st.sidebar.markdown(":green-badge[:material/cloud_done: Live] real CleverTap and Clearout")


def sandbox_banner() -> None:
    """On every page in sandbox mode: nothing here touches a real CRM or spends real credits."""
    if runtime().settings.is_sandbox:
        st.info("**Sandbox mode** · the data is simulated: a local CleverTap project and Clearout "
                "account with realistic demo data. Nothing here touches a real CRM or spends real "
                "credits. Configure credentials to go live (see the README).", icon=":material/science:")


def worker_banner() -> None:
    """On every page while the worker process is down: long work waits, and the user is told."""
    rt = runtime()
    status = worker_status(rt.store, rt.mode)
    if not status.alive and status.message:
        st.warning(status.message, icon=":material/engineering:")


_ROUTED = "_ui_routed"
PAGE_TITLES = {"pages/home.py": "Home", "pages/connect.py": "Connect", "pages/lists.py": "Lists",
               "pages/verify.py": "Verify", "pages/results.py": "Results", "pages/export.py": "Export",
               "pages/history.py": "History"}


def app_pages() -> list[Any]:
    """The app's pages, in the order of the five steps (Material icons are bundled: no emoji font needed)."""
    return [st.Page(page, title=title, icon=PAGE_ICONS[page], default=page == "pages/home.py")
            for page, title in PAGE_TITLES.items()]


def mark_routed() -> None:
    """Called by app.py: this session's scripts run through the router."""
    st.session_state[_ROUTED] = True


def page_header(title: str, purpose: str) -> Runtime:
    """Every page starts here: its title, one line on what it does, the banners. Returns the runtime.

    Nothing renders for a visitor the app does not know (the router shows them the sign-in screen).
    """
    if not st.session_state.get(_ROUTED):
        # Streamlit quirk: until some run calls st.navigation, a server whose entry point sits
        # beside a pages/ folder runs a deep link (/results) in the legacy pages/ mode: the page
        # alone, without app.py. Calling st.navigation switches the legacy mode off for good
        # (documented behaviour); the rerun then goes through the router.
        st.navigation(app_pages(), position="hidden")
        st.session_state[_ROUTED] = True
        st.rerun()
    if visitor() is None:
        st.stop()
    st.title(title)
    st.caption(purpose)
    open_network_banner()
    sandbox_banner()
    worker_banner()
    return runtime()


def counts(*names: str) -> dict[str, Any]:
    """st.dataframe column_config showing these count columns with thousands separators."""
    return {name: st.column_config.NumberColumn(format="localized") for name in names}


def link(page: str, label: str) -> None:
    """A link to another page, with that page's icon from the navigation."""
    st.page_link(page, label=label, icon=PAGE_ICONS[page])


def timestamp(iso: str | None, never: str = "never") -> str:
    """A store timestamp (ISO 8601 UTC) as people read it: `2025-11-26 14:05 UTC`."""
    if not iso:
        return never
    return iso.replace("T", " ")[:16] + " UTC"


_MARKDOWN_SPECIALS = set("\\`*_{}[]()#+-.!|<>~:$")


def escape_md(text: object) -> str:
    """User text (a list name, a header, a value) inside Markdown: shown as typed, never interpreted.

    `![x](http://host/p.png)` as a list name must not make every browser fetch that URL.
    """
    return "".join("\\" + ch if ch in _MARKDOWN_SPECIALS else ch for ch in str(text))


def flash(key: str) -> None:
    """Show, once, a message a callback left in session state as (kind, text)."""
    kind, text = st.session_state.pop(key, (None, None))
    if kind in ("success", "error", "info", "warning"):
        getattr(st, kind)(text)


# ---- who is here -------------------------------------------------------------------------------
def serving_decision() -> serving.Decision:
    """How this server may serve: sign-in (an [auth] section: st.user then carries is_logged_in), one
    local user on a loopback address, open to a network by opt-out, or not at all."""
    return serving.decide(str(st.get_option("server.address") or ""), signin="is_logged_in" in st.user.to_dict(),
                          allow_unauthenticated=runtime().settings.allow_unauthenticated_network)


def sign_in() -> SignIn | None:
    """The signed-in person's identity and role (or why they have none); None when not signed in."""
    claims = st.user.to_dict()
    if not claims.get("is_logged_in"):
        return None
    return signed_in(runtime().settings, claims)


def visitor() -> User | None:
    """The person this session serves, or None: not signed in, no role, or the app refuses to serve here."""
    decision = serving_decision()
    if decision.serving in ("local", "open"):
        return local_user()
    if decision.serving == "refuse":
        return None
    found = sign_in()
    return found.user if found is not None else None


def current_user() -> User:
    """Who is using this session, for the guarded services and the records.

    Raises:
        NotAllowed: nobody is signed in (a callback of a session that signed out meanwhile).
    """
    user = visitor()
    if user is None:
        raise NotAllowed("Sign in first.")
    return user


def allowed(role: Role, what: str) -> bool:
    """Whether this session's user has `role`; when not, says so in place of the controls: `what`
    ("Verifying") needs the role, and whom to ask."""
    user = current_user()
    if user.can(role):
        return True
    st.caption(f":material/lock: {escape_md(what)} needs the {role} role; you are a {user.role}. Ask an admin "
               "of this app for it.")
    return False


def open_network_banner() -> None:
    """On every page when the app serves a network without sign-in (ALLOW_UNAUTHENTICATED_NETWORK=1)."""
    decision = serving_decision()
    if decision.serving == "open":
        st.warning(f"**Open to the network, no sign-in.** {escape_md(decision.message)}", icon=":material/public:")


Data = TypeVar("Data", bytes, str)


def audited(data: Callable[[], Data], action: str, target: str, mode: str | None = None) -> Callable[[], Data]:
    """A download button's data that records the download (who, what, when) when it is produced.

    Streamlit calls a callable `data` on the click, to make the file: recording there keeps
    `on_click="ignore"` (no rerun of a page that may hold a million rows) and records only real clicks.
    """
    store, user = runtime().store, current_user()

    def produce() -> Data:
        made = data()
        actions.record(store, user, action, target=target, mode=mode)
        return made
    return produce


def recorder(action: str, target: str, mode: str | None = None) -> Callable[[], None]:
    """Records a download (who, what, when) when called: given to a download link (lib.download_links),
    which calls it when the browser fetches the file."""
    store, user = runtime().store, current_user()

    def record() -> None:
        actions.record(store, user, action, target=target, mode=mode)
    return record


def glossary() -> None:
    """What the funnel's words mean (lib.funnel), the same on every page that counts."""
    with st.expander("What the words mean", icon=":material/help:"):
        st.dataframe(pd.DataFrame(funnel.glossary(), columns=["Word", "Meaning"]), hide_index=True,
                     width="stretch", key="glossary")


def clearout_balance() -> Balance:
    """The Clearout balance as the worker last read it (it is asked for a fresh one when stale)."""
    rt = runtime()
    return current_balance(rt.store, rt.mode, has_token=rt.clients.has_clearout_token())


def balance_text(balance: Balance) -> str:
    return "—" if balance.available is None else f"{balance.available:,}"


def metric_row(metrics: list[Metric], *, border: bool = False) -> None:
    """Key figures side by side, each with its note under the value and its help on hover.

    Each card is as wide as its label, value and note, in a row that wraps: at a narrow window fewer
    cards share a row instead of each being cut to "6,…" (equal columns truncated at 1024 px). A
    figure of a million or more is shown short (12.3M), the exact one in its help.
    """
    with st.container(horizontal=True, gap="medium"):
        for metric in metrics:
            value, exact = _metric_value(metric.value)
            st.metric(metric.label, value, metric.note or None, delta_color="off", delta_arrow="off",
                      help=" ".join(t for t in (metric.help, exact) if t) or None, border=border, width="content")


def big_metric(label: str, value: str, *, help: str | None = None) -> None:
    """One figure on its own (a narrow side column on Home): a million or more shown short, exact in help."""
    shown, exact = _metric_value(value)
    st.metric(label, shown, help=" ".join(t for t in (help, exact) if t) or None, width="content")


def _metric_value(value: str) -> tuple[str, str | None]:
    digits = value.replace(",", "")
    if digits.isdigit() and int(digits) >= COMPACT_FROM:
        return compact_number(int(digits)), f"Exactly {value}."
    return value, None


def say(tone: str | None, message: str | None, icon: str | None = None) -> None:
    """A message in the tone a lib decision chose (info, warning, error, success); nothing for None.

    Lib messages are plain text that may quote user text (a list name, who started it): never Markdown.
    """
    if tone in ("info", "warning", "error", "success") and message:
        getattr(st, tone)(escape_md(message), icon=icon)


def error(exc: Exception) -> None:
    """A lib error's message (UserError.message), shown as typed: it may quote a header or a list name."""
    st.error(escape_md(getattr(exc, "message", "Something went wrong.")))
