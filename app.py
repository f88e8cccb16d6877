"""Router: page config, the shared sidebar, navigation. No logic here."""
import streamlit as st

from lib import ui

st.set_page_config(page_title="List hygiene · Clearout × CleverTap", page_icon="🧹", layout="wide")

navigation = st.navigation([
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/connect.py", title="Connect", icon="🔌"),
    st.Page("pages/lists.py", title="Lists", icon="📋"),
    st.Page("pages/verify.py", title="Verify", icon="✅"),
    st.Page("pages/results.py", title="Results", icon="📊"),
    st.Page("pages/export.py", title="Export", icon="📤"),
    st.Page("pages/history.py", title="History", icon="🕘"),
])
ui.mode_badge()
navigation.run()
