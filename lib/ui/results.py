"""The Results page's caches: a verified list's merged frame, its summary and its charts, shared
by every session per (list, job, files' version); and the table's column configuration."""
from __future__ import annotations

from functools import partial
from typing import Any

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from lib import columns as co
from lib import downloads, results
from lib.filters import FilterOptions, Selection
from lib.ui import audited, runtime

RESULTS_TTL_S = 30 * 60  # a list nobody looked at for half an hour leaves memory
RESULTS_MAX_LISTS = 2  # a 1,000,000-row merged frame holds about 300 MB
PLOTLY_CONFIG = {  # offline: no Plotly logo link, no Chart Studio; Streamlit bundles plotly.js itself
    "displaylogo": False, "showLink": False, "showSendToCloud": False, "showEditInChartStudio": False,
    "modeBarButtonsToRemove": ["select2d", "lasso2d", "autoScale2d"]}


@st.cache_resource(ttl=RESULTS_TTL_S, max_entries=RESULTS_MAX_LISTS, show_spinner="Joining the verdicts to the rows…")
def verified_frame(data_dir: str, list_id: int, job_id: int, version: str) -> pd.DataFrame:
    """A verified list's merged rows (lib.results.load_merged), one object shared by all sessions: READ-ONLY.

    cache_resource, not cache_data: cache_data hands every rerun an unpickled copy, about 1.5 s and
    300 MB for a 1,000,000-row list, which alone would blow the 0.5 s rerun budget. The price is that
    every caller holds the same frame, so it must never be mutated: lib.merge, lib.charts and
    lib.downloads only read it (filters return new frames). Key: lib.results.cache_key.
    """
    return results.load_merged(runtime().store, list_id, job_id)


@st.cache_data(ttl=RESULTS_TTL_S, max_entries=4 * RESULTS_MAX_LISTS, show_spinner=False)
def verified_summary(data_dir: str, list_id: int, job_id: int, version: str) -> results.Summary:
    """Key figures, chart aggregations and filter options: a few KB, so cache_data's copy is cheap."""
    store = runtime().store
    return results.summarise(verified_frame(data_dir, list_id, job_id, version),
                             store.list_record(list_id).email_column or "", store.job(job_id))


@st.cache_resource(ttl=RESULTS_TTL_S, max_entries=4 * RESULTS_MAX_LISTS, show_spinner=False)
def verified_charts(data_dir: str, list_id: int, job_id: int, version: str) -> tuple[go.Figure, ...]:
    """The seven Results figures: READ-ONLY, shared. Building them takes ~0.12 s and unpickling half of
    that; st.plotly_chart only reads a figure (to_dict), so one shared copy is safe."""
    return results.figures(verified_summary(data_dir, list_id, job_id, version))


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


FILTER_KEYS = ("results_status", "results_safe", "results_reason", "results_flag", "results_domain")


def forget_filters() -> None:
    """Another list has other values to filter by: start it unfiltered."""
    for name in (*FILTER_KEYS, "results_xlsx", "results_scope"):
        st.session_state.pop(name, None)


def filters(options: FilterOptions) -> Selection:
    """The five filters, in two rows (five side by side leave no room for a chosen value at 1280 px)."""
    status_col, safe_col, flag_col = st.columns(3)
    reason_col, domain_col = st.columns(2)
    any_value = "Any"  # an empty filter matches every row
    return Selection(
        statuses=tuple(status_col.multiselect("Verification status", options.statuses, key="results_status",
                                              placeholder=any_value)),
        safe_to_send=tuple(safe_col.multiselect("Safe to send", options.safe_to_send, key="results_safe",
                                                placeholder=any_value)),
        reasons=tuple(reason_col.multiselect("Reason", options.reasons, key="results_reason", placeholder=any_value)),
        flags=tuple(flag_col.multiselect("Flagged as", options.flags, key="results_flag", placeholder=any_value,
                                         help="Rows with any of these flags set to Yes")),
        domains=tuple(domain_col.multiselect("Domain", options.domains, key="results_domain", placeholder=any_value,
                                             accept_new_options=True,
                                             help="The 50 biggest domains are listed; type any other one")))


def downloads_section(merged: pd.DataFrame, matching: pd.DataFrame, selection: Selection, list_name: str,
                      cache_key: tuple[str, int, int, str]) -> None:
    """CSV at once (written on click), Excel prepared on demand (it takes a while and memory)."""
    scope = st.radio("Rows", ["all", "filtered"], key="results_scope", horizontal=True,
                     disabled=not selection.active, help="Set a filter above to download only the rows it matches",
                     format_func=lambda s: f"All {len(merged):,} rows" if s == "all"
                     else f"The {len(matching):,} rows the filters match")
    filtered = scope == "filtered" and selection.active
    frame = matching if filtered else merged
    csv_col, xlsx_col = st.columns(2)
    what = f"list {cache_key[1]}: {list_name}, {len(frame):,} {'filtered ' if filtered else ''}rows"
    mode = runtime().mode
    csv_col.download_button(f"Download CSV ({len(frame):,} rows)", icon=":material/download:", type="primary",
                            key="results_csv",  # written on click only, and the click recorded then
                            data=audited(partial(downloads.to_csv_bytes, frame), "download_results", what + ", CSV",
                                         mode),
                            file_name=results.file_name(list_name, "csv", filtered=filtered), mime="text/csv",
                            on_click="ignore")
    xlsx_id = (cache_key, filtered, selection if filtered else None)
    built = st.session_state.get("results_xlsx")
    if built is not None and built[0] != xlsx_id:
        st.session_state.pop("results_xlsx")  # a file for other rows: free its memory
        built = None
    if refusal := results.xlsx_refusal(frame):
        xlsx_col.warning(refusal)
    elif built is not None:
        xlsx_col.download_button(f"Download Excel ({len(frame):,} rows)", icon=":material/download:",
                                 key="results_xlsx_download", on_click="ignore",
                                 data=audited(partial(bytes, built[1]), "download_results", what + ", XLSX", mode),
                                 file_name=results.file_name(list_name, "xlsx", filtered=filtered),
                                 mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
    else:
        if wait := results.xlsx_wait_text(len(frame)):
            xlsx_col.warning(wait, icon=":material/hourglass_top:")
        if xlsx_col.button(f"Prepare an Excel file ({len(frame):,} rows)", key="results_xlsx_build"):
            with st.spinner(f"Writing {len(frame):,} rows to Excel…"):
                st.session_state["results_xlsx"] = (xlsx_id, downloads.to_xlsx_bytes(frame))
            st.rerun()
