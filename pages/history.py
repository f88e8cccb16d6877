"""History: Every export run, what it changed in CleverTap, and undo."""
import streamlit as st

from lib import ui

ui.page_header("History", "Every export run, what it changed in CleverTap, and undo.")
st.info("This step is being built: it will let you every export run, what it changed in CleverTap, and undo.", icon="🚧")
