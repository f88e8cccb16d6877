"""Export: Unsubscribe undeliverable addresses or append the Clearout columns in CleverTap, dry run first."""
import streamlit as st

from lib import ui

ui.page_header("Export", "Unsubscribe undeliverable addresses or append the Clearout columns in CleverTap, dry run first.")
st.info("This step is being built: it will let you unsubscribe undeliverable addresses or append the Clearout columns in CleverTap, dry run first.", icon="🚧")
