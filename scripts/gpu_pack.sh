#!/usr/bin/env bash
# Packs what a GPU machine needs to run razor's CUDA checks and benchmarks into .gpu/ (git-ignored): stripped
# razor and razor_tests from a CUDA build (build/release configured with -DRAZOR_CUDA=ON, as scripts/setup.sh
# does) and the shared libraries that machine lacks (fmt, pcre2, png). Optionally a model split in pieces of
# at most 40 MiB, for transfers with a size limit, and its cached head profile when there is one (so the GPU
# machine does not profile it again): scripts/gpu_pack.sh [MODEL.gguf]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
build="${RAZOR_BUILD:-build/release}"
grep -q 'RAZOR_CUDA:BOOL=ON' "$build/CMakeCache.txt" 2>/dev/null ||
  { echo "gpu_pack.sh: error: $build is not a CUDA build (run scripts/setup.sh)" >&2; exit 1; }
mkdir -p .gpu/lib
strip -o .gpu/razor "$build/razor"
strip -o .gpu/razor_tests "$build/razor_tests"
for lib in libfmt.so.9 libpcre2-8.so.0 libpng16.so.16; do
  path="$(ldconfig -p | awk -v l="$lib" '$1 == l && !found { print $NF; found = 1 }')"  # no early exit: SIGPIPE under pipefail
  [[ -n "$path" ]] && cp -L "$path" .gpu/lib/
done
if [[ $# -ge 1 ]]; then
  rm -f .gpu/model.part-* .gpu/model.gguf
  split -b 40M -d "$1" .gpu/model.part-
  sha256sum < "$1" | cut -d' ' -f1 > .gpu/model.sha256
  rm -f .gpu/model.razor-profile.json
  [[ -f "$1.razor-profile.json" ]] && cp "$1.razor-profile.json" .gpu/model.razor-profile.json
fi
du -sh .gpu
