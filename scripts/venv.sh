# Sourced by the run scripts: create .venv with Python >= 3.11 and install a requirements file
# when it changed since the last install.
python_bin="${PYTHON:-}"
if [ -z "$python_bin" ]; then
    for candidate in python3.11 python3.12 python3.13 python3; do
        if command -v "$candidate" >/dev/null 2>&1; then python_bin="$candidate"; break; fi
    done
fi
"$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "Python 3.11 or newer is needed (found: $("$python_bin" --version 2>&1))" >&2; exit 1; }
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
stamp=".venv/.installed-$(basename "$1")"
if [ ! -f "$stamp" ] || ! cmp -s "$1" "$stamp" || { [ "$1" != requirements.txt ] && ! cmp -s requirements.txt .venv/.installed-requirements.txt; }; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -r "$1"
    cp "$1" "$stamp"
    [ "$1" = requirements.txt ] || cp requirements.txt .venv/.installed-requirements.txt
fi
