#!/usr/bin/env bash
# Configures build/release (the preset) with the CUDA backend: installs the CUDA 13.0 toolchain from PyPI first
# (scripts/cuda_toolchain.sh, quick when present) and configures with its CMake 4 and nvcc. The CPU engine
# needs none of it; RAZOR_NO_CUDA=1 configures a CPU-only build with the system CMake instead.
# Prints, last, the cmake to build with.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
if [[ "${RAZOR_NO_CUDA:-0}" == 1 ]]; then
  cmake --preset release -DRAZOR_CUDA=OFF >/dev/null
  command -v cmake
  exit 0
fi
root="$(scripts/cuda_toolchain.sh | tail -n 1)"
cu="$(readlink -f "$root/cu13")"
"$root/bin/cmake" --preset release -DRAZOR_CUDA=ON -DCMAKE_CUDA_COMPILER="$cu/bin/nvcc" -DCUDAToolkit_ROOT="$cu" >/dev/null
echo "$root/bin/cmake"
