#!/usr/bin/env bash
# Install everything the tests need (Python packages into .venv, Debian's Chromium when missing)
# and run the lint, the type check and the whole suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/venv.sh requirements-dev.txt
if ! command -v chromium >/dev/null 2>&1; then
    # Playwright drives Debian's Chromium: `playwright install` cannot reach its download server here.
    sudo_if_needed=""
    [ "$(id -u)" -eq 0 ] || sudo_if_needed="sudo"
    $sudo_if_needed apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_if_needed apt-get install -y -qq chromium >/dev/null
fi
# House rules first: lint (ruff.toml) and types (mypy.ini), then every test.
.venv/bin/ruff check .
.venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
