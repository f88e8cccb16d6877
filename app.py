"""Router: page config, who is here (sign-in), the shared sidebar, navigation. No logic here."""
import streamlit as st

from lib import ui
from lib.ui import auth

st.set_page_config(page_title="List hygiene · Clearout × CleverTap", page_icon="assets/favicon.png",
                   layout="wide")
user = ui.visitor()
navigation = st.navigation(ui.app_pages(), position="sidebar" if user else "hidden")
ui.mark_routed()
auth.sidebar(user)  # nobody: the sign-in screen (or why not), and nothing else runs
ui.mode_badge()
navigation.run()
