"""The app as Streamlit serves it: the pages (app.py) plus the download route, on one server.

`python -m lib.serve` runs `streamlit run asgi.py`, which finds `app` below and serves it.
"""
import streamlit as st

from lib.ui.download_route import ROUTES

app = st.App("app.py", routes=ROUTES)
