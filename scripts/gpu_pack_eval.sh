#!/usr/bin/env bash
# Packs what a GPU machine needs to run `razor eval` sweeps (bench/gpu_eval.sh) into .gpu/ (git-ignored): the
# razor binary and libraries of scripts/gpu_pack.sh, the essays (.gpu/haystack), and per model a folder
# .gpu/eval-NAME with the GGUF in pieces of at most CHUNK MiB (default 56: one piece per device call, under
# the 64 MiB a call carries), its sha256 and its head profile (made here first when it is not cached, so every
# device runs the profile this machine made).
#   scripts/gpu_pack_eval.sh NAME|MODEL.gguf ...        (env CHUNK_MIB=56)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
chunk="${CHUNK_MIB:-56}"
home="${RAZOR_HOME:-$HOME/.cache/razor}"
scripts/gpu_pack.sh >/dev/null
rm -rf .gpu/haystack && cp -r "$home/eval/haystack" .gpu/haystack
for m in "$@"; do
  if [[ -f "$m" ]]; then gguf="$m" name="$(basename "$m" .gguf)"; else gguf="$(scripts/pull_model.sh "$m" | tail -n 1)" name="$m"; fi
  dir=".gpu/eval-$name"
  rm -rf "$dir" && mkdir -p "$dir"
  [[ -f "$gguf.razor-profile.json" ]] || build/release/razor profile -m "$gguf" >&2
  cp "$gguf.razor-profile.json" "$dir/profile.json"
  split -b "${chunk}M" -d "$gguf" "$dir/part-"
  sha256sum < "$gguf" | cut -d' ' -f1 > "$dir/sha256"
  echo "$dir: $(ls "$dir"/part-* | wc -l) pieces" >&2
done
du -sh .gpu/razor .gpu/lib .gpu/haystack .gpu/eval-* >&2
