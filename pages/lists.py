"""Lists: Add an email list from a CleverTap audience or a CSV export, and manage My lists."""
import streamlit as st

from lib import ui

ui.page_header("Lists", "Add an email list from a CleverTap audience or a CSV export, and manage My lists.")
st.info("This step is being built: it will let you add an email list from a CleverTap audience or a CSV export, and manage My lists.", icon="🚧")
