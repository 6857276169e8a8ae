#!/usr/bin/env bash
# On the GPU machine: bench/serve_load.py runs (capacity, fairness, soak of `razor serve`) on a model that
# scripts/gpu_pack_eval.sh packed into .gpu/eval-NAME and that travelled there piece by piece.
#   bench/gpu_serve_load.sh NAME [SECONDS] ['RUN|serve_load.py ARGS' ...]
# Joins the model (scripts/gpu_join_model.sh; exit 3 while pieces are missing), then runs each
# `python3 bench/serve_load.py ARGS --razor .gpu/razor -m MODEL --out $OUT/RUN/result.json` in turn (its tables
# in $OUT/RUN/stdout.md, progress in $OUT/RUN/stderr.log, the servers' logs beside result.json), stopping the
# list after SECONDS (default 540). ARGS choose the device: `--serve-arg=--device=cuda` for the GPU, `-t 16`
# for the host's CPU cores. Everything comes back as one archive, $OUT/results.tgz.
set -uo pipefail
cd "$(dirname "$0")/.."
name="$1"; shift
budget=540
if [[ "${1:-}" =~ ^[0-9]+$ ]]; then budget="$1"; shift; fi
out="${OUT:-/tmp/gpu_serve_out}"
gguf="$(scripts/gpu_join_model.sh "$name")" || exit $?
export LD_LIBRARY_PATH="$PWD/.gpu/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export RAZOR_HOME=/tmp/razor-home  # serve_load.py reads its prompts from $RAZOR_HOME/eval/haystack
mkdir -p "$RAZOR_HOME/eval" && ln -sfn "$PWD/.gpu/haystack" "$RAZOR_HOME/eval/haystack"
nvidia-smi --query-gpu=name,memory.total,clocks.sm --format=csv,noheader
lscpu | grep -E '^(Model name|CPU\(s\)|Flags)' | cut -c1-200
start=$SECONDS
for spec in "$@"; do
  sub="${spec%%|*}" args="${spec#*|}"
  left=$((budget - (SECONDS - start)))
  if [[ $left -le 5 ]]; then echo "== gpu_serve_load: out of time before $sub"; break; fi
  mkdir -p "$out/$sub"
  echo "== gpu_serve_load: $sub: serve_load.py $args ($left s left)"
  # shellcheck disable=SC2086
  timeout "$left" python3 bench/serve_load.py $args --razor .gpu/razor -m "$gguf" --out "$out/$sub/result.json" \
    > "$out/$sub/stdout.md" 2> "$out/$sub/stderr.log"
  echo "== gpu_serve_load: $sub rc $? after $((SECONDS - start)) s"
  tail -n 40 "$out/$sub/stdout.md"
done
tar czf /tmp/gpu_serve_results.tgz -C "$out" . && rm -rf "${out:?}"/* && mv /tmp/gpu_serve_results.tgz "$out/results.tgz"
exit 0
