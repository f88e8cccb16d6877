"""Results: Review the verified list: original rows with the Clearout columns, charts, downloads."""
import streamlit as st

from lib import ui

ui.page_header("Results", "Review the verified list: original rows with the Clearout columns, charts, downloads.")
st.info("This step is being built: it will let you review the verified list: original rows with the Clearout columns, charts, downloads.", icon="🚧")
