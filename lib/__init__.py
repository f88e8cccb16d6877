"""All logic of the Clearout x CleverTap list-hygiene dashboard; importable without Streamlit."""
