#!/usr/bin/env bash
# One-shot set-up of a fresh machine (also what CI runs first). Quick when everything is there.
#   1. system packages               scripts/install_apt_deps.sh
#   2. the default model             scripts/pull_model.sh smollm2-135m   (into ${RAZOR_HOME:-~/.cache/razor})
#   3. tokenizer test data           scripts/fetch_tokenizers.sh          (if present)
#   4. eval haystack (essays)        scripts/fetch_eval_data.sh           (razor demo / razor eval)
#   5. release build, with the CUDA backend (its toolchain, CUDA 13.0 + CMake 4, from PyPI into the cache:
#      scripts/cuda_toolchain.sh; RAZOR_NO_CUDA=1 builds CPU-only)      scripts/configure_release.sh
#   6. (--with-reference only)       scripts/setup_reference_venv.sh      (torch/transformers; only to
#                                                                          regenerate goldens, never for tests)
# Usage: scripts/setup.sh [--with-reference] [--no-build]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

with_ref=0 build=1
for a in "$@"; do
  case "$a" in
    --with-reference) with_ref=1 ;;
    --no-build) build=0 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "setup.sh: error: unknown option '$a' (usage: scripts/setup.sh [--with-reference] [--no-build])" >&2; exit 2 ;;
  esac
done

step() { echo "== setup.sh: $*"; }

step "system packages (scripts/install_apt_deps.sh)"
scripts/install_apt_deps.sh

step "default model (scripts/pull_model.sh smollm2-135m)"
model="$(scripts/pull_model.sh smollm2-135m | tail -n 1)"
echo "   model: $model"

if [[ -x scripts/fetch_tokenizers.sh || -f scripts/fetch_tokenizers.sh ]]; then
  step "tokenizer data (scripts/fetch_tokenizers.sh)"
  bash scripts/fetch_tokenizers.sh
else
  step "tokenizer data: scripts/fetch_tokenizers.sh not present, skipped"
fi

step "eval haystack (scripts/fetch_eval_data.sh)"
echo "   essays: $(bash scripts/fetch_eval_data.sh | tail -n 1)"

if [[ "$build" == 1 ]]; then
  step "release build (scripts/configure_release.sh && cmake --build --preset release)"
  cmake_bin="$(scripts/configure_release.sh | tail -n 1)"
  "$cmake_bin" --build --preset release
else
  step "release build skipped (--no-build)"
fi

if [[ "$with_ref" == 1 ]]; then
  step "reference venv (scripts/setup_reference_venv.sh)"
  bash scripts/setup_reference_venv.sh
fi

step "done"
