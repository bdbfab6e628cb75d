#!/usr/bin/env bash
# Create .venv and install the server (plus the "test" extra when asked) and the `stagegate` client (client/,
# its own distribution), skipped when already current.
set -euo pipefail
cd "$(dirname "$0")/.."
extra="${1:-}"
python_bin="$(command -v python3.11 || command -v python3)"
if ! "$python_bin" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
  echo "Stagegate needs Python 3.11 (found $("$python_bin" --version 2>&1))." >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  "$python_bin" -m venv .venv || { echo "python3 -m venv failed: install Debian's python3-venv" >&2; exit 1; }
fi
# The stamp names what was installed; a test install serves the demo too.
stamp=.venv/.stagegate-installed
if [ -f "$stamp" ] && [ ! pyproject.toml -nt "$stamp" ] && [ ! client/pyproject.toml -nt "$stamp" ] && { [ -z "$extra" ] || grep -qx "$extra" "$stamp"; }; then
  exit 0
fi
# Keep the test extra once installed: `make demo` after `make test` must not uninstall it.
[ -z "$extra" ] && [ -f "$stamp" ] && extra="$(cat "$stamp")"
spec="."
[ -n "$extra" ] && spec=".[$extra]"
echo "[setup] installing Stagegate into .venv (first run: a few minutes; torch is the CPU build 2.13.0)…"
log=.venv/install.log
if ! { .venv/bin/python -m pip install --upgrade pip && .venv/bin/python -m pip install -e ./client \
        && .venv/bin/python -m pip install -e "$spec"; } >"$log" 2>&1; then
  tail -n 30 "$log" >&2
  echo "[setup] installation failed; full log in $log" >&2
  exit 1
fi
echo "$extra" >"$stamp"
