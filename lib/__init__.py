"""All logic of the Clearout x CleverTap list-hygiene dashboard; importable without Streamlit.

Importing any `lib.*` module first runs this: every `lib.*` logger gets the secret-masking handler
in every process (the worker, `python -m lib.serve`, plain `streamlit run app.py`, AppTest, a
benchmark), before anything in lib can log.
"""
from lib.logs import configure_logging

configure_logging()
