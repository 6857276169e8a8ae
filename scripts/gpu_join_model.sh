#!/usr/bin/env bash
# On the GPU machine: joins the pieces of a model that scripts/gpu_pack_eval.sh packed into .gpu/eval-NAME and
# that travelled there one device call at a time (the pieces stay between calls while the machine is warm).
#   scripts/gpu_join_model.sh NAME      prints the joined GGUF's path (.gpu/eval-NAME/NAME.gguf) on stdout
# Exit 3 while some pieces are missing (checked against the packed sha256), 1 when joining fails. The join is
# written beside, checked again and only then moved into place, so a join cut short never becomes the model.
# The cached head profile is put beside the model, where razor looks for it.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
name="$1"
dir=".gpu/eval-$name"
gguf="$dir/$name.gguf"  # named after the model: reports and pictures show the name
if [[ ! -f "$gguf" ]]; then
  if [[ "$(cat "$dir"/part-* 2>/dev/null | sha256sum | cut -d' ' -f1)" != "$(cat "$dir/sha256" 2>/dev/null)" ]]; then
    echo "== gpu_join_model: $name: $(ls "$dir"/part-* 2>/dev/null | wc -l) pieces here, not complete yet" >&2
    exit 3
  fi
  if ! cat "$dir"/part-* > "$gguf.tmp" ||
     [[ "$(sha256sum < "$gguf.tmp" | cut -d' ' -f1)" != "$(cat "$dir/sha256")" ]]; then
    rm -f "$gguf.tmp"; echo "== gpu_join_model: $name: joining the pieces failed" >&2; exit 1
  fi
  mv "$gguf.tmp" "$gguf" && rm -f "$dir"/part-*
  echo "== gpu_join_model: $name joined ($(du -h "$gguf" | cut -f1))" >&2
fi
cp "$dir/profile.json" "$gguf.razor-profile.json"
echo "$gguf"
