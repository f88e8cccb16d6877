"""The worker process (`python -m lib.worker`): long work, away from the Streamlit process."""
