#!/usr/bin/env python3
"""razor's CUDA backend vs Hugging Face transformers on one GPU: the same model shape, the same contexts, one run.

For a model shape (random weights, no checkpoint needed) and each context N, both engines prefill N tokens and then
decode --decode-steps tokens one at a time; the script prints the decode ms/token of each, both against the
bandwidth floor of a decode step, razor's speedup over transformers, and the prefill tok/s of each.

razor:  `RAZOR bench --device cuda --synthetic SHAPE -p N[,N...] -n STEPS` (stdout parsed by its table's header
        names; stderr passed through). LD_LIBRARY_PATH gets RAZOR's folder's lib/ (.gpu/lib from
        scripts/gpu_pack.sh) when there is one.
transformers: the shape's config (hard-coded below) built with random weights directly on the GPU in bf16, sdpa
        attention, eval, no grad. For each N: prefill N random ids (timed with CUDA events, tok/s), then
        STEPS greedy decode steps with the KV cache, each timed with CUDA events; the median ms/token is quoted.
        Modes (--hf-modes):
          eager    DynamicCache, plain eager forward (one-shot prefill).
          compile  StaticCache(max_cache_len = N + warm-up + STEPS + 1), prefill eager in chunks of
                   --hf-prefill-chunk (a static cache's mask spans the whole cache), then the decode step through
                   torch.compile(model.forward, mode="reduce-overhead", fullgraph=True, dynamic=False), 3 warm-up
                   steps before timing.
        A mode that fails (an API difference, out of memory) is reported as failed with its error; the rest goes
        on. After --budget-s seconds (from the script's start) the remaining transformers runs are skipped.
floor:  (weight bytes + KV bytes at N) / bandwidth, per decode step. Weight bytes: the sum of the model's parameter
        bytes (bf16; computed from the config when transformers is skipped); KV bytes: 2 x layers x kv_heads x
        head_dim x 2 bytes x N. Bandwidth: a device-to-device copy with torch (--bw-gib GiB, read + write bytes
        counted, median of 10), or razor's printed `bandwidth:` line when transformers is skipped.

On the GPU machine:
  python3 bench/gpu_race.py --razor .gpu/razor --shape llama-3.1-8b --contexts 32768,131072
  python3 bench/gpu_race.py --shape smollm2-135m --contexts 1024,8000 --skip-razor --out race.json
Every measurement is printed (flushed) as it comes, and with --out the JSON is rewritten after each one, so a
timeout keeps what was measured; the ratio table comes last.
"""
import argparse
import copy
import gc
import inspect
import json
import os
import re
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START = time.monotonic()

# Hugging Face configs of the shapes razor knows as --synthetic (config.json style: rope_theta / rope_scaling, which
# transformers 5 folds into rope_parameters itself).
SHAPES = {
    "llama-3.1-8b": {
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "head_dim": 128,
        "vocab_size": 128256,
        "rope_theta": 500000.0,
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8192,
        },
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": False,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
    },
    "qwen2.5-7b": {
        "model_type": "qwen2",  # Qwen2 always has q/k/v biases (no attention_bias field in its config)
        "hidden_size": 3584,
        "intermediate_size": 18944,
        "num_hidden_layers": 28,
        "num_attention_heads": 28,
        "num_key_value_heads": 4,
        "head_dim": 128,
        "vocab_size": 152064,
        "rope_theta": 1000000.0,
        "max_position_embeddings": 131072,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": False,
        "hidden_act": "silu",
        "use_sliding_window": False,
    },
    "smollm2-135m": {
        "model_type": "llama",
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
        "head_dim": 64,
        "vocab_size": 49152,
        "rope_theta": 100000.0,
        "max_position_embeddings": 8192,
        "rms_norm_eps": 1e-5,
        "tie_word_embeddings": True,
        "hidden_act": "silu",
        "attention_bias": False,
        "mlp_bias": False,
    },
}
QKV_BIAS = {"qwen2": True}  # model types whose q/k/v projections carry biases whatever the config says
BF16 = 2  # bytes


def log(*parts):
    print(*parts, flush=True)


def warn(*parts):
    print("gpu_race:", *parts, file=sys.stderr, flush=True)


def elapsed_s():
    return time.monotonic() - START


# ---------------------------------------------------------------- shapes: sizes from the config alone


def weight_bytes_from_config(c):
    """bf16 bytes of every parameter of the HF model of config dict c (what sum(p.nbytes) gives, tied counted once)."""
    h, i, v, n = c["hidden_size"], c["intermediate_size"], c["vocab_size"], c["num_hidden_layers"]
    hd = c.get("head_dim") or h // c["num_attention_heads"]
    q, kv = c["num_attention_heads"] * hd, c["num_key_value_heads"] * hd
    qkv_bias = QKV_BIAS.get(c["model_type"], c.get("attention_bias", False))
    o_bias = c.get("attention_bias", False) and c["model_type"] not in QKV_BIAS
    layer = h * (q + 2 * kv) + q * h + 3 * h * i + 2 * h  # q k v o, gate up down, two norms
    layer += (q + 2 * kv) * qkv_bias + h * o_bias + (2 * i + h) * c.get("mlp_bias", False)
    params = v * h + n * layer + h + (0 if c["tie_word_embeddings"] else v * h)
    return params * BF16


def kv_bytes(c, n_tokens):
    hd = c.get("head_dim") or c["hidden_size"] // c["num_attention_heads"]
    return 2 * c["num_hidden_layers"] * c["num_key_value_heads"] * hd * BF16 * n_tokens


def floor_ms(weight_bytes, kv, bandwidth):
    return (weight_bytes + kv) / bandwidth * 1e3 if bandwidth else None


# ---------------------------------------------------------------- razor: run `razor bench`, parse its table


def parse_cell(s):
    s = s.strip()
    if s in ("", "-", "—", "n/a"):
        return None
    t = s.rstrip("%x×").replace(",", "")
    try:
        return float(t)
    except ValueError:
        return s


def is_separator(cells):
    return bool(cells) and all(re.fullmatch(r":?-{1,}:?", c.strip()) for c in cells)


def split_row(line):
    line = line.strip()
    if not line.startswith("|"):
        return None
    return [c.strip() for c in line.strip("|").split("|")]


def parse_razor_output(text):
    """razor bench's stdout -> {'bandwidth_bytes_s': float|None, 'rows': [{header: value}]}.

    Rows of every markdown table whose header has a 'context' column; cells keyed by the lower-cased header name,
    '-' read as None, numbers as float. The bandwidth comes from a line like 'bandwidth: 4.26 TB/s (...)'.
    """
    bandwidth = None
    units = {"tb/s": 1e12, "gb/s": 1e9, "mb/s": 1e6, "tib/s": 2**40, "gib/s": 2**30}
    rows, header = [], None
    lines = text.splitlines()
    for k, line in enumerate(lines):
        m = re.search(r"bandwidth:\s*([0-9.]+)\s*([TGM]i?B/s)", line, re.I)
        if m and bandwidth is None:
            bandwidth = float(m.group(1)) * units[m.group(2).lower()]
        cells = split_row(line)
        if cells is None:
            header = None
            continue
        if is_separator(cells):
            continue
        nxt = split_row(lines[k + 1]) if k + 1 < len(lines) else None
        if nxt is not None and is_separator(nxt):
            header = [c.lower() for c in cells]
            continue
        if header and "context" in header and len(cells) == len(header):
            rows.append({name: parse_cell(cell) for name, cell in zip(header, cells)})
    return {"bandwidth_bytes_s": bandwidth, "rows": rows}


def razor_row_figures(row):
    """One parsed razor row -> the figures the race compares (None where razor did not measure one)."""
    def get(*names):
        for name in names:
            if isinstance(row.get(name), float):
                return row[name]
        return None

    ms = get("decode ms/token")
    tok_s = get("decode tok/s")
    if ms is None and tok_s:
        ms = 1e3 / tok_s
    return {
        "context": int(get("context", "prompt") or 0),
        "batch": int(get("batch") or 1),
        "prefill_tok_s": get("prefill tok/s"),
        "decode_ms": ms,
        "decode_tok_s": tok_s,
        "razor_floor_ms": get("floor ms/token"),
        "razor_decode_over_floor": get("decode / floor"),
        "kv_mib": get("kv mib"),
        "fill": row.get("fill"),
    }


def razor_env(binary):
    env = dict(os.environ)
    lib = Path(binary).resolve().parent / "lib"
    if lib.is_dir():
        env["LD_LIBRARY_PATH"] = f"{lib}:{env['LD_LIBRARY_PATH']}" if env.get("LD_LIBRARY_PATH") else str(lib)
    return env


def run_razor(binary, shape, contexts, steps, timeout_s):
    """Runs razor bench, echoing its stdout as it comes; -> {'cmd', 'rc', 'stdout', 'bandwidth_bytes_s', 'rows'}."""
    cmd = [str(binary), "bench", "--device", "cuda", "--synthetic", shape, "-p", ",".join(map(str, contexts)),
           "-n", str(steps)]
    log(f"== razor: {' '.join(cmd)}")
    out, rc = [], None
    t0 = time.monotonic()
    try:
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=None, text=True, env=razor_env(binary))
    except OSError as e:
        warn(f"razor did not start: {e}")
        return {"cmd": cmd, "rc": None, "error": str(e), "stdout": "", "bandwidth_bytes_s": None, "rows": []}
    try:
        for line in p.stdout:
            out.append(line)
            print("razor> " + line, end="", flush=True)
            if timeout_s and time.monotonic() - t0 > timeout_s:
                warn(f"razor ran past {timeout_s} s: killed")
                p.kill()
                break
        rc = p.wait()
    except KeyboardInterrupt:
        p.kill()
        raise
    text = "".join(out)
    parsed = parse_razor_output(text)
    result = {"cmd": cmd, "rc": rc, "wall_s": round(time.monotonic() - t0, 1), "stdout": text, **parsed}
    result["figures"] = [razor_row_figures(r) for r in parsed["rows"]]
    if rc != 0:
        result["error"] = f"razor exited with {rc}"
        warn(result["error"])
    if not parsed["rows"]:
        warn("no table rows in razor's output")
    return result


def razor_by_context(razor):
    """{context: figures} for batch 1 (the first row of each context)."""
    out = {}
    for f in (razor or {}).get("figures", []):
        if f["batch"] == 1 and f["context"] not in out:
            out[f["context"]] = f
    return out


# ---------------------------------------------------------------- transformers (torch imported only here)


class Timer:
    """CUDA events on a GPU (GPU-timeline intervals, no host sync per step), perf_counter on a CPU."""

    def __init__(self, torch, device):
        self.torch, self.cuda = torch, device.startswith("cuda")

    def mark(self):
        if self.cuda:
            e = self.torch.cuda.Event(enable_timing=True)
            e.record()
            return e
        return time.perf_counter()

    def sync(self):
        if self.cuda:
            self.torch.cuda.synchronize()

    def ms(self, a, b):  # after sync()
        return a.elapsed_time(b) if self.cuda else (b - a) * 1e3


def free_memory(torch):
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        torch.cuda.empty_cache()


def measure_bandwidth(torch, device, gib, reps=10):
    """Median device-to-device copy bandwidth in bytes/s (read + write bytes counted)."""
    n = int(gib * 2**30)
    src = torch.empty(n, dtype=torch.uint8, device=device)
    dst = torch.empty_like(src)
    src.fill_(1)
    timer = Timer(torch, device)
    for _ in range(2):
        dst.copy_(src)
    marks = []
    for _ in range(reps):
        a = timer.mark()
        dst.copy_(src)
        marks.append((a, timer.mark()))
    timer.sync()
    ms = statistics.median(timer.ms(a, b) for a, b in marks)
    del src, dst
    free_memory(torch)
    return 2 * n / (ms * 1e-3)


def make_config(transformers, shape):
    d = copy.deepcopy(SHAPES[shape])
    model_type = d.pop("model_type")
    d["initializer_range"] = 0.02
    d["use_cache"] = True
    try:
        return transformers.AutoConfig.for_model(model_type, **d)
    except Exception as e:  # an older/newer transformers that rejects a legacy key: try the rope_parameters form
        warn(f"AutoConfig.for_model({model_type}) failed ({e}); retrying with rope_parameters")
        rope = dict(d.pop("rope_scaling", None) or {"rope_type": "default"})
        rope["rope_theta"] = d.pop("rope_theta")
        d["rope_parameters"] = rope
        return transformers.AutoConfig.for_model(model_type, **d)


def build_model(torch, transformers, shape, device):
    cfg = make_config(transformers, shape)
    t0 = time.monotonic()
    with torch.device(device):
        try:
            model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=torch.bfloat16, attn_implementation="sdpa")
        except TypeError:  # transformers 4.x before `dtype`
            model = transformers.AutoModelForCausalLM.from_config(cfg, torch_dtype=torch.bfloat16,
                                                                   attn_implementation="sdpa")
    model.eval()
    model.requires_grad_(False)
    params = {id(p): p for p in model.parameters()}.values()
    wbytes = sum(p.numel() * p.element_size() for p in params)
    dtypes = sorted({str(p.dtype) for p in params})
    log(f"== transformers {transformers.__version__}, torch {torch.__version__}: {type(model).__name__} {shape}, "
        f"{wbytes / 2**30:.2f} GiB of weights ({', '.join(dtypes)}) built in {time.monotonic() - t0:.1f} s "
        f"on {device}")
    return model, wbytes


class Forward:
    """model(...) for one chunk of ids, passing what this transformers version takes (logits_to_keep=1 so that a
    prompt's logits are one row; cache_position for 4.x caches)."""

    def __init__(self, model, fn=None):
        names = set(inspect.signature(model.forward).parameters)
        self.fn = fn or model
        self.keep = "logits_to_keep" if "logits_to_keep" in names else (
            "num_logits_to_keep" if "num_logits_to_keep" in names else None)
        self.cache_position = "cache_position" in names

    def __call__(self, torch, ids, cache, start):
        kw = {"input_ids": ids, "past_key_values": cache, "use_cache": True}
        if self.keep:
            kw[self.keep] = 1
        if self.cache_position:
            kw["cache_position"] = torch.arange(start, start + ids.shape[1], device=ids.device)
        return self.fn(**kw).logits[:, -1, :]


def prefill(torch, fwd, ids, cache, chunk, timer):
    """-> (last logits, ms). chunk <= 0: one forward over the whole prompt."""
    n = ids.shape[1]
    chunk = n if chunk <= 0 else chunk
    timer.sync()
    a = timer.mark()
    logits = None
    for s in range(0, n, chunk):
        logits = fwd(torch, ids[:, s:s + chunk], cache, s)
    b = timer.mark()
    timer.sync()
    return logits, timer.ms(a, b)


def decode(torch, fwd, first_logits, cache, start, steps, warmup, timer, mark_step=None):
    """Greedy decode: warmup untimed steps, then `steps` timed ones -> (per-step ms list, wall ms of the timed ones)."""
    tok = first_logits.argmax(-1, keepdim=True)
    pos = start
    for _ in range(warmup):
        if mark_step:
            mark_step()
        tok = fwd(torch, tok, cache, pos).argmax(-1, keepdim=True)
        pos += 1
    timer.sync()
    t0 = time.perf_counter()
    marks = []
    for _ in range(steps):
        if mark_step:
            mark_step()
        a = timer.mark()
        tok = fwd(torch, tok, cache, pos).argmax(-1, keepdim=True)
        marks.append((a, timer.mark()))
        pos += 1
    timer.sync()
    wall = (time.perf_counter() - t0) * 1e3
    return [timer.ms(a, b) for a, b in marks], wall


def hf_run(torch, transformers, model, mode, n, args, timer):
    """One (mode, context): prefill n random ids, decode args.decode_steps -> result dict (raises on failure)."""
    vocab = model.config.vocab_size
    device = args.hf_device
    gen = torch.Generator(device="cpu").manual_seed(n)
    ids = torch.randint(100, vocab, (1, n), generator=gen).to(device)
    res = {"mode": mode, "context": n}
    cache = fwd_step = None
    try:
        with torch.no_grad():
            if mode == "eager":
                warmup = 1
                cache = make_dynamic_cache(transformers, model)
                eager = Forward(model)
                logits, ms = prefill(torch, eager, ids, cache, args.hf_prefill_chunk, timer)
                fwd_step, mark_step = eager, None
            elif mode == "compile":
                warmup = 3
                max_len = n + warmup + args.decode_steps + 1
                cache = make_static_cache(transformers, model, max_len, device)
                eager = Forward(model)
                chunk = args.hf_prefill_chunk if args.hf_prefill_chunk > 0 else args.hf_static_prefill_chunk
                logits, ms = prefill(torch, eager, ids, cache, chunk, timer)
                res["prefill_chunk"] = min(chunk, n)
                torch._dynamo.reset()
                compiled = torch.compile(model.forward, mode="reduce-overhead", fullgraph=True, dynamic=False)
                fwd_step = Forward(model, compiled)
                mark_step = getattr(torch.compiler, "cudagraph_mark_step_begin", None)
                skips_before = cudagraph_skips(torch)
            else:
                raise ValueError(f"unknown mode {mode}")
            res["prefill_ms"] = ms
            res["prefill_tok_s"] = n / (ms * 1e-3)
            log(f"   transformers {mode} N={n}: prefill {res['prefill_tok_s']:.1f} tok/s ({ms:.0f} ms)")
            t0 = time.monotonic()
            step_ms, wall_ms = decode(torch, fwd_step, logits, cache, n, args.decode_steps, warmup, timer, mark_step)
            res["warmup_s"] = None if mode == "eager" else round(time.monotonic() - t0 - wall_ms * 1e-3, 1)
            if mode == "compile" and device.startswith("cuda"):
                # > 0: inductor fell back from CUDA graphs (the log says why); the figure is then not "reduce-overhead"
                res["cudagraph_skips"] = cudagraph_skips(torch) - skips_before
                if res["cudagraph_skips"]:
                    warn(f"compile N={n}: {res['cudagraph_skips']} CUDA-graph skip(s): decode ran without CUDA graphs")
            res["decode_step_ms"] = [round(x, 4) for x in step_ms]
            res["decode_ms"] = statistics.median(step_ms)
            res["decode_wall_ms_per_token"] = wall_ms / max(1, len(step_ms))
            if torch.cuda.is_available():
                res["peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
            log(f"   transformers {mode} N={n}: decode median {res['decode_ms']:.3f} ms/token "
                f"(wall {res['decode_wall_ms_per_token']:.3f} ms/token"
                + (f", warm-up + compile {res['warmup_s']} s" if res["warmup_s"] is not None else "") + ")")
            return res
    finally:
        del cache, fwd_step, ids
        if mode == "compile":
            torch._dynamo.reset()  # drops the compiled graphs and their CUDA-graph memory pool
        free_memory(torch)


def make_dynamic_cache(transformers, model):
    try:
        return transformers.DynamicCache(config=model.config)
    except TypeError:  # 4.x before the config argument
        return transformers.DynamicCache()


def cudagraph_skips(torch):
    try:
        from torch._dynamo.utils import counters
        return int(counters["inductor"]["cudagraph_skips"])
    except Exception:
        return 0


def make_static_cache(transformers, model, max_len, device):
    """StaticCache as transformers 5 builds it (config + max_cache_len; layers allocate lazily on first update),
    with the 4.x keywords as a fallback."""
    try:
        return transformers.StaticCache(config=model.config, max_cache_len=max_len)
    except TypeError:
        import torch
        return transformers.StaticCache(config=model.config, max_batch_size=1, max_cache_len=max_len,
                                        device=device, dtype=torch.bfloat16)


def run_hf(args, contexts, save):
    """All transformers measurements -> dict; never raises (errors are recorded)."""
    hf = {"modes": args.hf_modes, "runs": [], "notes": []}
    try:
        import torch
        import transformers
    except Exception as e:
        hf["error"] = f"import failed: {e}"
        warn(hf["error"])
        return hf
    hf["versions"] = {"torch": torch.__version__, "transformers": transformers.__version__}
    try:
        if args.hf_device.startswith("cuda"):
            hf["device_name"] = torch.cuda.get_device_name()
        hf["bandwidth_bytes_s"] = measure_bandwidth(torch, args.hf_device, args.bw_gib)
        log(f"== torch copy bandwidth: {hf['bandwidth_bytes_s'] / 1e12:.3f} TB/s "
            f"({args.bw_gib} GiB device-to-device copy, read + write, median of 10)")
        model, hf["weight_bytes"] = build_model(torch, transformers, args.shape, args.hf_device)
    except Exception as e:
        hf["error"] = f"{type(e).__name__}: {e}"
        warn(f"transformers setup failed: {hf['error']}")
        traceback.print_exc()
        return hf
    save()
    timer = Timer(torch, args.hf_device)
    for n in contexts:
        for mode in args.hf_modes:
            if elapsed_s() > args.budget_s:
                note = f"{mode} N={n}: skipped, past the {args.budget_s:.0f} s budget"
                hf["notes"].append(note)
                hf["runs"].append({"mode": mode, "context": n, "skipped": note})
                log(f"   transformers {note}")
                continue
            if torch.cuda.is_available():
                torch.cuda.reset_peak_memory_stats()
            try:
                hf["runs"].append(hf_run(torch, transformers, model, mode, n, args, timer))
            except Exception as e:
                err = f"{type(e).__name__}: {str(e)[:600]}"
                warn(f"transformers {mode} N={n} failed: {err}")
                traceback.print_exc()
                hf["runs"].append({"mode": mode, "context": n, "error": err})
            save()
    del model
    free_memory(torch)
    return hf


# ---------------------------------------------------------------- the race table


def best_hf(hf, n):
    """(best decode run, best prefill run) at context n among the modes that succeeded."""
    runs = [r for r in (hf or {}).get("runs", []) if r.get("context") == n]
    dec = [r for r in runs if r.get("decode_ms")]
    pre = [r for r in runs if r.get("prefill_tok_s")]
    return (min(dec, key=lambda r: r["decode_ms"]) if dec else None,
            max(pre, key=lambda r: r["prefill_tok_s"]) if pre else None)


def ratio(a, b):
    return a / b if a is not None and b else None


def race_rows(shape, contexts, razor, hf):
    cfg = SHAPES[shape]
    wbytes = (hf or {}).get("weight_bytes") or weight_bytes_from_config(cfg)
    bw = (hf or {}).get("bandwidth_bytes_s") or (razor or {}).get("bandwidth_bytes_s")
    rz = razor_by_context(razor)
    rows = []
    for n in contexts:
        r = rz.get(n, {})
        dec, pre = best_hf(hf, n)
        fl = floor_ms(wbytes, kv_bytes(cfg, n), bw)
        rd, hd = r.get("decode_ms"), dec and dec["decode_ms"]
        rp, hp = r.get("prefill_tok_s"), pre and pre["prefill_tok_s"]
        rows.append({
            "context": n,
            "razor_decode_ms": rd,
            "hf_decode_ms": hd,
            "hf_decode_mode": dec and dec["mode"],
            "floor_ms": fl,
            "razor_over_floor": ratio(rd, fl),
            "hf_over_floor": ratio(hd, fl),
            "razor_speedup": ratio(hd, rd),
            "razor_prefill_tok_s": rp,
            "hf_prefill_tok_s": hp,
            "hf_prefill_mode": pre and pre["mode"],
            "prefill_ratio": ratio(rp, hp),
            "razor_fill": r.get("fill"),
        })
    return rows, wbytes, bw


def fmt(x, spec):
    return "-" if x is None else format(x, spec)


def race_table(shape, rows, wbytes, bw, bw_source, hf):
    out = [f"## razor (CUDA) vs transformers: {shape}, batch 1, bf16 weights",
           "",
           "| context | razor decode ms | HF decode ms (mode) | floor ms | razor / floor | HF / floor | "
           "razor speedup (HF ms / razor ms) | razor prefill tok/s | HF prefill tok/s | prefill razor / HF |",
           "|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for r in rows:
        hf_dec = fmt(r["hf_decode_ms"], ".3f") + (f" ({r['hf_decode_mode']})" if r["hf_decode_mode"] else "")
        out.append(f"| {r['context']} | {fmt(r['razor_decode_ms'], '.3f')} | {hf_dec} | {fmt(r['floor_ms'], '.3f')} | "
                   f"{fmt(r['razor_over_floor'], '.2f')} | {fmt(r['hf_over_floor'], '.2f')} | "
                   f"{fmt(r['razor_speedup'], '.2f')}{'x' if r['razor_speedup'] else ''} | {fmt(r['razor_prefill_tok_s'], '.1f')} | "
                   f"{fmt(r['hf_prefill_tok_s'], '.1f')} | {fmt(r['prefill_ratio'], '.2f')} |")
    out.append("")
    out.append(f"floor = (weights {wbytes / 2**30:.2f} GiB + bf16 KV at the context) / "
               + (f"{bw / 1e12:.3f} TB/s ({bw_source})" if bw else "no bandwidth measured"))
    for r in rows:
        if r["razor_fill"] not in (None, "prefill"):
            out.append(f"razor at {r['context']}: KV filled by '{r['razor_fill']}' (prefill not measured there)")
    for run in (hf or {}).get("runs", []):
        if run.get("error"):
            out.append(f"HF {run['mode']} at {run['context']} failed: {run['error'][:300]}")
    for note in (hf or {}).get("notes", []):
        out.append(f"HF {note}")
    if hf and hf.get("error"):
        out.append(f"HF not run: {hf['error']}")
    return "\n".join(out)


# ---------------------------------------------------------------- main


def int_list(s):
    try:
        v = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a comma-separated list of integers: {s!r}")
    if not v or min(v) < 1:
        raise argparse.ArgumentTypeError(f"need positive integers: {s!r}")
    return v


def mode_list(s):
    v = [x.strip() for x in s.split(",") if x.strip()]
    bad = [x for x in v if x not in ("eager", "compile")]
    if bad or not v:
        raise argparse.ArgumentTypeError(f"modes are eager and compile, got {s!r}")
    return v


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                epilog="See the docstring at the top of bench/gpu_race.py for what is measured.")
    p.add_argument("--shape", default="llama-3.1-8b", choices=sorted(SHAPES))
    p.add_argument("--contexts", type=int_list, default=[32768, 131072], help="comma-separated context lengths")
    p.add_argument("--razor", default=str(ROOT / ".gpu" / "razor"), help="razor binary (default: .gpu/razor)")
    p.add_argument("--skip-hf", action="store_true", help="razor only (no torch / transformers needed)")
    p.add_argument("--skip-razor", action="store_true", help="transformers only")
    p.add_argument("--decode-steps", type=int, default=32, help="timed decode steps per context")
    p.add_argument("--hf-modes", type=mode_list, default=["eager", "compile"], help="eager,compile")
    p.add_argument("--hf-device", default="cuda", help=argparse.SUPPRESS)  # cpu: a smoke test of the HF part
    p.add_argument("--hf-prefill-chunk", type=int, default=0,
                   help="prefill chunk for every mode (0: eager one-shot, compile in --hf-static-prefill-chunk)")
    p.add_argument("--hf-static-prefill-chunk", type=int, default=8192,
                   help="prefill chunk into the static cache (its mask is chunk x cache length)")
    p.add_argument("--bw-gib", type=float, default=4.0, help="GiB of the bandwidth copy")
    p.add_argument("--budget-s", type=float, default=500.0,
                   help="seconds from the start after which remaining transformers runs are skipped")
    p.add_argument("--razor-timeout-s", type=float, default=0, help="kill razor after this many seconds (0: never)")
    p.add_argument("--razor-output", help="parse this saved razor bench stdout instead of running razor")
    p.add_argument("--out", help="also write everything as JSON here (rewritten after each measurement)")
    a = p.parse_args(argv)
    if a.decode_steps < 1:
        p.error("--decode-steps must be >= 1")
    return a


def main(argv=None):
    args = parse_args(argv)
    result = {"shape": args.shape, "contexts": args.contexts, "decode_steps": args.decode_steps,
              "config": SHAPES[args.shape], "args": vars(args), "razor": None, "hf": None}

    def save():
        if args.out:
            tmp = args.out + ".tmp"
            with open(tmp, "w") as f:
                json.dump(result, f, indent=1, default=str)
            os.replace(tmp, args.out)

    if args.razor_output:
        text = Path(args.razor_output).read_text()
        result["razor"] = {"cmd": None, "rc": 0, "stdout": text, **parse_razor_output(text)}
        result["razor"]["figures"] = [razor_row_figures(r) for r in result["razor"]["rows"]]
    elif not args.skip_razor:
        if not Path(args.razor).is_file():
            warn(f"no razor binary at {args.razor}: razor skipped")
            result["razor"] = {"error": f"no binary at {args.razor}", "figures": []}
        else:
            result["razor"] = run_razor(args.razor, args.shape, args.contexts, args.decode_steps,
                                        args.razor_timeout_s)
    save()
    if not args.skip_hf:
        result["hf"] = run_hf(args, args.contexts, save)
    rows, wbytes, bw = race_rows(args.shape, args.contexts, result["razor"], result["hf"])
    bw_source = ("torch device-to-device copy" if (result["hf"] or {}).get("bandwidth_bytes_s")
                 else "razor's bandwidth line")
    result["table"] = rows
    result["floor"] = {"weight_bytes": wbytes, "bandwidth_bytes_s": bw, "bandwidth_source": bw_source}
    result["elapsed_s"] = round(elapsed_s(), 1)
    save()
    log("")
    log(race_table(args.shape, rows, wbytes, bw, bw_source, result["hf"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
