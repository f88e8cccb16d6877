"""Results: review a verified list: key figures, charts, the rows with their verdicts, downloads."""
from functools import partial

import streamlit as st

from lib import downloads, results, ui

ui.page_header("Results", "Review a verified list: the original rows with the Clearout columns appended, "
                          "key figures, charts and downloads.")
rt = ui.runtime()
state = st.session_state
verified = results.verified_lists(rt.store, rt.mode)
if not verified:
    st.info("No verified list yet: verify a list first; its results appear here when the job is done.",
            icon=":material/info:")
    ui.link("pages/verify.py", "Go to Verify")
    st.stop()

FILTER_KEYS = ("results_status", "results_safe", "results_reason", "results_flag", "results_domain")


def forget_filters() -> None:
    """Another list has other values to filter by: start it unfiltered."""
    for name in (*FILTER_KEYS, "results_xlsx"):
        state.pop(name, None)


by_id = {v.record.id: v for v in verified}
list_id = st.selectbox("Verified list", list(by_id), key="results_list", on_change=forget_filters,
                       index=results.default_index(verified, state.get("results_list_id")),
                       format_func=lambda i: by_id[i].label, help="Lists with a finished verification, newest first")
state["results_list_id"] = list_id  # other pages (Export) read which list is under review
item = by_id[list_id]
key = results.cache_key(rt.store, item)
try:
    merged = ui.verified_frame(*key)  # shared and READ-ONLY: see lib/ui.py
except results.ResultsError as exc:
    st.error(exc.message)
    st.stop()
summary = ui.verified_summary(*key)

if summary.figures.not_in_result:
    st.warning(f"{summary.figures.not_in_result:,} rows have an address the verification result does not "
               "hold; they count as Unknown. Verify the list again to cover them.")
metrics = results.key_metrics(summary)
for row in (metrics[:4], metrics[4:]):  # the list and its cost; the five outcomes, which add up to the rows
    for column, metric in zip(st.columns(len(row)), row):
        column.metric(metric.label, metric.value, metric.note, delta_color="off", delta_arrow="off",
                      help=metric.help, border=True)

st.subheader("Charts")
st.caption("Every chart counts rows of the whole list; the filters below narrow only the rows shown.")
figures = ui.verified_charts(*key)
for pair in (figures[start:start + 2] for start in range(0, len(figures), 2)):  # the last one alone, full width
    for column, figure in zip(st.columns(len(pair)), pair):
        column.plotly_chart(figure, config=ui.PLOTLY_CONFIG, theme=None)

st.subheader("Rows")
options = summary.options
# Two rows: five filters side by side leave no room for a chosen value at a 1280-pixel window.
status_col, safe_col, flag_col = st.columns(3)
reason_col, domain_col = st.columns(2)
any_value = {"placeholder": "Any"}  # an empty filter matches every row
selection = results.Selection(
    statuses=tuple(status_col.multiselect("Verification status", options.statuses, key="results_status", **any_value)),
    safe_to_send=tuple(safe_col.multiselect("Safe to send", options.safe_to_send, key="results_safe", **any_value)),
    reasons=tuple(reason_col.multiselect("Reason", options.reasons, key="results_reason", **any_value)),
    flags=tuple(flag_col.multiselect("Flagged as", options.flags, key="results_flag", **any_value,
                                     help="Rows with any of these flags set to Yes")),
    domains=tuple(domain_col.multiselect("Domain", options.domains, key="results_domain", **any_value,
                                         accept_new_options=True,
                                         help="The 50 biggest domains are listed; type any other one")))
matching = results.select(merged, selection)
st.markdown(results.match_text(len(matching), len(merged)))
st.dataframe(results.preview(matching), hide_index=True, height=420,
             column_config=ui.clearout_column_config(item.record.email_column))

st.subheader("Download")
st.caption("The list's own columns, in their original order, then the 15 Clearout columns and where each "
           "verdict came from. Cells a spreadsheet would run as a formula start with an apostrophe.")
scope = st.radio("Rows", ["all", "filtered"], key="results_scope", horizontal=True, disabled=not selection.active,
                 help="Set a filter above to download only the rows it matches",
                 format_func=lambda s: f"All {len(merged):,} rows" if s == "all"
                 else f"The {len(matching):,} rows the filters match")
frame = matching if scope == "filtered" else merged
filtered = frame is not merged
csv_col, xlsx_col = st.columns(2)
csv_col.download_button(f"Download CSV ({len(frame):,} rows)", icon=":material/download:", type="primary",
                        key="results_csv",
                        data=partial(downloads.to_csv_bytes, frame),  # written on click, never on a rerun
                        file_name=results.file_name(item.record.name, "csv", filtered=filtered),
                        mime="text/csv", on_click="ignore")
xlsx_id = (key, filtered, selection if filtered else None)
built = state.get("results_xlsx")
if built is not None and built[0] != xlsx_id:
    state.pop("results_xlsx")  # a file for other rows: free its memory
    built = None
refusal = results.xlsx_refusal(frame)
if refusal:
    xlsx_col.warning(refusal)
elif built is not None:
    xlsx_col.download_button(f"Download Excel ({len(frame):,} rows)", icon=":material/download:",
                             key="results_xlsx_download",
                             data=partial(bytes, built[1]), on_click="ignore",
                             file_name=results.file_name(item.record.name, "xlsx", filtered=filtered),
                             mime="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")
else:
    wait = results.xlsx_wait_text(len(frame))
    if wait:
        xlsx_col.warning(wait, icon=":material/hourglass_top:")
    if xlsx_col.button(f"Prepare an Excel file ({len(frame):,} rows)", key="results_xlsx_build"):
        with st.spinner(f"Writing {len(frame):,} rows to Excel…"):
            state["results_xlsx"] = (xlsx_id, downloads.to_xlsx_bytes(frame))
        st.rerun()

st.divider()
ui.link("pages/export.py", "Reviewed? Continue to Export: write the verdicts back to CleverTap")
