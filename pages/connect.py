"""Connect: CleverTap projects (Project ID, passcode, region) and the Clearout API token."""
import streamlit as st

from lib import connections as conn
from lib import ui
from lib.ui import connect as widgets

rt = ui.page_header("Connect", "Connect CleverTap projects (Project ID, passcode, region) and your Clearout "
                               "API token.")
st.subheader("CleverTap projects")
views = conn.connection_views(rt)
widgets.saved_projects(rt, views)
if ui.allowed("admin", "Connecting projects and entering passcodes"):
    widgets.new_project_form(rt, expanded=not views)
st.subheader("Clearout")
widgets.clearout_section(rt)
