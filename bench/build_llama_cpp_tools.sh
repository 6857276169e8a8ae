#!/usr/bin/env bash
# Builds llama.cpp's own benchmark tools (llama-bench, llama-batched-bench, llama-server) from the llama.cpp source
# that node-llama-cpp bundles, for the razor-vs-llama.cpp benchmarks (bench/race_llama_cpp.py, bench/batched_race.py).
# For benchmarks only: never on CI's path (scripts/test.sh does not call it).
#   1. runs bench/install_llama_cpp_peer.sh if node-llama-cpp is not installed yet (npm, into the cache, not the repo);
#   2. clones node_modules/node-llama-cpp/llama/gitRelease.bundle (a git bundle of the llama.cpp release it ships)
#      into  ${RAZOR_CACHE:-${RAZOR_HOME:-$HOME/.cache/razor}}/llama-cpp-tools/src   (whole folder: LLAMA_TOOLS_DIR);
#   3. configures CMake: Release, CPU only, -DGGML_NATIVE=ON (this machine's ISA), static libraries, nothing that
#      reaches the network (no OpenSSL/HTTPS, no web-UI download or npm build; this llama.cpp has no curl option any
#      more), no tests/examples, and builds only llama-bench, llama-batched-bench, llama-server into .../build/bin.
# The source tree is left as the bundle has it (node-llama-cpp's patches/ are for its addon and are not applied).
# Idempotent: a no-op when the three binaries exist for the same bundle commit (--force rebuilds from scratch).
# Takes ~10-15 minutes on 2 cores. Parallel jobs: -j N / --jobs N (default 2, or $JOBS).
# --isa avx512: builds for another machine instead of this one (-DGGML_NATIVE=OFF with AVX2/FMA/F16C and AVX-512
# F/VNNI/BF16, e.g. the GPU machine's Xeon) into .../build-avx512; the binaries are not run here (this machine may
# lack AVX-512).
# Prints the bin folder as its last line.
# Usage: bench/build_llama_cpp_tools.sh [--force] [-j N] [--isa native|avx512]
set -euo pipefail

me="build_llama_cpp_tools.sh"
die() { echo "$me: error: $*" >&2; exit 1; }

force=0
jobs="${JOBS:-2}"
isa=native
while (( $# )); do
  case "$1" in
    --force) force=1 ;;
    -j|--jobs) [[ $# -ge 2 ]] || die "$1 needs a value"; jobs="$2"; shift ;;
    -j*) jobs="${1#-j}" ;;
    --jobs=*) jobs="${1#--jobs=}" ;;
    --isa) [[ $# -ge 2 ]] || die "$1 needs a value"; isa="$2"; shift ;;
    --isa=*) isa="${1#--isa=}" ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "$me: error: unknown option '$1' (usage: bench/build_llama_cpp_tools.sh [--force] [-j N])" >&2; exit 2 ;;
  esac
  shift
done
[[ "$jobs" =~ ^[1-9][0-9]*$ ]] || die "-j: '$jobs' is not a positive integer"
case "$isa" in
  native) isa_flags=(-DGGML_NATIVE=ON) ;;
  avx512) isa_flags=(-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON -DGGML_BMI2=ON
                     -DGGML_AVX512=ON -DGGML_AVX512_VNNI=ON -DGGML_AVX512_BF16=ON) ;;
  *) die "--isa: '$isa' is not native or avx512" ;;
esac

for tool in git cmake c++; do
  command -v "$tool" >/dev/null || die "$tool not found (needed to build llama.cpp)"
done

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${RAZOR_CACHE:-${RAZOR_HOME:-$HOME/.cache/razor}}"
peer_dir="${LLAMA_PEER_DIR:-$cache_root/llama-cpp-peer}"
case "$peer_dir" in /*) ;; *) peer_dir="$PWD/$peer_dir" ;; esac
dir="${LLAMA_TOOLS_DIR:-$cache_root/llama-cpp-tools}"
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
src="$dir/src"
build="$dir/build"
[[ "$isa" == native ]] || build="$dir/build-$isa"
bin="$build/bin"
targets=(llama-bench llama-batched-bench llama-server)

bundle="$peer_dir/node_modules/node-llama-cpp/llama/gitRelease.bundle"
if [[ ! -f "$bundle" ]]; then
  echo "node-llama-cpp not installed in $peer_dir: running bench/install_llama_cpp_peer.sh" >&2
  LLAMA_PEER_DIR="$peer_dir" "$here/install_llama_cpp_peer.sh" >/dev/null
  [[ -f "$bundle" ]] || die "$bundle not found after bench/install_llama_cpp_peer.sh"
fi
# (list-heads reads the bundle's header without a repository; verify would need one and is left to git clone)
git bundle list-heads "$bundle" >/dev/null 2>&1 || die "$bundle is not a valid git bundle"
commit="$(git bundle list-heads "$bundle" | awk '$2 == "HEAD" { print $1; exit }')"
[[ -n "$commit" ]] || commit="$(git bundle list-heads "$bundle" | awk 'NR == 1 { print $1 }')"
[[ -n "$commit" ]] || die "$bundle lists no heads"
release="$(sed -n 's/.*"tag": *"\([^"]*\)".*/\1/p' "$(dirname "$bundle")/llama.cpp.info.json" 2>/dev/null || true)"
stamp="$build/.built-$commit"

all_built() {
  local t
  for t in "${targets[@]}"; do [[ -x "$bin/$t" ]] || return 1; done
  [[ -f "$stamp" ]]
}

if (( !force )) && all_built; then
  echo "llama.cpp tools (${release:-?}, commit ${commit:0:12}) already built in $bin" >&2
  echo "$bin"
  exit 0
fi

if (( force )) || [[ ! -d "$src/.git" || "$(git -C "$src" rev-parse HEAD 2>/dev/null)" != "$commit" ]]; then
  echo "cloning $bundle (llama.cpp ${release:-?}, commit ${commit:0:12}) into $src" >&2
  rm -rf "$src" "$build"
  mkdir -p "$dir"
  git clone -q "$bundle" "$src" || die "git clone of $bundle failed"
  git -C "$src" -c advice.detachedHead=false checkout -q "$commit" || die "checkout of $commit failed"
fi
rm -f "$build"/.built-*

echo "configuring llama.cpp (Release, CPU only, ISA $isa, static, no network features) in $build" >&2
gen=()
command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S "$src" -B "$build" "${gen[@]}" \
  -DCMAKE_BUILD_TYPE=Release \
  -DBUILD_SHARED_LIBS=OFF \
  "${isa_flags[@]}" \
  -DGGML_CPU=ON -DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_OPENCL=OFF -DGGML_HIP=OFF -DGGML_SYCL=OFF \
  -DGGML_RPC=OFF -DGGML_BACKEND_DL=OFF \
  -DLLAMA_OPENSSL=OFF -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF -DLLAMA_BUILD_APP=OFF \
  -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=ON -DLLAMA_BUILD_SERVER=ON \
  >&2 || die "cmake configure failed (see the output above)"

echo "building ${targets[*]} with -j$jobs (~10-15 minutes on 2 cores)" >&2
cmake --build "$build" --config Release -j "$jobs" --target "${targets[@]}" >&2 \
  || die "cmake build failed (see the output above)"
for t in "${targets[@]}"; do
  [[ -x "$bin/$t" ]] || die "$bin/$t missing after the build"
done
[[ "$isa" != native ]] || "$bin/llama-bench" --help >/dev/null 2>&1 || die "$bin/llama-bench does not run"
touch "$stamp"
echo "built llama.cpp ${release:-?} (commit ${commit:0:12}) tools: ${targets[*]}" >&2
echo "$bin"
