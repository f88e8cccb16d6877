#!/usr/bin/env bash
# Install the app into .venv (once) and start everything on http://127.0.0.1:8501: in sandbox mode
# the sandbox server, then the worker process, then Streamlit (python -m lib.serve). Ctrl-C stops all.
# With no credentials configured (see .env.example) it starts in sandbox mode.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh requirements.txt
# Streamlit options (e.g. --server.port 8600) are passed on to Streamlit.
exec .venv/bin/python -m lib.serve "$@"
