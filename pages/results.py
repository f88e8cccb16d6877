"""Results: review a verified list: key figures, charts, the rows with their verdicts, downloads."""
import streamlit as st

from lib import results, ui
from lib.errors import UserError
from lib.ui import results as widgets

rt = ui.page_header("Results", "Review a verified list: the original rows with the Clearout columns appended, "
                               "key figures, charts and downloads.")
state = st.session_state
verified = results.verified_lists(rt.store, rt.mode)
if not verified:
    st.info("No verified list yet: verify a list first; its results appear here when the job is done.",
            icon=":material/info:")
    ui.link("pages/verify.py", "Go to Verify")
    st.stop()

by_id = {v.record.id: v for v in verified}
list_id = st.selectbox("Verified list", list(by_id), key="results_list",
                       index=results.default_index(verified, state.get("results_list_id")),
                       format_func=lambda i: by_id[i].label, help="Lists with a finished verification, newest first")
state["results_list_id"] = list_id  # other pages (Export) read which list is under review
item = by_id[list_id]
if results.merged_file(rt.store, item) is None:
    widgets.wait_for_merge(item)  # the worker writes it once; the page reruns when it is there
    st.stop()
key = results.cache_key(rt.store, item)
try:
    summary = widgets.verified_summary(*key)
except UserError as exc:
    ui.error(exc)
    st.stop()

if summary.figures.not_in_result:
    st.warning(f"{summary.figures.not_in_result:,} rows have an address the verification result does not "
               "hold; they count as Unknown. Verify the list again to cover them.")
metrics = results.key_metrics(summary)
ui.metric_row(metrics[:4], border=True)  # the list and its cost
ui.metric_row(metrics[4:], border=True)  # the five outcomes, which add up to the rows

st.subheader("Charts")
st.caption("Every chart counts rows of the whole list; the filters below narrow only the rows shown.")
st.caption(results.address_line(summary, item.job))
widgets.chart_grid(widgets.verified_charts(*key))

st.subheader("Rows")
selection = widgets.filters(summary.options, list_id)
found = widgets.verified_rows(*key, selection)
st.markdown(results.match_text(found.matching, found.total))
st.dataframe(found.preview, hide_index=True, height=420,
             column_config=widgets.clearout_column_config(item.record.email_column))

st.subheader("Download")
st.caption("The list's own columns, in their original order, then the 15 Clearout columns and where each "
           "verdict came from.")
widgets.downloads_section(item, found, selection, key)
st.divider()
ui.link("pages/export.py", "Reviewed? Continue to Export: write the verdicts back to CleverTap")
ui.glossary()
