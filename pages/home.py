"""Home: Where to start, jobs in flight and recent lists at a glance, and your Clearout credits."""
import streamlit as st

from lib import ui

ui.page_header("Home", "Where to start, jobs in flight and recent lists at a glance, and your Clearout credits.")
st.info("This step is being built: it will let you where to start, jobs in flight and recent lists at a glance, and your Clearout credits.", icon="🚧")
