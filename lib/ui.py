"""The one module of lib/ that imports Streamlit: cached services and widgets every page shares."""
from __future__ import annotations

import streamlit as st

from lib.guide import PAGE_ICONS
from lib.runtime import Runtime, start_runtime
from lib.settings import load_settings

CREDITS_TTL_S = 60  # the sidebar shows the balance on every rerun; Clearout limits requests/minute


@st.cache_resource(show_spinner="Starting services…", on_release=Runtime.close)
def runtime() -> Runtime:
    """One Runtime per server process: shared by all sessions and reruns."""
    return start_runtime(load_settings())


def mode_badge() -> None:
    rt = runtime()
    if rt.settings.is_sandbox:
        st.sidebar.markdown(":orange-badge[:material/science: Sandbox] simulated CleverTap and Clearout")
    else:
        st.sidebar.markdown(":green-badge[:material/cloud_done: Live] real CleverTap and Clearout")


def sandbox_banner() -> None:
    """On every page in sandbox mode: nothing here touches a real CRM or spends real credits."""
    if runtime().settings.is_sandbox:
        st.info("**Sandbox mode** · the data is simulated: a local CleverTap project and Clearout "
                "account with realistic demo data. Nothing here touches a real CRM or spends real "
                "credits. Configure credentials to go live (see the README).", icon=":material/science:")


_ROUTED = "_ui_routed"


def app_pages() -> list:
    """The app's pages, in the order of the five steps (Material icons are bundled: no emoji font needed)."""
    titles = {"pages/home.py": "Home", "pages/connect.py": "Connect", "pages/lists.py": "Lists",
              "pages/verify.py": "Verify", "pages/results.py": "Results", "pages/export.py": "Export",
              "pages/history.py": "History"}
    return [st.Page(page, title=title, icon=PAGE_ICONS[page], default=page == "pages/home.py")
            for page, title in titles.items()]


def mark_routed() -> None:
    """Called by app.py: this session's scripts run through the router."""
    st.session_state[_ROUTED] = True


def page_header(title: str, purpose: str) -> None:
    """Every page starts here: its title, one line on what it does, the sandbox banner."""
    if not st.session_state.get(_ROUTED):
        # Streamlit quirk: until some run calls st.navigation, a server whose entry point sits
        # beside a pages/ folder runs a deep link (/results) in the legacy pages/ mode: the page
        # alone, without app.py. Calling st.navigation switches the legacy mode off for good
        # (documented behaviour); the rerun then goes through the router.
        st.navigation(app_pages(), position="hidden")
        st.session_state[_ROUTED] = True
        st.rerun()
    st.title(title)
    st.caption(purpose)
    sandbox_banner()


def counts(*names: str) -> dict:
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


# ---- verification: credits balance and job rows (Verify and Home) ------------------------------
@st.cache_data(ttl=CREDITS_TTL_S, max_entries=4, show_spinner=False)
def _clearout_balance(mode: str, has_token: bool) -> "Balance":
    from lib.jobs import read_balance

    return read_balance(runtime())


def clearout_balance(refresh: bool = False) -> "Balance":
    """The Clearout balance (read at most once a minute), or why it is unknown."""
    rt = runtime()
    if refresh:
        _clearout_balance.clear()
    return _clearout_balance(rt.mode, bool(rt.vault.clearout_token()))


def job_rows(views: "list[JobView]", key_prefix: str) -> None:
    """One row per verification job: list, state, progress, credits, and a Cancel button."""
    from lib import jobs

    for view in views:
        with st.container(border=True):
            left, right = st.columns([5, 1], vertical_alignment="center")
            left.markdown(f"**{view.list_name}** · {view.label}")
            if view.job.state in ("uploading", "verifying", "downloading"):
                left.progress(view.progress)
            (left.error if view.job.state == "failed" else left.caption)(view.detail)
            if view.cancellable:
                # A callback: it runs before the rerun that the click starts, which then shows the result.
                right.button("Cancel", key=f"{key_prefix}_cancel_{view.job.id}", on_click=jobs.cancel,
                             args=(runtime().store, view.job.id),
                             help="Stop this verification; rows Clearout has not verified yet are free")

def rerun_when_jobs_finish(views: "list[JobView]", key: str) -> None:
    """From a polling fragment: rerun the whole page once a job it showed in flight has finished,
    so the figures outside the fragment (cost, balance, steps) catch up."""
    in_flight = {view.job.id for view in views if not view.job.is_final}
    before = st.session_state.get(key)
    st.session_state[key] = in_flight
    if before and before - in_flight:
        clearout_balance(refresh=True)
        st.rerun()


# ---- results: the merged frame and its summary, cached per verified list (Results) ---------------
RESULTS_TTL_S = 30 * 60  # a list nobody looked at for half an hour leaves memory
RESULTS_MAX_LISTS = 2  # a 1,000,000-row merged frame holds about 300 MB
PLOTLY_CONFIG = {  # offline: no Plotly logo link, no Chart Studio; Streamlit bundles plotly.js itself
    "displaylogo": False, "showLink": False, "showSendToCloud": False, "showEditInChartStudio": False,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}


@st.cache_resource(ttl=RESULTS_TTL_S, max_entries=RESULTS_MAX_LISTS, show_spinner="Joining the verdicts to the rows…")
def verified_frame(data_dir: str, list_id: int, job_id: int, version: str) -> "pd.DataFrame":
    """A verified list's merged rows (lib.results.load_merged), one object shared by all sessions: READ-ONLY.

    cache_resource, not cache_data: cache_data hands every rerun an unpickled copy, about 1.5 s and
    300 MB for a 1,000,000-row list, which alone would blow the 0.5 s rerun budget. The price is that
    every caller holds the same frame, so it must never be mutated: lib.merge, lib.charts and
    lib.downloads only read it (filters return new frames). Key: lib.results.cache_key.
    """
    from lib import results

    return results.load_merged(runtime().store, list_id, job_id)


@st.cache_data(ttl=RESULTS_TTL_S, max_entries=4 * RESULTS_MAX_LISTS, show_spinner=False)
def verified_summary(data_dir: str, list_id: int, job_id: int, version: str) -> "Summary":
    """Key figures, chart aggregations and filter options: a few KB, so cache_data's copy is cheap."""
    from lib import results

    store = runtime().store
    return results.summarise(verified_frame(data_dir, list_id, job_id, version),
                             store.get_list(list_id).email_column, store.get_job(job_id))


@st.cache_resource(ttl=RESULTS_TTL_S, max_entries=4 * RESULTS_MAX_LISTS, show_spinner=False)
def verified_charts(data_dir: str, list_id: int, job_id: int, version: str) -> "tuple[go.Figure, ...]":
    """The seven Results figures: READ-ONLY, shared. Building them takes ~0.12 s and unpickling half of
    that; st.plotly_chart only reads a figure (to_dict), so one shared copy is safe."""
    from lib import results

    return results.figures(verified_summary(data_dir, list_id, job_id, version))


def clearout_column_config(email_column: str | None) -> dict:
    """st.dataframe column_config for a merged list: the address as text, Clearout columns with
    their meaning as help, verified-at as a UTC date-time, time taken in ms."""
    from lib import columns as co

    config: dict = {c.name: st.column_config.TextColumn(help=c.meaning) for c in co.CLEAROUT_COLUMNS}
    config[co.VERIFIED_AT] = st.column_config.DatetimeColumn(
        help=co.CLEAROUT_COLUMNS[co.CLEAROUT_COLUMN_NAMES.index(co.VERIFIED_AT)].meaning,
        format="YYYY-MM-DD HH:mm:ss", timezone="UTC")
    config[co.TIME_TAKEN] = st.column_config.NumberColumn(help="Verification time", format="%d ms")
    config[co.VERDICT_SOURCE] = st.column_config.TextColumn(
        help="Verified now (spent a credit), Cached (a recent verdict reused), Syntax check, No email")
    if email_column:
        config[email_column] = st.column_config.TextColumn(help="The address as it is in the list", pinned=True)
    return config


# ---- export: one run's progress, outcome, read-back and unprocessed records (Export, History) ----
def export_run_panel(run_id: int, key: str) -> None:
    """What the store says about an export run; call it from an `st.fragment(run_every=...)`."""
    from lib import export
    from lib.clevertap import CleverTapError
    from lib.runtime import MissingSecretError

    rt = runtime()
    status = export.run_status(rt.store, run_id)
    run = status.run
    st.markdown(f"**Run {run.id}** · {export.KIND_WORDS[run.kind].lower()} of **{run.list_name}** to "
                f"**{run.connection_name}** ({run.account_id}, {run.region}) · by {run.actor} · "
                f"{timestamp(run.created_at)}")
    if run.state in ("planned", "running"):
        st.progress(status.fraction, text=("All sent: reading a sample back from CleverTap… " if status.reading_back
                                           else "Sending… ") + status.line)
        if status.waiting:
            st.warning(status.waiting, icon=":material/key:")
            link("pages/connect.py", "Enter the passcode on Connect to resume")
        st.button("Stop after the batches in flight", key=f"{key}_stop_{run.id}", on_click=export.stop_run,
                  args=(rt.store, run.id), help="Finished batches stay recorded; resume later to send the rest")
        return
    if run.state == "done":
        st.success(f"Done · {status.line}", icon=":material/check_circle:")
    else:
        (st.error if run.state == "failed" else st.warning)(
            f"{'Failed' if run.state == 'failed' else 'Stopped'} · {status.line}"
            + (f" · {run.error}" if run.error else ""), icon=":material/warning:")
        st.button("Resume: send the batches not sent yet", key=f"{key}_resume_{run.id}",
                  on_click=export.resume_run, args=(rt.store, run.id))
    if (table := export.read_back_table(run)) is not None:
        confirmed = int(table["Confirmed"].sum())
        st.markdown(f"**Read-back check:** {confirmed} of {len(table)} sampled profiles read back from "
                    "CleverTap exactly as planned.")
        st.dataframe(table, key=f"{key}_readback_{run.id}", hide_index=True, width="stretch")
    if run.state == "done" and st.button("Check again now", key=f"{key}_recheck_{run.id}"):
        try:
            export.refresh_read_back(rt, run.id)
            st.rerun()
        except (MissingSecretError, export.ExportError, CleverTapError) as exc:
            st.error(str(exc))
    st.caption(export.dashboard_help(run.region, undo=run.kind == "undo"))
    if status.unprocessed:
        st.markdown(f"**{status.unprocessed:,} record(s) CleverTap left unprocessed** (first 1,000):")
        st.dataframe(export.run_changes(rt.store, run.id, outcomes=["unprocessed"], limit=1000),
                     key=f"{key}_unprocessed_{run.id}", hide_index=True, width="stretch")
        if st.button("Retry the unprocessed records", key=f"{key}_retry_{run.id}"):
            try:
                export.start_retry(rt.store, run.id, actor=st.session_state.get("export_actor") or
                                   export.default_actor())
                st.rerun()
            except export.ExportError as exc:
                st.error(str(exc))
