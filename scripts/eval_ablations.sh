#!/usr/bin/env bash
# RazorAttention ablations on one needle sweep: full, StreamingLLM and razor with its defaults, then razor
# without the compensation token, without echo heads, at other induction ratios and window fractions.
# Each configuration writes OUT/<name>/needle.{json,md,png}; the last step prints one markdown table of
# accuracy against measured KV reduction (the table in docs/EVAL.md).
# Usage: scripts/eval_ablations.sh [MODEL] [OUT] [LENGTHS] [DEPTHS]
#   defaults: smollm2-135m, eval_out/ablations, 4096, 0,25,50,75,100. Extra flags: RAZOR_EVAL_FLAGS.
set -euo pipefail
cd "$(dirname "$0")/.."
model="${1:-smollm2-135m}"
out="${2:-eval_out/ablations}"
lengths="${3:-4096}"
depths="${4:-0,25,50,75,100}"
razor=build/release/razor
[ -x "$razor" ] || { echo "eval_ablations: error: $razor not built (run scripts/setup.sh)" >&2; exit 1; }

run() {  # name, flags...
  local name="$1"; shift
  echo "== eval_ablations: $name ($*)" >&2
  # shellcheck disable=SC2086
  "$razor" eval needle -m "$model" --lengths "$lengths" --depths "$depths" --out "$out/$name" ${RAZOR_EVAL_FLAGS:-} "$@"
}

run baseline --modes full,razor,streaming
run no_compensation --modes razor --no-compensation
run no_echo --modes razor --no-echo
for r in 0.05 0.10 0.20 0.30; do run "induction_$r" --modes razor --induction-ratio "$r"; done
for f in 0.1 0.3; do run "window_frac_$f" --modes razor --window-frac "$f"; done

python3 - "$out" <<'PY'
import json, os, sys
out = sys.argv[1]
# KV reduction of every configuration against the full cache's measured bytes in the same cell of the
# baseline run (the eval's own reduction falls back to N x bytes-per-token when full was not run with it).
base = json.load(open(os.path.join(out, "baseline", "needle.json")))
full = {(c["length"], c["depth"]): c["kv_bytes"] for c in base["cells"] if c["mode"] == "full"}
rows = []
for name in sorted(os.listdir(out)):
    path = os.path.join(out, name, "needle.json")
    if not os.path.exists(path):
        continue
    r = json.load(open(path))
    by_mode = {}
    for c in r["cells"]:
        by_mode.setdefault(c["mode"], []).append(c)
    for mode, cells in by_mode.items():
        if name != "baseline" and mode != "razor":
            continue
        label = mode if name == "baseline" else f"razor, {name.replace('_', ' ')}"
        acc = sum(c["score"] for c in cells) / len(cells)
        red = sum(1 - c["kv_bytes"] / full[(c["length"], c["depth"])] for c in cells) / len(cells)
        heads = max(c["heads_compressed"] for c in cells)
        win = max(c["window"] for c in cells)
        rows.append((label, acc, red, heads, win, len(cells)))
print("| configuration | needle accuracy | mean KV reduction | compressed KV heads | window W | cells |")
print("|---|--:|--:|--:|--:|--:|")
for label, acc, red, heads, win, n in rows:
    print(f"| {label} | {acc:.2f} | {100 * red:.1f} % | {heads} | {win} | {n} |")
PY
