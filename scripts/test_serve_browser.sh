#!/usr/bin/env bash
# The web page of `razor serve` (GET /) in a real headless browser, and GET /razor/sequences over plain HTTP
# (scripts/test.sh calls this after the Python package's tests):
#   1. selenium (pinned) into the virtual environment $RAZOR_HOME/pyenv (made here when missing)
#   2. pytest on tests/serve_browser: Debian's chromium driven through /usr/bin/chromedriver (never a downloaded
#      driver; scripts/install_apt_deps.sh installs both); the browser tests skip when either is missing
# Needs RAZOR_TEST_MODEL (the default model's path) and the razor binary (RAZOR_BIN, default build/release/razor).
# The razor-mode server runs on a head profile the tests make first (a short `razor profile`, seconds).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"
export RAZOR_HOME="${RAZOR_HOME:-$HOME/.cache/razor}"
venv="$RAZOR_HOME/pyenv"
step() { echo "== test_serve_browser.sh: $*" >&2; }

step "environment ($venv)"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check "selenium==4.51.0" "pytest"

step "pytest tests/serve_browser"
export RAZOR_BIN="${RAZOR_BIN:-$repo/build/release/razor}"
"$venv/bin/python" -m pytest -q -p no:cacheprovider "$repo/tests/serve_browser"
