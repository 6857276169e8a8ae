#!/usr/bin/env bash
# The whole test suite, as CI runs it, on a fresh machine:
#   1. scripts/setup.sh: apt packages, the default model and tokenizer data into ${RAZOR_HOME:-~/.cache/razor}
#   2. release build + every test
#   3. debug build with AddressSanitizer + UndefinedBehaviorSanitizer + every test
#   4. the GGUF reader's libFuzzer target for a bounded time (RAZOR_FUZZ_SECONDS, default 60)
# Flags: --quick skips 3 and 4.
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
export RAZOR_TOKENIZER_DIR="$RAZOR_HOME/tokenizers"

step "release build + tests"
cmake --preset release >/dev/null
cmake --build --preset release -j "$jobs"
ctest --test-dir build/release --output-on-failure -j "$jobs"

if [ "$quick" = 1 ]; then exit 0; fi

step "debug build (ASan + UBSan) + tests"
cmake --preset debug >/dev/null
cmake --build --preset debug -j "$jobs"
# The sanitizer run skips nothing, but the long model goldens run on fewer positions (RAZOR_TEST_SANITIZER).
RAZOR_TEST_SANITIZER=1 ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
  ctest --test-dir build/debug --output-on-failure -j "$jobs"

step "fuzz the GGUF reader for ${RAZOR_FUZZ_SECONDS:-60} s"
CXX=clang++ cmake --preset fuzz >/dev/null
cmake --build --preset fuzz -j "$jobs"
mkdir -p build/fuzz/corpus
cp -n fuzz/corpus_gguf/* build/fuzz/corpus/ 2>/dev/null || true
build/fuzz/fuzz_gguf -max_total_time="${RAZOR_FUZZ_SECONDS:-60}" -rss_limit_mb=2048 -timeout=10 build/fuzz/corpus
step "all tests passed"
