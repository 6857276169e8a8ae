#!/usr/bin/env python3
"""Markdown tables for docs/EVAL.md from `razor eval` outputs of one model (bench/gpu_eval.sh results).

  bench/eval_tables.py DIR      DIR/<run>/<eval>.json for the runs of a sweep (needle, passkey, ruler, needle16k,
                                passkey16k, needle_paper, abl_*, kld*, kldabl_*)

Grid evals: per run, length and mode, the samples correct over every depth (or task) with a 95 % Wilson
interval, and the paired figure the issue's target is about: of the samples the full cache answers right, the
share razor answers right too (same prompts: sample k of a cell is the same prompt in every mode). KL: the
summaries of kld.json. Ablations: razor-only runs against the razor cells of the baseline run at that length.
"""
import json
import math
import os
import sys


def wilson(s, n, z=1.959964):
    if n == 0:
        return 0.0, 1.0
    p = s / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return max(0.0, c - h), min(1.0, c + h)


def fmt_acc(s, n):
    lo, hi = wilson(s, n)
    return f"{s}/{n} = {s / n:.2f} [{lo:.2f}, {hi:.2f}]" if n else "—"


def samples(cell):
    ps = cell.get("per_sample")
    if ps:
        return [(p["seed"], p["score"] == 1.0 or abs(p["score"] - 1.0) < 1e-9) for p in ps]
    return [(0, abs(cell["score"] - 1.0) < 1e-9)]


def load(path):
    with open(path) as f:
        return json.load(f)


def run_report(root, run):
    """The report of a grid run folder: <eval>.json for the one eval it holds (needle / passkey / ruler)."""
    d = os.path.join(root, run)
    for name in ("needle", "passkey", "ruler"):
        p = os.path.join(d, name + ".json")
        if os.path.exists(p):
            return load(p)
    return None


def keyed(cells):
    """{(task, depth, seed): correct} over the samples of cells."""
    return {(c["task"], c["depth"], seed): ok for c in cells for seed, ok in samples(c)}


def grid_tables(root, runs):
    out = []
    out.append("| run | length | full | razor | streaming | razor right where full is right | KV reduction razor / streaming |")
    out.append("|---|--:|--:|--:|--:|--:|--:|")
    for run in runs:
        r = run_report(root, run)
        if r is None:
            continue
        by = {}
        for c in r["cells"]:
            by.setdefault((c["length"], c["mode"]), []).append(c)
        for L in sorted({k[0] for k in by}):
            row = [run, str(L)]
            res = {}
            for mode in ("full", "razor", "streaming"):
                cells = sorted(by.get((L, mode), []), key=lambda c: (c["task"], c["depth"]))
                ss = [s for c in cells for s in samples(c)]
                res[mode] = (cells, ss)
                row.append(fmt_acc(sum(ok for _, ok in ss), len(ss)) if ss else "—")
            full, razor = keyed(res["full"][0]), keyed(res["razor"][0])
            common = [key for key in full if key in razor]  # the same prompt (task, depth, seed) in both
            if common:
                n = sum(1 for key in common if full[key])
                k = sum(1 for key in common if full[key] and razor[key])
                row.append(fmt_acc(k, n))
            else:
                row.append("—")
            red = []
            for mode in ("razor", "streaming"):
                cells = res[mode][0]
                red.append(f"{100 * sum(c['reduction'] for c in cells) / len(cells):.1f} %" if cells else "—")
            row.append(" / ".join(red))
            out.append("| " + " | ".join(row) + " |")
    return "\n".join(out)


def failures(root, runs):
    """Cells where some mode missed a sample: run, length, task/depth, correct counts per mode."""
    out = []
    for run in runs:
        r = run_report(root, run)
        if r is None:
            continue
        cells = {}
        for c in r["cells"]:
            cells.setdefault((c["length"], c["task"], c["depth"]), {})[c["mode"]] = c
        for key in sorted(cells):
            m = cells[key]
            counts = {mode: (sum(ok for _, ok in samples(c)), len(samples(c))) for mode, c in m.items()}
            if any(k < n for mode, (k, n) in counts.items() if mode != "streaming"):
                out.append(f"- {run} L={key[0]} {key[1]} depth {key[2]}: " +
                           ", ".join(f"{mode} {k}/{n}" for mode, (k, n) in sorted(counts.items())))
    return "\n".join(out) if out else "- none: full and razor answered every sample"


def kld_table(root, runs):
    out = ["| run | mode | mean KL [95 % CI] | top-1 agreement [95 % CI] | p95 KL | max KL | ppl mode / full | KV reduction |",
           "|---|---|--:|--:|--:|--:|--:|--:|"]
    for run in runs:
        p = os.path.join(root, run, "kld.json")
        if not os.path.exists(p):
            continue
        j = load(p)
        for s in j.get("summaries", []):
            kl, ag = s["mean_kl"], s["top1_agreement"]
            out.append(f"| {run} ({j['length']}, K={s['samples']}) | {s['mode']} | {kl['mean']:.4f} [{kl['lo']:.4f}, {kl['hi']:.4f}] | "
                       f"{100 * ag['mean']:.1f} % [{100 * ag['lo']:.1f}, {100 * ag['hi']:.1f}] | {s['p95_kl']:.3f} | {s['max_kl']:.2f} | "
                       f"{s['ppl_mode']:.2f} / {s['ppl_full']:.2f} | {100 * s['reduction']['mean']:.1f} % |")
    return "\n".join(out)


T975 = [12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
        2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042]


def t975(df):
    """t_{0.975, df}: the table for 1..30, then linear in 1/df through 40, 60, 120 and infinity (as
    eval::StudentT975)."""
    if df <= 30:
        return T975[df - 1]
    pts = [(30, 2.042), (40, 2.021), (60, 2.000), (120, 1.980), (float("inf"), 1.959964)]
    x = 1.0 / df
    for (d0, t0), (d1, t1) in zip(pts, pts[1:]):
        x0, x1 = 1.0 / d0, (0.0 if d1 == float("inf") else 1.0 / d1)
        if x1 <= x <= x0:
            return t1 + (t0 - t1) * (x - x1) / (x0 - x1)
    return 1.959964


def per_window_kl(path, mode):
    j = load(path)
    rs = sorted((r for r in j["results"] if r["mode"] == mode), key=lambda r: r.get("sample", 0))
    return [r["mean_kl"] for r in rs], j.get("sample_first_sentences")


def paired(x, y):
    """Mean of x - y over paired windows with its 95 % t interval, and in how many windows x > y."""
    d = [a - b for a, b in zip(x, y)]
    n = len(d)
    mu = sum(d) / n
    if n < 2:
        return f"{mu:+.4f} (1 window)"
    sd = math.sqrt(sum((v - mu) ** 2 for v in d) / (n - 1))
    h = t975(n - 1) * sd / math.sqrt(n)
    return f"{mu:+.4f} [{mu - h:+.4f}, {mu + h:+.4f}], larger in {sum(v > 0 for v in d)}/{n} windows"


def kld_paired(root, runs):
    """Paired KL differences over the same windows: streaming - razor within a run, and every razor-only
    run at 4096 tokens (ablations) - razor of the kld4k run."""
    out = ["| comparison | KL difference [95 % CI] |", "|---|--:|"]
    for run in runs:
        p = os.path.join(root, run, "kld.json")
        if not os.path.exists(p):
            continue
        modes = {r["mode"] for r in load(p)["results"]}
        if {"razor", "streaming"} <= modes:
            (s, _), (r, _) = per_window_kl(p, "streaming"), per_window_kl(p, "razor")
            out.append(f"| {run}: streaming - razor | {paired(s, r)} |")
    base = os.path.join(root, "kld4k", "kld.json")
    if os.path.exists(base):
        b, bw = per_window_kl(base, "razor")
        for run in runs:
            p = os.path.join(root, run, "kld.json")
            if run == "kld4k" or not os.path.exists(p) or load(p)["length"] != 4096:
                continue
            x, xw = per_window_kl(p, "razor")
            if xw is not None and bw is not None and xw == bw[: len(xw)]:
                out.append(f"| {run} - kld4k (razor) | {paired(x, b[: len(x)])} |")
    return "\n".join(out)


def ablation_table(root, runs, baseline="needle", length=8192):
    base = run_report(root, baseline)
    bcells = [c for c in base["cells"] if c["mode"] == "razor" and c["length"] == length] if base else []
    out = ["| configuration | razor correct | KV reduction | compressed KV heads | window W | baseline's samples correct |",
           "|---|--:|--:|--:|--:|--:|"]
    bkeys = keyed(bcells)
    for run in runs:
        r = run_report(root, run)
        cells = [c for c in r["cells"] if c["mode"] == "razor"] if r else []
        if not cells:
            continue
        k = keyed(cells)
        ss = list(k.values())
        red = sum(c["reduction"] for c in cells) / len(cells)
        both = [key for key in k if key in bkeys]  # the same prompts in the defaults' run
        base_ok = fmt_acc(sum(bkeys[key] for key in both), len(both)) if both else "—"
        out.append(f"| {run} | {fmt_acc(sum(ss), len(ss))} | {100 * red:.1f} % | "
                   f"{max(c['heads_compressed'] for c in cells)} | {max(c['window'] for c in cells)} | {base_ok} |")
    return "\n".join(out)


def main():
    root = sys.argv[1]
    names = sorted(os.listdir(root))
    grid = [n for n in ("needle", "passkey", "ruler", "needle16k", "passkey16k", "needle_paper") if n in names]
    print("### Accuracy\n")
    print(grid_tables(root, grid))
    print("\n### Cells where full or razor missed a sample\n")
    print(failures(root, grid))
    print("\n### KL\n")
    print(kld_table(root, [n for n in names if n.startswith("kld")]))
    print("\nPaired over the same windows (positive: the first has the larger KL):\n")
    print(kld_paired(root, [n for n in names if n.startswith("kld")]))
    abl = [n for n in names if n.startswith("abl_")]
    if abl:
        print("\n### Ablations (needle, 8192 tokens, razor only)\n")
        print(ablation_table(root, abl))


if __name__ == "__main__":
    main()
