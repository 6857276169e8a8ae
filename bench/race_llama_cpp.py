#!/usr/bin/env python3
"""razor vs llama.cpp on the same GGUF, the same prompt lengths and thread counts, in one run.

For every thread count and every repetition the two engines run alternately (razor, then llama.cpp), so slow
phases of a shared machine hit both; each figure is the median over repetitions, and the ratio razor / llama.cpp
is taken between medians of the same run.

llama.cpp is its own `llama-bench` (the default, --peer llama-bench), built from the llama.cpp source that
node-llama-cpp bundles by bench/build_llama_cpp_tools.sh (which this script runs first unless --llama-bin is given;
a no-op once built, ~10-15 minutes on 2 cores the first time). Each repetition is two llama-bench calls with -r 1
(plus llama-bench's own warm-up run), -o json, CPU only:
  prefill:               llama-bench -m GGUF -p LEN[,LEN...] -n 0 -t T -fa 1 -ctk f16 -ctv f16 -r 1 -o json
  decode after context:  llama-bench -m GGUF -p 0 -n N_GEN -d CTX[,CTX...] -t T -fa 1 -ctk f16 -ctv f16 -r 1 -o json
(flash attention on, KV cache f16, llama-bench's default batch 2048 / ubatch 512; decode = N_GEN single-token
llama_decode calls after CTX tokens of context, timed by llama-bench, no sampling). razor's KV cache is fp32.
--peer node keeps the older peer, node-llama-cpp's prebuilt CPU build through bench/llama_cpp_peer.mjs (installed by
bench/install_llama_cpp_peer.sh): that npm wrapper adds per-token overhead (~2 ms a call and more) and understates
llama.cpp's decode, so it is not the reference any more.

Figures (the issue's): prefill tok/s of a P-token prompt; decode tok/s of --n-gen single-token steps after C
tokens of context. razor gets both from `razor bench -p LEN` (prefill of LEN tokens, then decode after LEN).
Every figure is also shown against its floor, measured by razor on the
same machine in the same run (`razor bench` prints both): prefill against the fp32 FMA peak of those threads /
the FLOPs per prompt token (2 x the layers' matrix elements + causal attention, 2 N x head_dim x heads x
layers at prompt length N), decode against bytes read per token / read
bandwidth (weights as stored + the engine's own KV bytes at that context: fp32 for razor, f16 for llama.cpp).

Usage:
  bench/race_llama_cpp.py [--model smollm2-135m|FILE] [--prefill 512,2048,8128] [--decode-after 512,4096,8128]
                          [--n-gen 64] [--threads 1,2] [--reps 3] [--razor-kv full,razor] [--razor-math fp32,int8]
                          [--razor-flags "..."] [--peer llama-bench|node] [--llama-bin DIR]
                          [--out bench_out/race.md]
Results: a markdown table on stdout (and --out), the raw numbers as JSON beside it (llama-bench's own JSON of
every call too: <out>.llama_t<T>_r<R>_{pp,tg}.json).
"""
import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def int_list(s):
    try:
        v = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{s}' is not a comma-separated list of integers")
    if not v or any(x <= 0 for x in v):
        raise argparse.ArgumentTypeError(f"'{s}' must list positive integers")
    return v


def run(cmd, **kw):
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if p.returncode != 0:
        sys.exit(f"race: error: {' '.join(map(str, cmd))} exited {p.returncode}:\n{p.stderr[-2000:]}")
    return p.stdout


def razor_bench(razor, model, lens, n_gen, threads, kv, extra):
    """One repetition of razor bench -> {(kv, len): row}, (read bandwidth B/s, fp32 FMA peak FLOP/s)."""
    out = run([razor, "bench", "-m", model, "-p", ",".join(map(str, lens)), "-n", str(n_gen), "-t", str(threads),
               "-r", "1", "--kv", kv] + extra)
    rows, bw = {}, None
    for line in out.splitlines():
        m = re.match(r"\| (\w+) \| (\d+) \| (\d+) \| ([\d.]+) \| ([\d.]+) \| ([\d.]+) \|", line)
        if m:
            rows[(m.group(1), int(m.group(3)))] = {"prefill": float(m.group(4)), "decode": float(m.group(5)),
                                                   "kv_mib": float(m.group(6))}
        m = re.search(r"measured read bandwidth ([\d.]+) GB/s, fp32 FMA peak ([\d.]+) GFLOP/s", line)
        if m:
            bw = (float(m.group(1)) * 1e9, float(m.group(2)) * 1e9)
        m = re.search(r"weights ([\d.]+) MiB", line)
        if m:
            rows["weights_bytes"] = float(m.group(1)) * 1048576
    return rows, bw


def llama_cpp_tools_bin():
    """The bin folder of llama.cpp's tools (bench/build_llama_cpp_tools.sh builds them once; prints the folder last)."""
    p = subprocess.run([str(ROOT / "bench" / "build_llama_cpp_tools.sh")], stdout=subprocess.PIPE, text=True)
    if p.returncode != 0 or not p.stdout.strip():
        sys.exit(f"race: error: bench/build_llama_cpp_tools.sh failed ({p.returncode})")
    return p.stdout.strip().splitlines()[-1]


def llama_bench_tool(bin_dir, model, prefill, decode, n_gen, threads, json_stem):
    """One repetition of llama.cpp's llama-bench (a prefill call and a decode-after-context call, -r 1 each) in the
    node peer's JSON shape; None (with a warning) if it fails, so razor's figures survive."""
    exe = str(Path(bin_dir) / "llama-bench")
    common = ["-m", model, "-t", str(threads), "-fa", "1", "-ctk", "f16", "-ctv", "f16", "-r", "1", "-o", "json"]
    res = {"prefill": [], "decode": [], "info": {}}
    for tag, args in (("pp", ["-p", ",".join(map(str, prefill)), "-n", "0"]),
                      ("tg", ["-p", "0", "-n", str(n_gen), "-d", ",".join(map(str, decode))])):
        if (tag == "pp" and not prefill) or (tag == "tg" and not decode):
            continue
        cmd = [exe] + args + common
        p = subprocess.run(cmd, capture_output=True, text=True)
        if p.returncode != 0:
            print(f"race: warning: llama-bench failed ({p.returncode}): {' '.join(cmd)}: "
                  f"{p.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            return None
        Path(f"{json_stem}_{tag}.json").write_text(p.stdout)
        try:
            tests = json.loads(p.stdout)
        except json.JSONDecodeError as e:
            print(f"race: warning: llama-bench printed no JSON ({e})", file=sys.stderr)
            return None
        for t in tests:
            if t.get("n_threads") != threads or t.get("type_k") != "f16" or t.get("type_v") != "f16":
                sys.exit(f"race: error: llama-bench ran threads {t.get('n_threads')}, KV {t.get('type_k')}/"
                         f"{t.get('type_v')}; asked for {threads}, f16/f16")
            res["info"] = {k: t.get(k) for k in ("build_commit", "build_number", "cpu_info", "backends",
                                                 "flash_attn", "n_batch", "n_ubatch")}
            if t["n_prompt"] > 0 and t["n_gen"] == 0:
                res["prefill"].append({"n": t["n_prompt"], "median": statistics.median(t["samples_ts"])})
            elif t["n_gen"] > 0 and t["n_prompt"] == 0:
                res["decode"].append({"ctx": t["n_depth"], "median": statistics.median(t["samples_ts"])})
    return res


def llama_bench_node(model, prefill, decode, n_gen, threads, json_path):
    """One repetition of the old npm peer (node-llama-cpp through bench/llama_cpp_peer.mjs); None if it fails."""
    cmd = ["node", str(ROOT / "bench" / "llama_cpp_peer.mjs"), "--model", model,
           "--prompt-lens", ",".join(map(str, prefill)), "--decode-after", ",".join(map(str, decode)),
           "--n-gen", str(n_gen), "--threads", str(threads), "--reps", "1", "--json", str(json_path)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    if p.returncode != 0:
        print(f"race: warning: llama.cpp peer failed ({p.returncode}): {p.stderr.strip().splitlines()[-1:]}",
              file=sys.stderr)
        return None
    return json.loads(Path(json_path).read_text())


def med(v):
    return statistics.median(v) if v else float("nan")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--prefill", type=int_list, default=[512, 2048, 8128])
    ap.add_argument("--decode-after", type=int_list, default=[512, 4096, 8128])
    ap.add_argument("--n-gen", type=int, default=64)
    ap.add_argument("--threads", type=int_list, default=[1, 2])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--razor-kv", default="full,razor")
    ap.add_argument("--razor-math", default="fp32,int8",
                    help="razor arithmetic to race, comma-separated: fp32 (the default: fp32 activations) and/or "
                         "int8 (--int8: 8-bit activations in Q4_0/Q4_1/Q5_0/Q5_1/Q4_K/Q6_K decode, as llama.cpp does)")
    ap.add_argument("--razor-flags", default="", help="extra flags for razor bench, e.g. \"--window-min 1024\"")
    ap.add_argument("--razor", default=str(ROOT / "build" / "release" / "razor"))
    ap.add_argument("--peer", choices=("llama-bench", "node"), default="llama-bench",
                    help="llama.cpp side: its own llama-bench (default) or the old npm wrapper node-llama-cpp")
    ap.add_argument("--llama-bin", default=None,
                    help="folder holding llama-bench (default: what bench/build_llama_cpp_tools.sh prints)")
    ap.add_argument("--out", default=str(ROOT / "bench_out" / "race.md"))
    a = ap.parse_args()
    if a.reps < 1 or a.n_gen < 1:
        sys.exit("race: error: --reps and --n-gen must be positive")
    if not Path(a.razor).is_file():
        sys.exit(f"race: error: {a.razor} not found (build it: cmake --preset release && cmake --build build/release)")

    if a.peer == "node":
        subprocess.run([str(ROOT / "bench" / "install_llama_cpp_peer.sh")], check=True, stdout=subprocess.DEVNULL)
        llama_bin = None
    else:
        llama_bin = a.llama_bin or llama_cpp_tools_bin()
        if not (Path(llama_bin) / "llama-bench").is_file():
            sys.exit(f"race: error: {llama_bin}/llama-bench not found (bench/build_llama_cpp_tools.sh builds it)")
    model = run([a.razor, "pull", a.model]).strip().splitlines()[-1] if not Path(a.model).is_file() else a.model
    kvs = a.razor_kv.split(",")
    maths = a.razor_math.split(",")
    if not maths or any(m not in ("fp32", "int8") for m in maths):
        sys.exit(f"race: error: --razor-math '{a.razor_math}': expected fp32 and/or int8")
    lens = sorted(set(a.prefill) | set(a.decode_after))
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    extra = a.razor_flags.split() if a.razor_flags else []

    # samples[(engine, kind, n, threads)] = [tok/s per rep]
    samples, kv_mib, bw, peak, weights_bytes, llama_info, loads = {}, {}, {}, {}, None, {}, []
    for t in a.threads:
        for r in range(a.reps):
            t0 = time.time()
            for math in maths:
                rows, b = razor_bench(a.razor, model, lens, a.n_gen, t, a.razor_kv,
                                      extra + (["--int8"] if math == "int8" else []))
                bw.setdefault(t, []).append(b[0])
                peak.setdefault(t, []).append(b[1])
                weights_bytes = rows.pop("weights_bytes", weights_bytes)
                for (kv, n), row in rows.items():
                    name = f"razor {kv}" + (" int8" if math == "int8" else "")
                    if n in a.prefill:
                        samples.setdefault((name, "prefill", n, t), []).append(row["prefill"])
                    if n in a.decode_after:
                        samples.setdefault((name, "decode", n, t), []).append(row["decode"])
                    kv_mib[(kv, n)] = row["kv_mib"]
            t1 = time.time()
            if a.peer == "node":
                js = llama_bench_node(model, a.prefill, a.decode_after, a.n_gen, t, out.with_suffix(f".llama_t{t}.json"))
            else:
                js = llama_bench_tool(llama_bin, model, a.prefill, a.decode_after, a.n_gen, t,
                                      str(out.with_suffix("")) + f".llama_t{t}_r{r + 1}")
                if js:
                    llama_info = js["info"]
            js = js or {"prefill": [], "decode": []}
            for e in js["prefill"]:
                samples.setdefault(("llama.cpp", "prefill", e["n"], t), []).append(e["median"])
            for e in js["decode"]:
                samples.setdefault(("llama.cpp", "decode", e["ctx"], t), []).append(e["median"])
            load = os.getloadavg()[0]
            loads.append({"threads": t, "rep": r + 1, "load_1min": load})
            print(f"[threads {t} rep {r + 1}/{a.reps}] razor {t1 - t0:.0f} s, llama.cpp {time.time() - t1:.0f} s, "
                  f"load average {load:.1f} (machine's other work competes for the cores)", file=sys.stderr)

    # Model facts for the floors (from razor inspect): stored weight bytes, FLOPs per token of the matmuls.
    insp = run([a.razor, "inspect", model])
    # Matmul FLOPs per prompt token: 2 x the elements of every layer matrix (the LM head runs for the last token
    # only, the embedding is a lookup).
    layer_elems = sum(int(m.group(1)) * int(m.group(2))
                      for m in re.finditer(r"^\s+blk\.\d+\.\S+\s+\w+\s+(\d+) x (\d+)", insp, re.M))
    geo = re.search(r"layers (\d+) \| dim \d+ \| heads (\d+) \(kv \d+, head dim (\d+)\)", insp)
    n_layers, n_heads, head_dim = (int(geo.group(i)) for i in (1, 2, 3))
    kv_full_tok = float(re.search(r"KV cache:\s+(\d+) bytes per token", insp).group(1))
    lines = []
    lines.append(f"model: {model}  ")
    if a.peer == "node":
        peer = "llama.cpp = node-llama-cpp (npm wrapper, bench/llama_cpp_peer.mjs)"
    else:
        peer = (f"llama.cpp = llama-bench (build {llama_info.get('build_number')}, commit "
                f"{llama_info.get('build_commit')}, {llama_info.get('backends')}, batch {llama_info.get('n_batch')} / "
                f"ubatch {llama_info.get('n_ubatch')})")
    lines.append(f"{peer}  ")
    lines.append(f"threads {a.threads}, {a.reps} alternating repetitions, medians; decode = {a.n_gen} tokens; "
                 f"razor KV fp32, llama.cpp KV f16 (flash attention on); 'int8' = razor --int8  ")
    for t in a.threads:
        lines.append(f"threads {t}: read bandwidth {med(bw[t]) / 1e9:.1f} GB/s, fp32 FMA peak {med(peak[t]) / 1e9:.1f} "
                     f"GFLOP/s (both measured by razor in this run)  ")
    load_list = ", ".join(f"{x['load_1min']:.1f}" for x in loads)
    lines.append(f"1-minute load average after each repetition: {load_list} "
                 f"({os.cpu_count()} CPUs)  ")
    lines.append("")
    lines.append("| figure | threads | tokens | engine | tok/s (median) | each rep | vs llama.cpp | floor tok/s | "
                 "of floor |")
    lines.append("|---|--:|--:|---|--:|---|--:|--:|--:|")
    engines = [f"razor {kv}" + (" int8" if m == "int8" else "") for kv in kvs for m in maths] + ["llama.cpp"]
    result = []
    for kind, ns in (("prefill", a.prefill), ("decode", a.decode_after)):
        for t in a.threads:
            for n in ns:
                ref = med(samples.get(("llama.cpp", kind, n, t), []))
                for e in engines:
                    v = samples.get((e, kind, n, t))
                    if not v:
                        continue
                    m = med(v)
                    if kind == "prefill":
                        # matmuls + causal attention (q.k and p.v: 4 d FLOPs per visible key, N/2 keys on average)
                        flops = 2 * layer_elems + 2 * n * head_dim * n_heads * n_layers
                        floor = med(peak[t]) / flops
                    else:
                        if e == "llama.cpp":
                            kvb = kv_full_tok / 2 * n  # f16 K + V, every layer
                        else:
                            kvb = kv_mib[(e.split()[1], n)] * 1048576  # "razor KV [int8]"
                        floor = med(bw[t]) / (weights_bytes + kvb)
                    ratio = m / ref if e != "llama.cpp" and ref == ref else None
                    result.append({"figure": kind, "threads": t, "tokens": n, "engine": e, "tok_s": v, "median": m,
                                   "vs_llama_cpp": ratio, "floor_tok_s": floor})
                    lines.append(f"| {kind} | {t} | {n} | {e} | {m:.1f} | {', '.join(f'{x:.1f}' for x in v)} | "
                                 f"{'' if ratio is None else f'{ratio:.2f}x'} | {floor:.0f} | {100 * m / floor:.0f} % |")
    text = "\n".join(lines) + "\n"
    print(text)
    out.write_text(text)
    out.with_suffix(".json").write_text(json.dumps({"peer": a.peer, "llama_cpp": llama_info, "runs": result,
                                                    "bandwidth": bw, "fma_peak": peak, "load": loads},
                                                   indent=1) + "\n")
    print(f"wrote {out} and {out.with_suffix('.json')}", file=sys.stderr)


if __name__ == "__main__":
    main()
