#!/usr/bin/env bash
# On the GPU machine: `razor eval` sweeps on a model that scripts/gpu_pack_eval.sh packed into .gpu/eval-NAME
# and that travelled there piece by piece (the pieces stay between calls while the machine is warm).
#   bench/gpu_eval.sh NAME [SECONDS] ['OUTDIR|eval ARGS' ...]
# Joins the pieces once they are all there (checked against the sha256; exit 3 while some are missing), puts
# the cached profile beside the model, then runs each `razor eval ARGS -m MODEL --device cuda --out
# $OUT/OUTDIR` in turn (its markdown in $OUT/OUTDIR/stdout.md), stopping the whole list after SECONDS (default 540; evals write every cell as it
# finishes, so what ran comes back, as $OUT/results.tgz). stderr of each eval goes to $OUT/OUTDIR/stderr.log.
set -uo pipefail
cd "$(dirname "$0")/.."
name="$1"; shift
budget=540
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then budget="$1"; shift; fi
out="${OUT:-/tmp/gpu_eval_out}"
gguf="$(scripts/gpu_join_model.sh "$name")" || exit $?
export LD_LIBRARY_PATH="$PWD/.gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RAZOR_HOME=/tmp/razor-home
mkdir -p "$RAZOR_HOME/eval" && ln -sfn "$PWD/.gpu/haystack" "$RAZOR_HOME/eval/haystack"
nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv,noheader
start=$SECONDS
for spec in "$@"; do
  sub="${spec%%|*}" args="${spec#*|}"
  left=$((budget - (SECONDS - start)))
  if [[ $left -le 5 ]]; then echo "== gpu_eval: out of time before $sub"; break; fi
  mkdir -p "$out/$sub"
  echo "== gpu_eval: $sub: razor eval $args ($left s left)"
  # shellcheck disable=SC2086
  timeout "$left" .gpu/razor eval $args -m "$gguf" --device cuda --out "$out/$sub" 2> "$out/$sub/stderr.log" \
    > "$out/$sub/stdout.md"
  echo "== gpu_eval: $sub rc $? after $((SECONDS - start)) s: $(tail -n 1 "$out/$sub/stderr.log")"
  grep -m3 -i "error" "$out/$sub/stderr.log"
done
# One archive: the device tool brings back only a limited number of files per call.
tar czf /tmp/gpu_eval_results.tgz -C "$out" . && rm -rf "${out:?}"/* && mv /tmp/gpu_eval_results.tgz "$out/results.tgz"
exit 0
