"""Lists: add an email list from a CleverTap audience or a CSV file, and manage My lists."""
import streamlit as st

from lib import connections as conn
from lib import lists, ui
from lib.ui import lists as widgets

rt = ui.page_header("Lists", "Add an email list from a CleverTap audience or a CSV file, and manage My lists.")
views = {v.connection.id: v for v in conn.connection_views(rt)}
audience_tab, csv_tab = st.tabs(["From a CleverTap audience", "From a CSV file"])
with audience_tab:
    widgets.audience_form(rt, views)
    widgets.saved_audiences(rt, views)
with csv_tab:
    widgets.csv_form(rt)

st.subheader("My lists")
records = lists.my_lists(rt.store, rt.mode)
pulling = [r for r in records if r.state == "pulling"]


@st.fragment(run_every=2 if pulling else None)
def pull_progress() -> None:
    widgets.pull_progress(rt, pulling)


pull_progress()
if not records:
    st.info("No lists yet: add one from a CleverTap audience or a CSV file above.", icon=":material/info:")
    st.stop()
widgets.list_table(records)
by_id = {r.id: r for r in records}
chosen = by_id.get(st.selectbox("Choose a list", list(by_id), key="lists_chosen", format_func=lambda i: by_id[i].name))
if chosen is not None:
    widgets.chosen_list(rt, chosen)
ui.glossary()
