#!/usr/bin/env python3
"""Tokens/s through the Python package against `razor run` on the same prompt, greedy, alternating runs.

    python bench/python_vs_cli.py [--model PATH] [--binary build/release/razor] [--prompt-tokens 512] [-n 128]
                                  [-t 2] [--reps 5] [--kv full]

Per repetition: one `razor run` (its own stderr line: prompt and decode tok/s) and one llm.generate(stream=True)
in this process on an LLM opened once, whose decode rate is measured here by the wall clock from the first
piece to the last (Python's per-token work included), beside the engine's own timings. Prints medians, their ratio
Python / CLI, the median of the per-repetition ratios, and the share of the decode loop spent in Python
between tokens (one run, immune to the machine's noise). Needs the package installed (scripts/test_python.sh builds it) and the CLI built.
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import razor

REPO = Path(__file__).resolve().parents[1]
CLI_LINE = re.compile(r"prompt: (\d+) tokens, ([\d.]+) tok/s \| generated: (\d+) tokens, ([\d.]+) tok/s")


def prompt_text(llm, tokens):
    """The first `tokens` tokens of the repository's docs (repeated if short), as text."""
    text = "\n".join((REPO / "docs" / name).read_text(encoding="utf-8") for name in ("EVAL.md", "BENCHMARKS.md"))
    ids = llm.tokenize(text, add_bos=False)
    while len(ids) < tokens:
        ids = ids + ids
    return llm.detokenize(ids[:tokens])


def run_cli(binary, model, path, n, threads, kv):
    cmd = [binary, "run", "-m", model, "-f", path, "-n", str(n), "-t", str(threads), "--temp", "0", "--kv", kv]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, check=True)
    m = CLI_LINE.search(proc.stderr)
    if not m:
        sys.exit(f"no timing line in razor run's stderr:\n{proc.stderr[-2000:]}")
    return {"prompt": int(m[1]), "prefill": float(m[2]), "generated": int(m[3]), "decode": float(m[4]),
            "text": proc.stdout}


def run_python(llm, text, n):
    pieces = []
    first = None
    t0 = time.perf_counter()
    for piece in llm.generate(text, max_tokens=n, stream=True):
        if first is None:
            first = time.perf_counter()
        pieces.append(piece)
    end = time.perf_counter()
    r = llm.last_result
    generated = r["timings"]["generated_tokens"]
    return {"prompt": r["timings"]["prompt_tokens"], "prefill": r["timings"]["prefill_tok_s"],
            "decode": r["timings"]["decode_tok_s"], "generated": generated,
            "decode_wall": (generated - 1) / (end - first) if generated > 1 else 0.0,
            "prefill_wall": r["timings"]["prompt_tokens"] / (first - t0), "text": "".join(pieces)}


def python_share(llm, text, n):
    """The share of decode time spent in Python (between the engine's next() calls), one run: noise on the
    machine moves both parts alike, so this ratio holds where run-to-run tok/s do not."""
    generation = llm._start(llm._prompt_ids(text), n, 0.0, 0.95, 40, 0.05, 1.0, None, 0)
    generation.next()  # the prompt
    inside = 0.0
    t0 = time.perf_counter()
    while True:
        a = time.perf_counter()
        piece = generation.next()
        inside += time.perf_counter() - a
        if piece is None:
            break
    total = time.perf_counter() - t0
    return (total - inside) / total, (total - inside) / max(1, len(generation.result()["token_ids"]))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default=os.environ.get("RAZOR_TEST_MODEL", "smollm2-135m"))
    ap.add_argument("--binary", default=str(REPO / "build" / "release" / "razor"))
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("-n", type=int, default=128, help="tokens to generate (default 128)")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--kv", default="full", choices=["full", "razor", "streaming"])
    ap.add_argument("--fresh", action="store_true", help="open a new LLM for every repetition (as each razor run is)")
    args = ap.parse_args()
    model = razor.resolve_model(args.model)
    llm = razor.LLM(model, kv=args.kv, threads=args.threads)
    text = prompt_text(llm, args.prompt_tokens)
    cli, py = [], []
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False) as f:
        f.write(text)
    try:
        for rep in range(args.reps):
            cli.append(run_cli(args.binary, model, f.name, args.n, args.threads, args.kv))
            if args.fresh:
                del llm
                llm = razor.LLM(model, kv=args.kv, threads=args.threads)
            py.append(run_python(llm, text, args.n))
            print(f"rep {rep + 1}/{args.reps}: cli decode {cli[-1]['decode']:.1f} tok/s, python "
                  f"{py[-1]['decode']:.1f} (wall {py[-1]['decode_wall']:.1f})", file=sys.stderr)
    finally:
        os.unlink(f.name)
    # razor run ends its output with a newline of its own.
    share, per_token = python_share(llm, text, args.n)
    same_text = all(c["text"] in (p["text"], p["text"] + "\n") for c, p in zip(cli, py))

    def med(rows, key):
        return statistics.median(r[key] for r in rows)

    print(f"model {Path(model).name}, {cli[0]['prompt']} prompt tokens (python {py[0]['prompt']}), "
          f"{med(cli, 'generated'):.0f} generated, {args.threads} threads, kv {args.kv}, {args.reps} reps, "
          f"same greedy text: {same_text}")
    print(f"time in Python between tokens: {1e6 * per_token:.1f} us/token, {100 * share:.3f} % of the decode loop")
    # Per-repetition ratios pair runs adjacent in time, so a noisy neighbour moves both sides of one ratio.
    print("| | razor run | Python (engine timing) | Python (wall clock) | ratio of medians | median of per-rep ratios |")
    print("|---|---|---|---|---|---|")
    for key, wall in (("prefill", "prefill_wall"), ("decode", "decode_wall")):
        c, p, w = med(cli, key), med(py, key), med(py, wall)
        paired = statistics.median(b[key] / a[key] for a, b in zip(cli, py))
        paired_wall = statistics.median(b[wall] / a[key] for a, b in zip(cli, py))
        print(f"| {key} tok/s (median) | {c:.1f} | {p:.1f} | {w:.1f} | {p / c:.3f} (wall {w / c:.3f}) | "
              f"{paired:.3f} (wall {paired_wall:.3f}) |")


if __name__ == "__main__":
    main()
