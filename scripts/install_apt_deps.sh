#!/usr/bin/env bash
# Install the Debian/Ubuntu packages razor needs to build, test, fuzz and benchmark (chromium and
# chromium-driver: the headless browser that tests `razor serve`'s web page, scripts/test_serve_browser.sh).
# Idempotent: when every package is already installed (dpkg -s) it returns at once, touching
# neither apt's lists nor the network.
#
# Usage: scripts/install_apt_deps.sh [--check]
#   --check   only report: print the missing packages, exit 1 if any is missing, 0 otherwise
# Uses sudo only when not root; runs apt-get non-interactively.
set -euo pipefail

PACKAGES=(
  build-essential cmake ninja-build g++ clang libclang-rt-14-dev
  libgtest-dev nlohmann-json3-dev libcli11-dev libpcre2-dev libfmt-dev libutf8proc-dev
  libbenchmark-dev libpng-dev pkg-config
  python3-venv python3-pip
  chromium chromium-driver
)
# nodejs/npm may come from another source (e.g. a nodejs build that bundles npm): only ask apt for
# them when the command is missing.
command -v node >/dev/null 2>&1 || PACKAGES+=(nodejs)
command -v npm >/dev/null 2>&1 || PACKAGES+=(npm)

log() { echo "[install_apt_deps] $*" >&2; }

installed() { dpkg -s "$1" 2>/dev/null | grep -q '^Status: install ok installed$'; }

missing=()
for p in "${PACKAGES[@]}"; do
  installed "$p" || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  log "all ${#PACKAGES[@]} packages present"
  exit 0
fi

if [[ "${1:-}" == "--check" ]]; then
  log "missing: ${missing[*]}"
  exit 1
fi

command -v apt-get >/dev/null 2>&1 || { echo "install_apt_deps: error: apt-get not found; install by hand: ${missing[*]}" >&2; exit 1; }

SUDO=()
if [[ "$(id -u)" != 0 ]]; then
  command -v sudo >/dev/null 2>&1 || { echo "install_apt_deps: error: not root and no sudo; install by hand: ${missing[*]}" >&2; exit 1; }
  SUDO=(sudo)
fi

export DEBIAN_FRONTEND=noninteractive
APT_OPTS=(-y -q -o DPkg::Lock::Timeout=600 -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold)

log "installing: ${missing[*]}"
log "apt-get update"
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" update >&2
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get "${APT_OPTS[@]}" install --no-install-recommends "${missing[@]}" >&2

still=()
for p in "${missing[@]}"; do installed "$p" || still+=("$p"); done
if [[ ${#still[@]} -ne 0 ]]; then
  echo "install_apt_deps: error: still missing after apt-get install: ${still[*]}" >&2
  exit 1
fi
log "done"
