"""The Results page's caches (a verified list's summary, charts and filtered preview, shared by every
session per list, job and merged file's version), its filters, and its download links."""
from __future__ import annotations

from typing import Any

import plotly.graph_objects as go
import streamlit as st

from lib import columns as co
from lib import download_links, downloads, results, resultset
from lib.filters import FilterOptions, Selection
from lib.resultset import Rows
from lib.ui import current_user, recorder, runtime
from lib.ui.tasks import task_answer

RESULTS_TTL_S = 30 * 60  # figures nobody looked at for half an hour leave memory
RESULTS_MAX_LISTS = 8  # a summary is a few KB; the rows themselves stay on disk (lib.resultset)
PLOTLY_CONFIG = {  # offline: no Plotly logo link, no Chart Studio; Streamlit bundles plotly.js itself
    "displaylogo": False, "showLink": False, "showSendToCloud": False, "showEditInChartStudio": False,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}


def _item(list_id: int, job_id: int) -> results.VerifiedList:
    store = runtime().store
    return results.VerifiedList(store.list_record(list_id), store.job(job_id))


@st.cache_data(ttl=RESULTS_TTL_S, max_entries=RESULTS_MAX_LISTS, show_spinner="Counting the results…")
def verified_summary(data_dir: str, list_id: int, job_id: int, version: str) -> results.Summary:
    """Key figures, chart aggregations and filter options (lib.resultstats), shared by all sessions.
    Key: lib.results.cache_key (the version changes with the merged file)."""
    return results.summarise(runtime().store, _item(list_id, job_id))


@st.cache_resource(ttl=RESULTS_TTL_S, max_entries=RESULTS_MAX_LISTS, show_spinner=False)
def verified_charts(data_dir: str, list_id: int, job_id: int, version: str) -> tuple[go.Figure, ...]:
    """The seven Results figures: READ-ONLY, shared. Building them takes ~0.12 s and unpickling half of
    that; st.plotly_chart only reads a figure (to_dict), so one shared copy is safe."""
    return results.figures(verified_summary(data_dir, list_id, job_id, version))


@st.cache_data(ttl=RESULTS_TTL_S, max_entries=16 * RESULTS_MAX_LISTS, show_spinner="Finding the rows…")
def verified_rows(data_dir: str, list_id: int, job_id: int, version: str, selection: Selection) -> Rows:
    """The match counts and the first rows of a selection (lib.resultset.rows): a rerun with the same
    filters costs a cache lookup, not a scan of the merged file."""
    return results.matching_rows(runtime().store, _item(list_id, job_id), selection)


CHART_WIDTH = 390  # px: two share a row at a 1280- or 1440-px window, one at 1024 (a ~560-px main area)


def chart_grid(figures: tuple[go.Figure, ...]) -> None:
    """The Results charts in a row that wraps, so a narrow window shows one per row instead of squeezing
    two into half its width (their labels were cut: "61.3% (5,9"); the funnel first and the last, tall one
    each on a row of their own."""
    funnel, *paired, last = figures
    st.plotly_chart(funnel, config=PLOTLY_CONFIG, theme=None)
    with st.container(horizontal=True, gap="small"):
        for figure in paired:
            st.plotly_chart(figure, config=PLOTLY_CONFIG, theme=None, width=CHART_WIDTH)
    st.plotly_chart(last, config=PLOTLY_CONFIG, theme=None)


def wait_for_merge(item: results.VerifiedList) -> None:
    """The merged file is not written yet: ask the worker for it and wait (the page reruns when ready)."""
    rt = runtime()
    task = results.request_merge(rt.store, rt.mode, item, requested_by=current_user().email)
    st.session_state["results_merge_task"] = task.id
    task_answer("results_merge_task", f"Joining the verdicts to the {item.record.rows:,} rows of the list…",
                lambda _: st.rerun())


def clearout_column_config(email_column: str | None) -> dict[str, Any]:
    """st.dataframe column_config for a merged list: the address as text, Clearout columns with
    their meaning as help, verified-at as a UTC date-time, time taken in ms."""
    config: dict[str, Any] = {c.name: st.column_config.TextColumn(help=c.meaning) for c in co.CLEAROUT_COLUMNS}
    config[co.VERIFIED_AT] = st.column_config.DatetimeColumn(
        help=co.CLEAROUT_COLUMNS[co.CLEAROUT_COLUMN_NAMES.index(co.VERIFIED_AT)].meaning,
        format="YYYY-MM-DD HH:mm:ss", timezone="UTC")
    config[co.TIME_TAKEN] = st.column_config.NumberColumn(help="Verification time", format="%d ms")
    config[co.VERDICT_SOURCE] = st.column_config.TextColumn(
        help="Verified now (spent a credit), Cached (a recent verdict reused), Syntax check, No email")
    if email_column:
        config[email_column] = st.column_config.TextColumn(help="The address as it is in the list", pinned=True)
    return config


def filter_key(name: str, list_id: int) -> str:
    """A Results widget's key, one per list: switching lists shows fresh, empty filters. (Clearing one
    set of keys on a switch left the browser showing the old chips while the server had none: the
    next click applied filters nobody could see.)"""
    return f"results_{name}_{list_id}"


def filters(options: FilterOptions, list_id: int) -> Selection:
    """The five filters, in two rows (five side by side leave no room for a chosen value at 1280 px)."""
    status_col, safe_col, flag_col = st.columns(3)
    reason_col, domain_col = st.columns(2)
    any_value = "Any"  # an empty filter matches every row
    return Selection(
        statuses=tuple(status_col.multiselect("Verification status", options.statuses,
                                              key=filter_key("status", list_id), placeholder=any_value)),
        safe_to_send=tuple(safe_col.multiselect("Safe to send", options.safe_to_send,
                                                key=filter_key("safe", list_id), placeholder=any_value)),
        reasons=tuple(reason_col.multiselect("Reason", options.reasons, key=filter_key("reason", list_id),
                                             placeholder=any_value)),
        flags=tuple(flag_col.multiselect("Flagged as", options.flags, key=filter_key("flag", list_id),
                                         placeholder=any_value, help="Rows with any of these flags set to Yes")),
        domains=tuple(domain_col.multiselect("Domain", options.domains, key=filter_key("domain", list_id),
                                             placeholder=any_value, accept_new_options=True,
                                             help="The 50 biggest domains are listed; type any other one")))


def downloads_section(item: results.VerifiedList, found: Rows, selection: Selection,
                      cache_key: tuple[str, int, int, str]) -> None:
    """Links to the whole list or the filtered rows, as CSV (for a spreadsheet or exact) or Excel;
    the server streams each file from the merged file (lib.download_links)."""
    scope = st.radio("Rows", ["all", "filtered"], key=filter_key("scope", item.record.id), horizontal=True,
                     disabled=not selection.active, help="Set a filter above to download only the rows it matches",
                     format_func=lambda s: f"All {found.total:,} rows" if s == "all"
                     else f"The {found.matching:,} rows the filters match")
    filtered = scope == "filtered" and selection.active
    rows = found.matching if filtered else found.total
    chosen = selection if filtered else Selection()
    columns = st.columns(3)
    for column, (file_format, flavour) in zip(columns, results.DOWNLOAD_CHOICES):
        label, help_text = results.download_label(file_format, flavour, rows)
        if refusal := results.download_refusal(file_format, rows):
            column.warning(refusal, icon=":material/block:")
            continue
        token = _link(cache_key, chosen, file_format, flavour, item, rows, filtered)
        column.link_button(label, f"./{download_links.ROUTE}/{token}", icon=":material/download:", help=help_text,
                           type="primary" if flavour == downloads.SPREADSHEET and file_format == "csv" else "secondary",
                           width="stretch")
    if wait := results.xlsx_wait_text(rows):
        st.caption(wait)


def _link(cache_key: tuple[str, int, int, str], selection: Selection, file_format: str, flavour: str,
          item: results.VerifiedList, rows: int, filtered: bool) -> str:
    """This session's token for a file, made once per file (reruns reuse it until it expires)."""
    wanted = (cache_key, selection, file_format, flavour)
    links: dict[object, str] = st.session_state.setdefault("results_links", {})
    token = links.get(wanted)
    if token is None or download_links.take(token) is None:
        store = runtime().store
        token = download_links.offer(download_links.Download(
            data_dir=store.data_dir, merged=resultset.merged_path(store, item.job.id), selection=selection,
            file_format=file_format, flavour=flavour, rows=rows,
            file_name=results.file_name(item.record.name, file_format, filtered=filtered,
                                        exact=flavour == downloads.EXACT),
            on_start=recorder("download_results", f"list {item.record.id}: {item.record.name}, {rows:,} "
                                                  f"{'filtered ' if filtered else ''}rows, {file_format.upper()}"
                                                  f"{' exact' if flavour == downloads.EXACT else ''}",
                              runtime().mode)))
        links[wanted] = token
    return token
