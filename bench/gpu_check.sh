#!/usr/bin/env bash
# On the GPU machine: every CUDA check of the test suite (kernels against the CPU reference, the whole model
# against transformers' goldens and the CPU engine), with binaries built here by scripts/gpu_pack.sh and
# carried in .gpu/ (the GPU machine has no compiler toolchain for razor's C++ dependencies). cuBLAS comes from
# the machine's CUDA (libcublas.so.13).
#   bench/gpu_check.sh [gtest filter]      (default: Cuda*)
# The model for the SmolLM2 checks is .gpu/model.gguf, or the chunks .gpu/model.part-* joined (a model over the
# transfer limit travels in pieces over consecutive calls).
set -uo pipefail
cd "$(dirname "$0")/.."
root="$PWD"
filter="${1:-Cuda*}"

# The tests find fixtures through the source path they were built in.
src="$(strings .gpu/razor_tests | grep -m1 -o '^/[^ ]*/tests/fixtures/' | sed 's|/tests/fixtures/$||')"
[[ -n "$src" && ! -e "$src" ]] && mkdir -p "$(dirname "$src")" && ln -s "$root" "$src"

cublas="$(ldconfig -p | awk '$1 == "libcublas.so.13" { print $NF; exit }')"
export LD_LIBRARY_PATH="$root/.gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"

if [[ ! -f .gpu/model.gguf ]] && compgen -G ".gpu/model.part-*" >/dev/null; then
  cat .gpu/model.part-* > /tmp/razor-model.gguf
  if [[ "$(sha256sum < /tmp/razor-model.gguf | cut -d' ' -f1)" == "$(cat .gpu/model.sha256 2>/dev/null)" ]]; then
    export RAZOR_TEST_MODEL=/tmp/razor-model.gguf
    [[ -f .gpu/model.razor-profile.json ]] && cp .gpu/model.razor-profile.json /tmp/razor-model.gguf.razor-profile.json
  else
    echo "== gpu_check: model pieces incomplete so far ($(ls .gpu/model.part-* | wc -l) here): model checks skip"
  fi
elif [[ -f .gpu/model.gguf ]]; then
  export RAZOR_TEST_MODEL="$root/.gpu/model.gguf"
fi

nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv,noheader
echo "== gpu_check: cublas ${cublas:-not found}; model ${RAZOR_TEST_MODEL:-none}"
log="${OUT:-/tmp}/gpu_check.log"
timeout "${RAZOR_GPU_TEST_TIMEOUT:-240}" .gpu/razor_tests --gtest_filter="$filter" --gtest_color=no 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
[[ $rc == 124 ]] && echo "== gpu_check: the tests ran past ${RAZOR_GPU_TEST_TIMEOUT:-240} s (a hang?)"
exit "$rc"
