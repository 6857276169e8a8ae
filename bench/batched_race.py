#!/usr/bin/env python3
"""Aggregate decode tok/s at several batch sizes after a context: llama.cpp's llama-batched-bench (and razor, later).

For each context length C and batch size B, llama-batched-bench fills B sequences with C prompt tokens each (-pps:
the prompt is prefilled once and its KV copied to every sequence, so each sequence holds its own C tokens of KV),
then decodes --n-gen steps of B tokens (one per sequence) and reports S_TG = B x n_gen / decode time: the
aggregate decode tok/s. Flash attention on, KV f16, CPU only:
  llama-batched-bench -m GGUF -npp C -ntg N_GEN -npl 1,4,16 -pps -c 16 x (C + N_GEN) -t T -fa 1 -ctk f16 -ctv f16
                      --output-format jsonl
(-c: one KV stream per sequence of C + N_GEN tokens, at the largest batch). The tools come from
bench/build_llama_cpp_tools.sh (run first unless --llama-bin is given). Repetitions alternate engines per rep like
bench/race_llama_cpp.py and medians are quoted.

razor's column: `razor bench --batch` (razor_aggregate_decode): B sequences of one engine, each prefilled with its own
prompt, then steps that decode a token of every sequence in one batched forward (KV f16 unless --razor-kv-type).

Usage:
  bench/batched_race.py [--model smollm2-135m|FILE] [--ctx 512,4096] [--batch 1,4,16] [--n-gen 64] [--threads 2]
                        [--reps 1] [--razor build/release/razor] [--llama-bin DIR] [--out bench_out/batched.md]
Results: a markdown table on stdout (and --out), the raw numbers as JSON beside it.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
from race_llama_cpp import int_list  # noqa: E402  (the same list flags as the race)


def llama_cpp_tools_bin():
    p = subprocess.run([str(ROOT / "bench" / "build_llama_cpp_tools.sh")], stdout=subprocess.PIPE, text=True)
    if p.returncode != 0 or not p.stdout.strip():
        sys.exit(f"batched_race: error: bench/build_llama_cpp_tools.sh failed ({p.returncode})")
    return p.stdout.strip().splitlines()[-1]


def resolve_model(razor, model):
    if Path(model).is_file():
        return model
    if not Path(razor).is_file():
        sys.exit(f"batched_race: error: '{model}' is not a file and {razor} (to pull it by name) is not built")
    p = subprocess.run([razor, "pull", model], capture_output=True, text=True)
    if p.returncode != 0:
        sys.exit(f"batched_race: error: razor pull {model} failed:\n{p.stderr[-2000:]}")
    return p.stdout.strip().splitlines()[-1]


def llama_batched(bin_dir, model, ctx, batches, n_gen, threads):
    """One llama-batched-bench call at context ctx -> {batch: aggregate decode tok/s}, {batch: prefill tok/s}."""
    n_ctx = max(batches) * (ctx + n_gen)
    cmd = [str(Path(bin_dir) / "llama-batched-bench"), "-m", model, "-npp", str(ctx), "-ntg", str(n_gen),
           "-npl", ",".join(map(str, batches)), "-pps", "-c", str(n_ctx), "-t", str(threads), "-tb", str(threads),
           "-fa", "1", "-ctk", "f16", "-ctv", "f16", "--output-format", "jsonl"]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(f"batched_race: warning: llama-batched-bench failed ({p.returncode}): {' '.join(cmd)}\n"
              f"{p.stderr[-1500:]}", file=sys.stderr)
        return None, None, cmd
    tg, pp = {}, {}
    # jsonl rows go through llama.cpp's log, which may be stdout or stderr.
    for line in (p.stdout + "\n" + p.stderr).splitlines():
        line = line.strip()
        if not (line.startswith("{") and '"speed_tg"' in line):
            continue
        r = json.loads(line)
        if r["n_threads"] != threads or r["pp"] != ctx or r["tg"] != n_gen:
            sys.exit(f"batched_race: error: llama-batched-bench row {r} does not match threads {threads}, "
                     f"ctx {ctx}, n_gen {n_gen}")
        tg[r["pl"]] = r["speed_tg"]
        pp[r["pl"]] = r["speed_pp"]
    missing = [b for b in batches if b not in tg]
    if missing:
        print(f"batched_race: warning: no llama-batched-bench row for batch {missing} (context too small?)",
              file=sys.stderr)
    return tg, pp, cmd


def razor_aggregate_decode(razor, model, ctx, batches, n_gen, threads, kv="full", kv_type="f16"):
    """razor's aggregate decode tok/s per batch size after ctx tokens of context: {batch: tok/s or None}.

    `razor bench -p CTX -n N_GEN -t T --batch 1,4,16 --kv KV --kv-type TYPE`: B sequences of one engine (one KV pool),
    each prefilled with its own CTX-token prompt, then N_GEN steps that decode one token of every sequence in one
    batched forward; its decode column is B x N_GEN / decode time, as llama-batched-bench's S_TG.
    """
    cmd = [razor, "bench", "-m", model, "-p", str(ctx), "-n", str(n_gen), "-t", str(threads), "-r", "1",
           "--batch", ",".join(map(str, batches)), "--kv", kv, "--kv-type", kv_type]
    p = subprocess.run(cmd, capture_output=True, text=True)
    out = {b: None for b in batches}
    if p.returncode != 0:
        print(f"batched_race: razor bench failed: {p.stderr.strip()[-300:]}", file=sys.stderr)
        return out
    for line in p.stdout.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 11 and cells[0] == kv and cells[2] == str(ctx):
            try:
                out[int(cells[10])] = float(cells[4])
            except ValueError:
                pass
    return out


def med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--ctx", type=int_list, default=[512, 4096], help="context tokens per sequence before decode")
    ap.add_argument("--batch", type=int_list, default=[1, 4, 16], help="batch sizes (parallel sequences)")
    ap.add_argument("--n-gen", type=int, default=64)
    ap.add_argument("--threads", type=int_list, default=[2])
    ap.add_argument("--reps", type=int, default=1)
    ap.add_argument("--razor", default=str(ROOT / "build" / "release" / "razor"))
    ap.add_argument("--llama-bin", default=None,
                    help="folder holding llama-batched-bench (default: what bench/build_llama_cpp_tools.sh prints)")
    ap.add_argument("--out", default=str(ROOT / "bench_out" / "batched.md"))
    a = ap.parse_args()
    if a.reps < 1 or a.n_gen < 1:
        sys.exit("batched_race: error: --reps and --n-gen must be positive")
    llama_bin = a.llama_bin or llama_cpp_tools_bin()
    if not (Path(llama_bin) / "llama-batched-bench").is_file():
        sys.exit(f"batched_race: error: {llama_bin}/llama-batched-bench not found "
                 "(bench/build_llama_cpp_tools.sh builds it)")
    model = resolve_model(a.razor, a.model)
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)

    # samples[(engine, threads, ctx, batch)] = [aggregate decode tok/s per rep]
    samples, prefill, cmds = {}, {}, []
    for t in a.threads:
        for r in range(a.reps):
            for c in a.ctx:
                t0 = time.time()
                rz = razor_aggregate_decode(a.razor, model, c, a.batch, a.n_gen, t)
                t1 = time.time()
                tg, pp, cmd = llama_batched(llama_bin, model, c, a.batch, a.n_gen, t)
                if r == 0:
                    cmds.append(" ".join(cmd))
                for b in a.batch:
                    samples.setdefault(("razor", t, c, b), []).append(rz.get(b))
                    samples.setdefault(("llama.cpp", t, c, b), []).append((tg or {}).get(b))
                    prefill.setdefault((t, c, b), []).append((pp or {}).get(b))
                print(f"[threads {t} rep {r + 1}/{a.reps} ctx {c}] razor {t1 - t0:.0f} s, "
                      f"llama-batched-bench {time.time() - t1:.0f} s", file=sys.stderr)

    fmt = lambda x: "-" if x is None else f"{x:.1f}"
    lines = [f"model: {model}  ",
             f"aggregate decode tok/s (batch x {a.n_gen} tokens / decode time) after C tokens of context per sequence; "
             f"{a.reps} repetition(s), medians; llama.cpp: llama-batched-bench -pps, KV f16, flash attention on; "
             "razor: razor bench --batch, KV f16, one engine's shared pool ('-': not measured)  ", ""]
    for c in cmds:
        lines.append(f"    {c}")
    lines += ["", "| threads | context | batch | llama.cpp tok/s | each rep | razor tok/s | razor / llama.cpp | "
              "llama.cpp tok/s per sequence | llama.cpp vs batch 1 |",
              "|--:|--:|--:|--:|---|--:|--:|--:|--:|"]
    result = []
    for t in a.threads:
        for c in a.ctx:
            base = med(samples[("llama.cpp", t, c, 1)]) if 1 in a.batch else None
            for b in a.batch:
                ll = med(samples[("llama.cpp", t, c, b)])
                rz = med(samples[("razor", t, c, b)])
                ratio = rz / ll if rz is not None and ll else None
                scale = ll / base if ll is not None and base else None
                result.append({"threads": t, "ctx": c, "batch": b, "llama_cpp_tok_s": samples[("llama.cpp", t, c, b)],
                               "llama_cpp_median": ll, "razor_tok_s": samples[("razor", t, c, b)],
                               "razor_median": rz, "razor_vs_llama_cpp": ratio,
                               "llama_cpp_prefill_tok_s": prefill[(t, c, b)]})
                lines.append(f"| {t} | {c} | {b} | {fmt(ll)} | "
                             f"{', '.join(fmt(x) for x in samples[('llama.cpp', t, c, b)])} | {fmt(rz)} | "
                             f"{'-' if ratio is None else f'{ratio:.2f}x'} | {fmt(None if ll is None else ll / b)} | "
                             f"{'-' if scale is None else f'{scale:.2f}x'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"model": model, "n_gen": a.n_gen, "commands": cmds,
                                                    "runs": result}, indent=1) + "\n")
    print(f"wrote {out} and {out.with_suffix('.json')}", file=sys.stderr)


if __name__ == "__main__":
    main()
