#!/usr/bin/env python3
"""Per-kernel time of decode steps from an ncu CSV of gpu__time_duration (the GPU machine has ncu).

    ncu --csv --metrics gpu__time_duration.sum --clock-control none --launch-skip N --launch-count K \\
        .gpu/razor bench ... > ncu.csv
    bench/ncu_step_times.py ncu.csv [--step-kernel EmbedKernel]

Steps in the window = launches of the step kernel (one a decode step: the token embedding). Prints, per kernel
name and grid, microseconds a step, launches and the median launch; then the kernel time of a step.
"""
import argparse
import collections
import csv
import statistics
import sys


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("csv", help="ncu --csv output (lines before the header are skipped)")
    ap.add_argument("--step-kernel", default="EmbedKernel", help="a kernel launched once a step")
    args = ap.parse_args()
    with open(args.csv, newline="") as f:
        lines = f.read().splitlines()
    start = next((i for i, l in enumerate(lines) if l.startswith('"ID"')), None)
    if start is None:
        print(f"ncu_step_times.py: error: no ncu CSV header in {args.csv}", file=sys.stderr)
        return 1
    times = collections.defaultdict(list)  # (kernel, grid) -> [us]
    for row in csv.DictReader(lines[start:]):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        value = float(row["Metric Value"].replace(",", ""))
        unit = row.get("Metric Unit", "ns")
        us = value / 1000.0 if unit in ("ns", "nsecond") else value if unit in ("us", "usecond") else value * 1000.0
        times[(row["Kernel Name"], row.get("Grid Size", ""))].append(us)
    steps = sum(len(v) for (name, _), v in times.items() if args.step_kernel in name)
    if steps == 0:
        print(f"ncu_step_times.py: error: no {args.step_kernel} launch in the window", file=sys.stderr)
        return 1
    print(f"# {sum(len(v) for v in times.values())} launches, {steps} steps ({args.step_kernel} launches)")
    total = 0.0
    for (name, grid), v in sorted(times.items(), key=lambda kv: -sum(kv[1])):
        per_step = sum(v) / steps
        total += per_step
        print(f"{per_step:9.1f} us/step {len(v):5d} launches, median {statistics.median(v):8.2f} us  "
              f"{name[:60]}  grid {grid}")
    print(f"kernel time per step: {total:.1f} us")
    return 0


if __name__ == "__main__":
    sys.exit(main())
