#!/usr/bin/env bash
# Create (if missing) the Python reference venv used to regenerate HF goldens,
# and install the pinned packages from scripts/requirements-reference.txt.
# Idempotent: if every pinned package is already installed at the pinned
# version, it returns without touching the package index.
#
# Usage: scripts/setup_reference_venv.sh [VENV_DIR]   (default: <repo>/.venv)
# Env:   PYTHON (interpreter used to create the venv, default python3)
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${1:-$REPO_ROOT/.venv}"
REQ="$REPO_ROOT/scripts/requirements-reference.txt"
PY="${PYTHON:-python3}"

if [[ ! -x "$VENV/bin/python" ]]; then
  echo "[setup_reference_venv] creating venv at $VENV"
  "$PY" -m venv "$VENV"
fi

# Fast path: compare pinned versions against what is installed (no network).
if "$VENV/bin/python" - "$REQ" <<'PYEOF'
import sys
from importlib import metadata
ok = True
for line in open(sys.argv[1]):
    line = line.split("#", 1)[0].strip()
    if not line:
        continue
    name, _, want = line.partition("==")
    try:
        have = metadata.version(name)
    except metadata.PackageNotFoundError:
        have = None
    if have != want:
        print(f"[setup_reference_venv] {name}: have {have}, want {want}")
        ok = False
sys.exit(0 if ok else 1)
PYEOF
then
  echo "[setup_reference_venv] $VENV already satisfies $(basename "$REQ")"
  exit 0
fi

echo "[setup_reference_venv] installing pinned packages into $VENV"
"$VENV/bin/python" -m pip install -r "$REQ"
