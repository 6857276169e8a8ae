#!/usr/bin/env bash
# Installs the llama.cpp peer used by bench/llama_cpp_peer.mjs: the npm package node-llama-cpp (pinned),
# with only its prebuilt CPU binaries for this platform, into a cache folder outside the repo:
#   ${RAZOR_CACHE:-${RAZOR_HOME:-$HOME/.cache/razor}}/llama-cpp-peer     (override the whole path: LLAMA_PEER_DIR)
# Never builds llama.cpp from source and never downloads anything but the npm packages themselves:
#   - npm install --ignore-scripts, so node-llama-cpp's postinstall (which may download/compile llama.cpp) never runs
#     (belt and braces: NODE_LLAMA_CPP_POSTINSTALL=skip, NODE_LLAMA_CPP_SKIP_DOWNLOAD=true as well);
#   - --omit=optional drops the CUDA/Vulkan prebuilt packages; the CPU one (@node-llama-cpp/<platform>) is named
#     explicitly at the same pinned version;
#   - the check at the end loads the prebuilt binary with build: "never", skipDownload: true, gpu: false and fails
#     if node-llama-cpp did not pick the prebuilt binary (buildType must be "prebuilt").
# Idempotent: quick no-op when the pinned version is already installed and verified (--force reinstalls).
# Prints the install folder as its last line.
# Usage: bench/install_llama_cpp_peer.sh [--force]
set -euo pipefail

NLC_VERSION="3.22.1"

force=0
for a in "$@"; do
  case "$a" in
    --force) force=1 ;;
    -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
    *) echo "install_llama_cpp_peer.sh: error: unknown option '$a' (usage: bench/install_llama_cpp_peer.sh [--force])" >&2; exit 2 ;;
  esac
done

command -v node >/dev/null || { echo "install_llama_cpp_peer.sh: error: node (>= 20) not found" >&2; exit 1; }
command -v npm >/dev/null || { echo "install_llama_cpp_peer.sh: error: npm not found" >&2; exit 1; }
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if (( node_major < 20 )); then
  echo "install_llama_cpp_peer.sh: error: node-llama-cpp $NLC_VERSION needs node >= 20 (have $(node --version))" >&2
  exit 1
fi

case "$(node -p 'process.platform + "-" + process.arch')" in
  linux-x64) platform_pkg="@node-llama-cpp/linux-x64" ;;
  linux-arm64) platform_pkg="@node-llama-cpp/linux-arm64" ;;
  darwin-arm64) platform_pkg="@node-llama-cpp/mac-arm64-metal" ;;
  darwin-x64) platform_pkg="@node-llama-cpp/mac-x64" ;;
  *) echo "install_llama_cpp_peer.sh: error: no prebuilt node-llama-cpp package wired up for $(node -p 'process.platform + "-" + process.arch')" >&2; exit 1 ;;
esac

cache_root="${RAZOR_CACHE:-${RAZOR_HOME:-$HOME/.cache/razor}}"
dir="${LLAMA_PEER_DIR:-$cache_root/llama-cpp-peer}"
case "$dir" in /*) ;; *) dir="$PWD/$dir" ;; esac
stamp="$dir/.installed-$NLC_VERSION"

export NODE_LLAMA_CPP_SKIP_DOWNLOAD=true NODE_LLAMA_CPP_POSTINSTALL=skip NODE_LLAMA_CPP_GPU=false

# Loads the prebuilt binary on this CPU and prints what it is (bench/llama_cpp_peer.mjs --info exits non-zero if it
# can't, or if node-llama-cpp did not pick the prebuilt CPU binary).
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
verify() {
  LLAMA_PEER_DIR="$dir" node "$here/llama_cpp_peer.mjs" --info
}

installed_version() {
  node -p 'require(process.argv[1]).version' "$dir/node_modules/node-llama-cpp/package.json" 2>/dev/null || true
}

if (( !force )) && [[ -f "$stamp" && "$(installed_version)" == "$NLC_VERSION" && -d "$dir/node_modules/$platform_pkg" ]]; then
  echo "node-llama-cpp $NLC_VERSION already installed in $dir" >&2
  echo "$dir"
  exit 0
fi

echo "installing node-llama-cpp $NLC_VERSION + $platform_pkg (prebuilt, no source build) into $dir" >&2
mkdir -p "$dir"
rm -f "$dir"/.installed-*
if (( force )); then rm -rf "$dir/node_modules" "$dir/package-lock.json"; fi
# Its own package.json, so npm never walks up into a parent project.
cat > "$dir/package.json" <<EOF
{
  "name": "razor-llama-cpp-peer",
  "private": true,
  "description": "node-llama-cpp for bench/llama_cpp_peer.mjs; written by bench/install_llama_cpp_peer.sh",
  "type": "module"
}
EOF
(cd "$dir" && npm install --no-audit --no-fund --ignore-scripts --omit=optional --save-exact \
   "node-llama-cpp@$NLC_VERSION" "$platform_pkg@$NLC_VERSION" >&2)

echo "verifying that the prebuilt binary loads on this CPU" >&2
verify >&2
touch "$stamp"
echo "$dir"
