#!/usr/bin/env bash
# Installs the CUDA 13.0 toolchain that builds razor's CUDA backend, from PyPI wheels, into a venv in the cache
# (no system CUDA needed; CI runs this too). Prints, last, the toolchain root: a directory holding
#   bin/nvcc  bin/cmake bin/ctest  (CMake 4.x: Debian 12's 3.25 cannot find CUDA 13)   cu13/ (the CUDA root)
# Pins: these exact versions were measured to build binaries that run on the H200 GPU machine (CUDA 13.0
# driver). Unpinned, pip mixes in 13.5 parts and ptxas rejects the PTX.
# Usage: scripts/cuda_toolchain.sh            (quick when already installed)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

home="${RAZOR_HOME:-$HOME/.cache/razor}"
root="$home/cuda-13.0"
venv="$root/venv"
stamp="$root/.installed-v2"
pins=(nvidia-cuda-nvcc==13.0.88 nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85
      nvidia-cuda-crt==13.0.88 nvidia-nvvm==13.0.88 nvidia-cublas==13.0.2.14 cmake==4.4.5)

if [[ ! -f "$stamp" ]]; then
  echo "== cuda_toolchain.sh: installing the CUDA 13.0 wheels and CMake 4 into $venv" >&2
  mkdir -p "$root"
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps "${pins[@]}"
  site="$("$venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
  cu="$site/nvidia/cu13"
  [[ -x "$cu/bin/nvcc" ]] || { echo "cuda_toolchain.sh: error: nvcc missing under $cu/bin" >&2; exit 1; }
  # nvcc's profile and CMake's FindCUDAToolkit look for lib64 and unversioned link names the wheels lack.
  [[ -e "$cu/lib64" ]] || ln -s lib "$cu/lib64"
  for so in libcudart.so.13 libcublas.so.13 libcublasLt.so.13; do
    [[ -e "$cu/lib/$so" && ! -e "$cu/lib/${so%.13}" ]] && ln -s "$so" "$cu/lib/${so%.13}"
  done
  mkdir -p "$root/bin"
  ln -sfn "$cu" "$root/cu13"
  ln -sfn "$cu/bin/nvcc" "$root/bin/nvcc"
  ln -sfn "$venv/bin/cmake" "$root/bin/cmake"
  ln -sfn "$venv/bin/ctest" "$root/bin/ctest"
  "$root/bin/nvcc" --version | tail -n 2 >&2
  touch "$stamp"
fi
echo "$root"
