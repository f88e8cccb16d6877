"""Verify: Verify a list with Clearout: see the cost first, then follow the job (three lists at a time)."""
import streamlit as st

from lib import ui

ui.page_header("Verify", "Verify a list with Clearout: see the cost first, then follow the job (three lists at a time).")
st.info("This step is being built: it will let you verify a list with Clearout: see the cost first, then follow the job (three lists at a time).", icon="🚧")
