"""Router: page config, the shared sidebar, navigation. No logic here."""
import streamlit as st

from lib import ui

st.set_page_config(page_title="List hygiene · Clearout × CleverTap", page_icon="assets/favicon.png",
                   layout="wide")
navigation = st.navigation(ui.app_pages())
ui.mark_routed()
ui.mode_badge()
navigation.run()
