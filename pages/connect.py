"""Connect: Connect CleverTap projects (Project ID, passcode, region) and your Clearout API token."""
import streamlit as st

from lib import ui

ui.page_header("Connect", "Connect CleverTap projects (Project ID, passcode, region) and your Clearout API token.")
st.info("This step is being built: it will let you connect CleverTap projects (Project ID, passcode, region) and your Clearout API token.", icon="🚧")
