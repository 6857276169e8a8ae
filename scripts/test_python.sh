#!/usr/bin/env bash
# The Python package's tests, as CI runs them (scripts/test.sh calls this after the release build):
#   1. a virtual environment in $RAZOR_HOME/pyenv with what building and testing need (pip)
#   2. the wheel, built from this checkout into build/wheel (the CPU build; its CMake tree in build/python)
#   3. that wheel installed into the environment, and pytest on python/tests, run from outside the checkout so
#      `import razor` is the installed package
# Needs RAZOR_TEST_MODEL (the default model's path) and build/release/razor (the CLI the comparisons run).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
repo="$PWD"
export RAZOR_HOME="${RAZOR_HOME:-$HOME/.cache/razor}"
venv="$RAZOR_HOME/pyenv"
step() { echo "== test_python.sh: $*" >&2; }

step "environment ($venv)"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check \
  "numpy" "pytest" "matplotlib" "lm_eval>=0.4,<0.5" "scikit-build-core>=0.10" "nanobind>=2.0"

step "wheel (pip wheel . -> build/wheel)"
rm -rf build/wheel
"$venv/bin/python" -m pip wheel -q --disable-pip-version-check --no-deps --no-build-isolation \
  -C build-dir=build/python -w build/wheel .
wheel="$(ls build/wheel/razor-*.whl)"
"$venv/bin/python" -m pip install -q --disable-pip-version-check --force-reinstall --no-deps "$wheel"

step "pytest python/tests (with the installed wheel)"
cd "$RAZOR_HOME"
RAZOR_BINARY="$repo/build/release/razor" RAZOR_REQUIRE_LM_EVAL=1 MPLBACKEND=Agg \
  "$venv/bin/python" -m pytest -q -p no:cacheprovider "$repo/python/tests"
