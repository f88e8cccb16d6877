#!/usr/bin/env bash
# Install the app into .venv (once) and start it on http://127.0.0.1:8501.
# With no credentials configured (see .env.example) it starts in sandbox mode.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh requirements.txt
# Streamlit options (e.g. --server.port 8600) must come before the script path.
exec .venv/bin/python -m streamlit run "$@" app.py
