#!/usr/bin/env bash
# The whole test suite, as CI runs it, on a fresh machine:
#   1. scripts/setup.sh: apt packages, the default model and tokenizer data into ${RAZOR_HOME:-~/.cache/razor}
#   2. release build (with the CUDA backend: its tests skip without a GPU) + every test
#   3. the Python package: its wheel built and installed in $RAZOR_HOME/pyenv, then pytest (scripts/test_python.sh);
#      razor serve in headless chromium (scripts/test_serve_browser.sh) and through the openai client
#      (scripts/test_serve_openai.sh)
#   4. debug build with AddressSanitizer + UndefinedBehaviorSanitizer + every test
#   5. the libFuzzer targets (GGUF reader, HF config.json, head profiles, serve requests), RAZOR_FUZZ_SECONDS each
#      (default 40)
# Flags: --quick skips 4 and 5.
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
[ "${1:-}" = "--quick" ] && quick=1
jobs=$(nproc)

step() { echo "== test.sh: $*" >&2; }

step "set-up"
scripts/setup.sh

export RAZOR_HOME="${RAZOR_HOME:-$HOME/.cache/razor}"
RAZOR_TEST_MODEL="$(scripts/pull_model.sh smollm2-135m | tail -n 1)"
export RAZOR_TEST_MODEL
# Gemma 3 270M: the sliding-window architecture's goldens (tests/model_gemma3_test.cpp).
RAZOR_TEST_GEMMA3="$(scripts/pull_model.sh gemma3-270m | tail -n 1)"
export RAZOR_TEST_GEMMA3
export RAZOR_TOKENIZER_DIR="$RAZOR_HOME/tokenizers"

step "release build + tests"
cmake_bin="$(scripts/configure_release.sh | tail -n 1)"
"$cmake_bin" --build --preset release -j "$jobs"
"$(dirname "$cmake_bin")/ctest" --test-dir build/release --output-on-failure -j "$jobs"

step "Python package: wheel + pytest"
scripts/test_python.sh
step "razor serve's web page in headless chromium + /razor/sequences"
scripts/test_serve_browser.sh
step "razor serve through the openai Python client + 1,000 malformed requests"
scripts/test_serve_openai.sh

if [ "$quick" = 1 ]; then exit 0; fi

step "debug build (ASan + UBSan) + tests"
cmake --preset debug >/dev/null
cmake --build --preset debug -j "$jobs"
# The sanitizer run skips nothing, but the long model goldens run on fewer positions (RAZOR_TEST_SANITIZER).
RAZOR_TEST_SANITIZER=1 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/debug --output-on-failure -j "$jobs"

# Four parsers of untrusted input, RAZOR_FUZZ_SECONDS each (default 40: under three minutes in all on CI's 2 cores).
fuzz_seconds="${RAZOR_FUZZ_SECONDS:-40}"
step "fuzz the GGUF reader, the HF config.json parser, the head-profile reader and serve's request parsing for ${fuzz_seconds} s each"
CXX=clang++ cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$jobs"
for target in gguf hf_config head_profile serve_request; do
  corpus="build/fuzz/corpus_$target"  # the seeds plus what the fuzzer finds, kept between runs
  mkdir -p "$corpus"
  cp -n "fuzz/corpus_$target"/* "$corpus"/ 2>/dev/null || true
  "build/fuzz/fuzz_$target" -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 -timeout=10 "$corpus"
done
step "all tests passed"
