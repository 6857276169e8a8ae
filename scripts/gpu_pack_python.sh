#!/usr/bin/env bash
# Packs the Python package for a GPU machine into .gpu/ (git-ignored), for bench/gpu_python_check.sh there:
# scripts/gpu_pack.sh's CLI, libraries and model pieces, then .gpu/py/razor (the package with the CUDA extension
# of build/pycuda, built for that machine's Python) and .gpu/wheels (pytest and its dependencies, pure Python).
#   scripts/gpu_pack_python.sh MODEL.gguf
# build/pycuda: a CUDA + Python build configured with the GPU machine's Python version (3.12 there), e.g.
#   cmake -S . -B build/pycuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DRAZOR_PYTHON=ON -DRAZOR_CUDA=ON \
#     -DRAZOR_TESTS=OFF -DCMAKE_CUDA_COMPILER=... -DCUDAToolkit_ROOT=... -DPython_EXECUTABLE=PYTHON \
#     -Dnanobind_DIR="$(python -m nanobind --cmake_dir)"  &&  cmake --build build/pycuda --target _razor
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
[[ $# -ge 1 ]] || { echo "usage: scripts/gpu_pack_python.sh MODEL.gguf" >&2; exit 2; }
scripts/gpu_pack.sh "$1"
module="$(ls build/pycuda/python/_razor.cpython-312-*.so 2>/dev/null | head -n 1)"
[[ -n "$module" ]] || { echo "gpu_pack_python.sh: error: no extension in build/pycuda/python (build _razor there with Python 3.12)" >&2; exit 1; }
rm -rf .gpu/py .gpu/wheels
mkdir -p .gpu/py/razor/data .gpu/wheels
cp python/razor/*.py python/razor/py.typed .gpu/py/razor/
strip -o ".gpu/py/razor/$(basename "$module")" "$module"
cp models/catalog.json scripts/pull_model.sh .gpu/py/razor/data/
python3 -m pip download -q --disable-pip-version-check --only-binary=:all: --python-version 3.12 -d .gpu/wheels pytest
du -sh .gpu/py .gpu/wheels
