#!/usr/bin/env bash
# razor serve through the official OpenAI Python client, and 1,000 malformed requests over raw sockets
# (scripts/test.sh calls this beside scripts/test_serve_browser.sh):
#   1. openai (pinned) and pytest into the virtual environment $RAZOR_HOME/pyenv (made here when missing)
#   2. pytest on tests/serve_openai: full-KV servers of the real binary on ephemeral ports (no head profile needed)
# Needs RAZOR_TEST_MODEL (the default model's path) and the razor binary (RAZOR_BIN, default build/release/razor).
# Some 15 s on 2 cores.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"
export RAZOR_HOME="${RAZOR_HOME:-$HOME/.cache/razor}"
venv="$RAZOR_HOME/pyenv"
step() { echo "== test_serve_openai.sh: $*" >&2; }

step "environment ($venv)"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "openai==3.51.0" "pytest"

step "pytest tests/serve_openai"
export RAZOR_BIN="${RAZOR_BIN:-$repo/build/release/razor}"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$repo/tests/serve_openai" "$@"
