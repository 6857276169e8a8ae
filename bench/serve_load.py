#!/usr/bin/env python3
"""Load tests for `razor serve`: capacity, fairness and soak, one server per KV policy (stdlib only).

The script starts `razor serve` itself (argv list, `--port 0`; the port comes from the stderr line
`razor serve: listening on http://HOST:PORT ...`; stderr is drained to a log file), runs one measurement per
policy of --kv (one server after the other, same settings), and prints a table per policy and, with two or more
policies, a comparison with the ratio of each later policy to the first (razor/full for `--kv full,razor`).

Usage:
  bench/serve_load.py [COMMON] capacity --clients C --prompt-tokens P --max-tokens M
  bench/serve_load.py [COMMON] fairness --streams S --stream-prompt-tokens P --max-tokens M --long-prompt-tokens L
  bench/serve_load.py [COMMON] soak --clients C --seconds T --prompt-tokens P --max-tokens M
  COMMON (before or after the subcommand): [--razor build/release/razor] [-m smollm2-135m] [-t 2] [--kv full,razor]
         [--kv-pool-mib N] [--max-running 64] [--max-queue 512] [--serve-arg=--window-min=512 ...] [--out FILE.json]
         [--llama-server PATH [--llama-parallel P] [--llama-kv-bytes-per-token B] [--llama-arg=ARG ...]]

Requests: POST /v1/completions, "stream": true, temperature 0, max_tokens M, stream_options.include_usage. Per
request the client records (seconds from the run's start, time.perf_counter): `send` (just before connecting),
`first` (the first chunk with non-empty text), every text chunk's time, completion/prompt tokens (the usage
chunk), `end`, and the error if any: an HTTP status other than 200, an error event in the stream, or a stream that
ended without `data: [DONE]` ("failed": an answer that is an error; "lost": sent, but no status line came back or
the stream was cut off / timed out without [DONE] or an error). TTFT = first - send (client side, so it includes
queueing and the prompt's prefill). ITL = the gaps between consecutive text chunks of one request (a chunk is
normally one token; the server may hold back text, e.g. for stop strings, and send several tokens in one chunk).
A thread polls GET /metrics every 0.25 s (razor:num_requests_running, num_requests_waiting, kv_cache_usage_perc,
kv_bytes_held, kv_bytes_full_equivalent).

Prompts: real text, the essays in $RAZOR_HOME/haystack or $RAZOR_HOME/eval/haystack (RAZOR_HOME defaults to
~/.cache/razor), concatenated in name order. Request i gets its own slice of the text (different offsets) after a
unique first line "Request i.". Lengths are measured by the server's own tokenizer: a request with an impossible
max_tokens answers 400 naming the prompt's token count without running anything; if that message cannot be
parsed, a max_tokens 1 request's usage.prompt_tokens is used instead (that one prefills). chars-per-token is
calibrated once, then each prompt is trimmed (at a word boundary) to within 2 % of the target. Prompts are built
on the first policy's server and reused for the others (same model, same tokenizer).

Policy `llama` (e.g. --kv full,razor,llama --llama-server BIN/llama-server): runs llama.cpp's llama-server instead
of razor serve, on the same GGUF (-m as a path, or the cache's copy of the catalogue name) with the same KV memory
as razor's --kv-pool-mib N: N MiB / B tokens, B = f16 K+V bytes per token = n_layers * n_kv_heads * (key_length +
value_length) * 2 from the GGUF metadata (or --llama-kv-bytes-per-token); --parallel P slots (--llama-parallel,
default: as many as hold one whole request each: the largest measured prompt + max_tokens), each slot
floor(tokens / P) rounded down to llama.cpp's 256-token padding, -c = P * slot; -ctk f16 -ctv f16, the same -t,
--metrics, --no-webui, --cache-ram 0 (no host-memory prompt cache beyond that KV), continuous batching as it
does by default; extra arguments with --llama-arg=ARG. Ready when GET /health answers 200. Its requests carry
"cache_prompt": false and no razor-only field. Its /metrics gives running (llamacpp:requests_processing, busy
slots) and waiting (llamacpp:requests_deferred); its KV held is the cache it allocated (fixed); rows it has no
metric for print n/a. Prompts built on llama-server are counted with its /tokenize (add_special). With `llama`
in the list the comparison prints every other policy's ratio to llama (and later policies to the first).

Percentiles are nearest-rank: the value at rank ceil(p/100 * n) of the n values sorted ascending (the median is
p50 by the same rule). Exit status: 0 when every request succeeded (and, in soak, the server returned every KV
block); 1 when any request failed or was lost, a server died, or soak found blocks still held; 2 on setup errors.
"""
import argparse
import datetime
import http.client
import json
import math
import os
import re
import shlex
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
METRIC_NAMES = ("num_requests_running", "num_requests_waiting", "kv_cache_usage_perc", "kv_bytes_held",
                "kv_bytes_full_equivalent")
LLAMA_METRICS = {"llamacpp:requests_processing": "num_requests_running",  # this llama-server's gauges, mapped
                 "llamacpp:requests_deferred": "num_requests_waiting"}
LISTEN_RE = re.compile(rb"razor serve: listening on http://([^\s:/]+):(\d+)")
T0 = time.perf_counter()  # every recorded time is seconds since this


def now():
    return time.perf_counter() - T0


def log(msg):
    print(msg, file=sys.stderr, flush=True)


class SetupError(Exception):
    pass


# ---------------------------------------------------------------- statistics

def pct(values, p):
    """Nearest-rank percentile: the ceil(p/100 * n)-th smallest of the n values (None when empty)."""
    s = sorted(values)
    if not s:
        return None
    k = max(1, math.ceil(p / 100.0 * len(s)))
    return s[min(k, len(s)) - 1]


def ms(x):
    return None if x is None else x * 1000.0


# ---------------------------------------------------------------- the server

class Server:
    """One `razor serve` process: started with --port 0, stderr drained to `log_path` by a thread."""

    kind = "razor"

    def __init__(self, args, policy, log_path):
        self.policy = policy
        self.log_path = Path(log_path)
        self.argv = [args.razor, "serve", "-m", args.model, "-t", str(args.threads), "--host", "127.0.0.1",
                     "--port", "0", "--kv", policy, "--max-running", str(args.max_running),
                     "--max-queue", str(args.max_queue)]
        if args.kv_pool_mib is not None:
            self.argv += ["--kv-pool-mib", str(args.kv_pool_mib)]
        self.argv += list(args.serve_arg or [])
        self.host = self.port = None
        self.banner = ""
        self._listening = threading.Event()
        self._buf = b""
        self.proc = None
        self._thread = None

    def start(self, timeout):
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        log(f"[{self.policy}] starting: {shlex.join(self.argv)}  (stderr -> {self.log_path})")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, cwd=ROOT)
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        said_profiling = False
        while not self._listening.wait(0.5):
            if self.proc.poll() is not None:
                raise SetupError(f"razor serve ({self.policy}) exited with {self.proc.returncode} before listening; "
                                 f"log tail:\n{self.log_tail()}")
            if not said_profiling and b"profiling" in self._buf:
                log(f"[{self.policy}] the server is profiling retrieval heads (first use of this model); waiting")
                said_profiling = True
            if time.monotonic() > deadline:
                self.stop()
                raise SetupError(f"razor serve ({self.policy}) did not listen within {timeout} s; "
                                 f"log tail:\n{self.log_tail()}")
        log(f"[{self.policy}] {self.banner}")

    def _drain(self):
        fd = self.proc.stderr.fileno()
        while True:
            try:
                data = os.read(fd, 65536)
            except OSError:
                break
            if not data:
                break
            self._log.write(data)
            self._log.flush()
            if not self._listening.is_set():
                self._buf += data
                m = LISTEN_RE.search(self._buf)
                if m:
                    self.host, self.port = m.group(1).decode(), int(m.group(2))
                    end = self._buf.find(b"\n", m.start())
                    self.banner = self._buf[m.start():end if end >= 0 else None].decode(errors="replace")
                    self._buf = b""
                    self._listening.set()
        self._log.close()

    def log_tail(self, n=4000):
        try:
            return self.log_path.read_bytes()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def stop(self):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._thread:
            self._thread.join(timeout=5)
        return self.proc.returncode


# ---------------------------------------------------------------- llama.cpp's llama-server (policy `llama`)

def gguf_metadata(path):
    """The scalar metadata of a GGUF file, {key: value} (arrays are skipped); stdlib only."""
    fmts = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
    out = {}
    with open(path, "rb") as f:
        def rd(fmt):
            n = struct.calcsize("<" + fmt)
            b = f.read(n)
            if len(b) != n:
                raise ValueError(f"{path}: truncated GGUF header")
            return struct.unpack("<" + fmt, b)[0]
        if f.read(4) != b"GGUF":
            raise ValueError(f"{path} is not a GGUF file")
        version = rd("I")
        lenfmt = "I" if version == 1 else "Q"  # version 1 had 32-bit counts and lengths
        rd(lenfmt)  # tensor count
        n_kv = rd(lenfmt)

        def rstr():
            return f.read(rd(lenfmt)).decode(errors="replace")

        def value(t):
            if t in fmts:
                return rd(fmts[t])
            if t == 8:
                return rstr()
            if t == 9:
                et, n = rd("I"), rd(lenfmt)
                if et in fmts:
                    f.seek(n * struct.calcsize("<" + fmts[et]), 1)
                else:
                    for _ in range(n):
                        value(et)
                return None
            raise ValueError(f"{path}: unknown GGUF value type {t}")

        for _ in range(n_kv):
            k = rstr()
            v = value(rd("I"))
            if v is not None:
                out[k] = v
    return out


def kv_shape(path):
    """(n_layers, n_kv_heads, key_length, value_length) from the GGUF metadata; f16 K+V bytes per token is
    n_layers * n_kv_heads * (key_length + value_length) * 2."""
    md = gguf_metadata(path)
    arch = md.get("general.architecture")
    g = lambda k: md.get(f"{arch}.{k}")
    n_layers, n_head, n_kv, n_embd = (g("block_count"), g("attention.head_count"), g("attention.head_count_kv"),
                                      g("embedding_length"))
    if not (arch and n_layers and n_head and n_embd):
        raise SetupError(f"{path}: the GGUF metadata lacks the {arch}.block_count / attention.head_count / "
                         "embedding_length this needs (give --llama-kv-bytes-per-token)")
    n_kv = n_kv or n_head
    k_len = g("attention.key_length") or n_embd // n_head
    v_len = g("attention.value_length") or n_embd // n_head
    return int(n_layers), int(n_kv), int(k_len), int(v_len)


def model_path(args):
    """The GGUF file of --model: a path as given, else the cache's copy (scripts/pull_model.sh NAME --print-path,
    which downloads nothing)."""
    if os.path.isfile(args.model):
        return os.path.abspath(args.model)
    try:
        r = subprocess.run([str(ROOT / "scripts" / "pull_model.sh"), args.model, "--print-path"],
                           capture_output=True, text=True, timeout=60)
    except OSError as e:
        raise SetupError(f"cannot locate the GGUF of model {args.model!r}: {e}")
    lines = r.stdout.strip().splitlines()
    if r.returncode != 0 or not lines or not os.path.isfile(lines[-1]):
        raise SetupError(f"cannot locate the GGUF of model {args.model!r} (scripts/pull_model.sh {args.model} "
                         f"--print-path exited {r.returncode}; pull it first, or give -m PATH.gguf)")
    return lines[-1]


LLAMA_PAD = 256  # llama.cpp rounds n_ctx and each slot's share of it (n_ctx_seq) up to a multiple of 256


def llama_plan(args, prompts):
    """How llama-server matches razor's KV memory: a dict with total/per-slot context tokens, slots, bytes.
    total = floor(--kv-pool-mib MiB / f16 bytes per token); P slots (--llama-parallel, default: as many as hold
    one whole request each, the largest prompt + its max_tokens); each slot gets floor(total / P) rounded down
    to llama.cpp's 256 padding, so that -c = P * slot never exceeds the pool (llama.cpp would pad it up)."""
    if args.kv_pool_mib is None:
        raise SetupError("--kv llama needs --kv-pool-mib (the KV memory to give llama-server as well)")
    gguf = model_path(args)
    if args.llama_kv_bytes_per_token:
        bpt, shape = args.llama_kv_bytes_per_token, None
    else:
        shape = kv_shape(gguf)
        nl, nkv, kl, vl = shape
        bpt = nl * nkv * (kl + vl) * 2  # f16 K and V
    pool = args.kv_pool_mib * 1048576
    total = pool // bpt
    if prompts:
        if args.mode == "fairness":
            S = args.streams
            need = max(max(n for _, n in prompts[:S]) + args.max_tokens, prompts[S][1] + args.long_max_tokens)
        else:
            need = max(n for _, n in prompts) + args.max_tokens + (8 if args.mode == "soak" else 0)
    else:  # prompts not built yet: the largest the builder makes (2 % over the target)
        if args.mode == "fairness":
            need = max(args.stream_prompt_tokens * 1.02 + args.max_tokens,
                       args.long_prompt_tokens * 1.02 + args.long_max_tokens)
        else:
            need = args.prompt_tokens * 1.02 + args.max_tokens + (8 if args.mode == "soak" else 0)
        need = int(math.ceil(need))
    note = ""
    if args.llama_parallel:
        P = args.llama_parallel
    else:
        P = max(1, total // need)
        if total // P < LLAMA_PAD:
            P = max(1, total // LLAMA_PAD)
            note = f" (capped so each slot keeps at least {LLAMA_PAD} tokens)"
    slot = (total // P) // LLAMA_PAD * LLAMA_PAD
    if slot <= 0:
        raise SetupError(f"--kv-pool-mib {args.kv_pool_mib} holds {total} tokens: not {P} llama-server slots of at "
                         f"least {LLAMA_PAD} tokens")
    if slot < need:
        log(f"[llama] warning: a slot of {slot} tokens does not hold the largest request ({need} tokens): it will "
            "be refused or cut short")
    return {"gguf": gguf, "kv_shape": shape, "kv_bytes_per_token": bpt, "pool_bytes": pool,
            "pool_tokens": total, "need_tokens_per_request": need, "parallel": P, "slot_tokens": slot,
            "ctx_tokens": P * slot, "kv_bytes": P * slot * bpt, "parallel_note": note}


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer(Server):
    """One `llama-server` process on the same GGUF with the KV memory of llama_plan(); ready when GET /health
    answers 200. Its /metrics has no KV gauges: KV held is its allocated cache (fixed)."""

    kind = "llama"

    def __init__(self, args, policy, log_path, plan):
        self.policy = policy
        self.log_path = Path(log_path)
        self.plan = plan
        self.port_choice = free_port()
        self.argv = [args.llama_server, "-m", plan["gguf"], "-c", str(plan["ctx_tokens"]),
                     "--parallel", str(plan["parallel"]), "-ctk", "f16", "-ctv", "f16", "-t", str(args.threads),
                     "--host", "127.0.0.1", "--port", str(self.port_choice), "--metrics", "--no-webui",
                     "--cache-ram", "0"]
        self.argv += list(args.llama_arg or [])
        self.host = self.port = None
        self.banner = ""
        self.proc = None
        self._thread = None
        self._listening = threading.Event()
        self._buf = b""

    def start(self, timeout):
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "wb")
        log(f"[{self.policy}] starting: {shlex.join(self.argv)}  (stderr+stdout -> {self.log_path})")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, cwd=ROOT)
        self.proc.stderr = self.proc.stdout  # _drain reads .stderr
        self._listening.set()  # _drain: no banner to look for
        self._thread = threading.Thread(target=self._drain, daemon=True)
        self._thread.start()
        self.host, self.port = "127.0.0.1", self.port_choice
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise SetupError(f"llama-server exited with {self.proc.returncode} before it was ready; "
                                 f"log tail:\n{self.log_tail()}")
            try:
                st, _, _ = http_json(self, "GET", "/health", timeout=5)
                if st == 200:
                    break
            except (OSError, http.client.HTTPException):
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise SetupError(f"llama-server did not answer /health within {timeout} s; log tail:\n"
                                 f"{self.log_tail()}")
            time.sleep(0.25)
        p = self.plan
        self.banner = (f"llama-server ready on http://{self.host}:{self.port}: {p['parallel']} slots x "
                       f"{p['slot_tokens']} tokens = -c {p['ctx_tokens']}, f16 KV {p['kv_bytes'] / 1048576:.2f} MiB "
                       f"({p['kv_bytes_per_token']} B/token; razor's pool {p['pool_bytes'] / 1048576:g} MiB = "
                       f"{p['pool_tokens']} tokens)")
        m = re.search(rb"llama_kv_cache: size = +([\d.]+) MiB \( *(\d+) cells", self.log_path.read_bytes())
        if m:
            self.banner += f"; its log: KV {m.group(1).decode()} MiB, {m.group(2).decode()} cells"
        log(f"[{self.policy}] {self.banner}")


# ---------------------------------------------------------------- HTTP

def http_json(server, method, path, body=None, timeout=60):
    """(status, parsed JSON or None, raw text) of one request."""
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read().decode(errors="replace")
        try:
            parsed = json.loads(raw)
        except ValueError:
            parsed = None
        return resp.status, parsed, raw
    finally:
        conn.close()


def get_metrics(server, timeout=5):
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        text = resp.read().decode(errors="replace")
        if resp.status != 200:
            return None
        out = {}
        if getattr(server, "kind", "razor") == "llama":  # llama-server: busy slots and deferred requests
            for line in text.splitlines():
                parts = line.split()
                if len(parts) >= 2 and parts[0] in LLAMA_METRICS:
                    try:
                        out[LLAMA_METRICS[parts[0]]] = float(parts[1])
                    except ValueError:
                        pass
            out["kv_bytes_held"] = float(server.plan["kv_bytes"])  # allocated at start, held all the time
            return out
        for line in text.splitlines():
            if line.startswith("razor:"):
                parts = line.split()
                if len(parts) >= 2:
                    name = parts[0][len("razor:"):]
                    if name in METRIC_NAMES:
                        try:
                            out[name] = float(parts[1])
                        except ValueError:
                            pass
        return out
    finally:
        conn.close()


def stream_completion(server, prompt, max_tokens, timeout, tag=None, on_first=None):
    """One streaming completion; returns its record (times in seconds since T0). on_first() runs at the first text
    chunk (fairness waits on it)."""
    rec = {"tag": tag, "send": now(), "status": None, "first": None, "chunks": [], "end": None,
           "completion_tokens": None, "prompt_tokens": None, "done": False, "error": None, "kind": None}
    body = {"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": True,
            "stream_options": {"include_usage": True}}
    if getattr(server, "kind", "razor") == "llama":
        body["cache_prompt"] = False  # no reuse of a slot's earlier prompt (llama-server's default is true)
    conn = http.client.HTTPConnection(server.host, server.port, timeout=timeout)
    try:
        conn.request("POST", "/v1/completions", body=json.dumps(body).encode(),
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        rec["status"] = resp.status
        if resp.status != 200:
            raw = resp.read().decode(errors="replace")
            try:
                rec["error"] = f"HTTP {resp.status}: {json.loads(raw)['error']['message']}"
            except (ValueError, KeyError, TypeError):
                rec["error"] = f"HTTP {resp.status}: {raw[:200]}"
            rec["kind"] = "failed"
            return rec
        while True:
            line = resp.readline()
            t = now()
            if not line:
                break
            line = line.strip()
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                rec["done"] = True
                break
            try:
                obj = json.loads(payload)
            except ValueError:
                continue
            if "error" in obj and obj.get("error"):
                err = obj["error"]
                rec["error"] = "stream error: " + (err.get("message", str(err)) if isinstance(err, dict) else str(err))
                rec["kind"] = "failed"
                break
            for ch in obj.get("choices") or []:
                text = ch.get("text")
                if text is None:  # a chat-style delta, in case
                    text = (ch.get("delta") or {}).get("content")
                if text:
                    rec["chunks"].append(t)
                    if rec["first"] is None:
                        rec["first"] = t
                        if on_first:
                            on_first()
            usage = obj.get("usage")
            if usage:
                rec["completion_tokens"] = usage.get("completion_tokens")
                rec["prompt_tokens"] = usage.get("prompt_tokens")
        if not rec["done"] and rec["error"] is None:
            rec["error"] = "stream ended without [DONE]"
            rec["kind"] = "lost"
    except (OSError, http.client.HTTPException) as e:
        rec["error"] = f"{type(e).__name__}: {e}"
        rec["kind"] = "lost"  # no status line, or the stream was cut off / timed out
    finally:
        rec["end"] = now()
        conn.close()
    return rec


def ok(rec):
    return rec["error"] is None and rec["done"]


def itls(rec):
    c = rec["chunks"]
    return [b - a for a, b in zip(c, c[1:])]


# ---------------------------------------------------------------- pollers

class MetricsPoller(threading.Thread):
    def __init__(self, server, period=0.25):
        super().__init__(daemon=True)
        self.server, self.period = server, period
        self.samples = []  # {"t": seconds since T0, metric: value}
        self.failures = 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            t = now()
            try:
                m = get_metrics(self.server)
            except (OSError, http.client.HTTPException):
                m = None
            if m is None:
                self.failures += 1
            else:
                m["t"] = t
                self.samples.append(m)
            self._halt.wait(max(0.0, self.period - (now() - t)))

    def stop(self):
        self._halt.set()
        self.join(timeout=10)


class RssPoller(threading.Thread):
    def __init__(self, pid, period=1.0):
        super().__init__(daemon=True)
        self.pid, self.period = pid, period
        self.samples = []  # (t, VmRSS KiB)
        self._halt = threading.Event()

    def read(self):
        try:
            with open(f"/proc/{self.pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except OSError:
            return None
        return None

    def run(self):
        while not self._halt.is_set():
            v = self.read()
            if v is not None:
                self.samples.append((now(), v))
            self._halt.wait(self.period)

    def stop(self):
        self._halt.set()
        self.join(timeout=10)


# ---------------------------------------------------------------- prompts

def haystack_text():
    home = Path(os.environ.get("RAZOR_HOME") or Path.home() / ".cache" / "razor")
    for d in (home / "haystack", home / "eval" / "haystack"):
        files = sorted(d.glob("*.txt")) if d.is_dir() else []
        if files:
            text = "\n\n".join(f.read_text(errors="replace").strip() for f in files)
            return re.sub(r"[ \t]+", " ", text), d
    raise SetupError(f"no essays in {home}/haystack or {home}/eval/haystack (scripts/fetch_eval_data.sh fetches them)")


class PromptBuilder:
    """Prompts of a target token length, each from its own slice of the essays, measured by the server."""

    COUNT_RE = (re.compile(r"the prompt of (\d+) tokens"), re.compile(r"the prompt is (\d+) tokens"))

    def __init__(self, server):
        self.server = server
        self.text, self.dir = haystack_text()
        self.cpt = None  # chars per token
        self.counts = 0
        self.free_count = True  # the 400 trick still works

    def count(self, prompt):
        """Tokens of `prompt` by the server's tokenizer."""
        self.counts += 1
        if self.server.kind == "llama":  # llama-server tokenizes without running anything (BOS etc. included)
            st, js, raw = http_json(self.server, "POST", "/tokenize", {"content": prompt, "add_special": True})
            if st != 200 or not js or not isinstance(js.get("tokens"), list):
                raise SetupError(f"token count (llama-server /tokenize) failed: HTTP {st}: {raw[:300]}")
            return len(js["tokens"])
        if self.free_count:
            st, js, raw = http_json(self.server, "POST", "/v1/completions",
                                    {"prompt": prompt, "max_tokens": 2 ** 62, "temperature": 0})
            if st == 400:
                for rx in self.COUNT_RE:
                    m = rx.search(raw)
                    if m:
                        return int(m.group(1))
            log(f"(token counting: the 400 answer did not name the count (HTTP {st}); using max_tokens 1 instead)")
            self.free_count = False
        st, js, raw = http_json(self.server, "POST", "/v1/completions",
                                {"prompt": prompt, "max_tokens": 1, "temperature": 0}, timeout=1800)
        if st != 200 or not js or "usage" not in js:
            raise SetupError(f"token count failed: HTTP {st}: {raw[:300]}")
        return int(js["usage"]["prompt_tokens"])

    def slice(self, start, nchars):
        t, n = self.text, len(self.text)
        start %= n
        # begin at a word start
        while 0 < start < n and not t[start - 1].isspace():
            start += 1
        s = (t + "\n\n" + t)[start:start + nchars] if start + nchars > n else t[start:start + nchars]
        while len(s) < nchars:  # a prompt longer than all the essays: wrap around again
            s += "\n\n" + t[:nchars - len(s)]
        if start + nchars < n and not t[start + nchars].isspace():  # end at a word end
            cut = s.rfind(" ")
            if cut > len(s) // 2:
                s = s[:cut]
        return s.strip()

    def calibrate(self, target):
        nchars = max(2000, int(target * 4.5))
        sample = self.slice(0, nchars)
        n = self.count(sample)
        self.cpt = len(sample) / max(1, n)
        log(f"(prompts: {len(self.text)} chars of essays from {self.dir}; {self.cpt:.2f} chars/token)")

    def build(self, i, target, offset, header=None):
        """(prompt, tokens) ~ target tokens: `header` (default "Request i.") + newline + an essay slice."""
        header = header if header is not None else f"Request {i}."
        if target <= 0:
            raise SetupError("prompt tokens must be positive")
        if self.cpt is None:
            self.calibrate(target)
        tol = max(1, int(target * 0.02))
        nchars = max(1, int(target * self.cpt))
        best = None
        for _ in range(6):
            prompt = header + "\n" + self.slice(offset, nchars)
            n = self.count(prompt)
            if best is None or abs(n - target) < abs(best[1] - target):
                best = (prompt, n)
            if abs(n - target) <= tol:
                break
            nchars = max(1, int(nchars * target / max(1, n)))
            if not self.free_count:  # each count is a prefill: trust the calibration after one correction
                break
        return best

    def many(self, n, target, salt=0):
        """n prompts of ~target tokens at spread-out offsets."""
        if self.cpt is None:
            self.calibrate(target)
        need = int(target * self.cpt) + 16
        step = max(need, len(self.text) // max(1, n)) if n * need <= len(self.text) else need
        out = []
        for i in range(n):
            out.append(self.build(salt + i, target, (salt * 7919 + i * step) % len(self.text)))
        return out


# ---------------------------------------------------------------- the modes

def latency_summary(recs):
    ttft = [r["first"] - r["send"] for r in recs if r["first"] is not None]
    gaps = [g for r in recs for g in itls(r)]
    return {"ttft_p50_ms": ms(pct(ttft, 50)), "ttft_p99_ms": ms(pct(ttft, 99)),
            "itl_p50_ms": ms(pct(gaps, 50)), "itl_p99_ms": ms(pct(gaps, 99)), "itl_samples": len(gaps)}


def errors_of(recs):
    return [{"tag": r["tag"], "kind": r["kind"], "error": r["error"]} for r in recs if not ok(r)]


def peak_kv(samples):
    out = {"peak_running": None, "peak_waiting": None, "peak_kv_cache_usage_perc": None, "peak_kv_bytes_held": None,
           "kv_bytes_full_equivalent_at_peak": None, "peak_kv_bytes_full_equivalent": None}
    if not samples:
        return out
    g = lambda s, k: s.get(k, 0.0)
    has = lambda k: any(k in s for s in samples)  # a metric this server does not export stays None (n/a)
    if has("num_requests_running"):
        out["peak_running"] = int(max(g(s, "num_requests_running") for s in samples))
    if has("num_requests_waiting"):
        out["peak_waiting"] = int(max(g(s, "num_requests_waiting") for s in samples))
    if has("kv_cache_usage_perc"):
        out["peak_kv_cache_usage_perc"] = max(g(s, "kv_cache_usage_perc") for s in samples)
    if has("kv_bytes_held"):
        top = max(samples, key=lambda s: g(s, "kv_bytes_held"))
        out["peak_kv_bytes_held"] = g(top, "kv_bytes_held")
        if has("kv_bytes_full_equivalent"):
            out["kv_bytes_full_equivalent_at_peak"] = g(top, "kv_bytes_full_equivalent")
    if has("kv_bytes_full_equivalent"):
        out["peak_kv_bytes_full_equivalent"] = max(g(s, "kv_bytes_full_equivalent") for s in samples)
    return out


def chunk_rate_until_first_finish(recs, good, t0):
    """(window s, chunks/s) from t0 to the first finish of a good request after it: the text chunks (~tokens) of
    every request received in (t0, t1], over t1 - t0. (None, None) without such a finish; rate None with no chunk."""
    ends = [r["end"] for r in good if t0 is not None and r["end"] > t0]
    if not ends:
        return None, None
    t1 = min(ends)
    n = sum(1 for r in recs for c in r["chunks"] if t0 < c <= t1)
    return t1 - t0, (n / (t1 - t0) if n else None)


def run_capacity(args, server, prompts):
    C = args.clients
    barrier = threading.Barrier(C)
    recs = [None] * C

    def client(i):
        barrier.wait()
        recs[i] = stream_completion(server, prompts[i][0], args.max_tokens, args.timeout, tag=i)

    poller = MetricsPoller(server, args.poll)
    poller.start()
    time.sleep(0.3)
    threads = [threading.Thread(target=client, args=(i,)) for i in range(C)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    time.sleep(0.5)
    poller.stop()
    samples = poller.samples

    good = [r for r in recs if ok(r)]
    first_send = min(r["send"] for r in recs)
    last_end = max(r["end"] for r in recs)
    tokens = sum(r["completion_tokens"] or 0 for r in good)
    pts = [r["prompt_tokens"] for r in good if r["prompt_tokens"] is not None]
    s = {"requests": C, "ok": len(good), "errors": C - len(good), "completion_tokens": tokens,
         "prompt_tokens_min": min(pts) if pts else None, "prompt_tokens_max": max(pts) if pts else None,
         "wall_s": last_end - first_send,
         "aggregate_tok_s": tokens / (last_end - first_send) if good and last_end > first_send else None}
    s.update(peak_kv(samples))
    # Requests that ever waited: all C were sent at once, so every answered request that was not running when the
    # running count peaked had to queue behind the others (a lower bound); `peak_waiting` is the most /metrics
    # ever showed waiting at one poll (it includes requests that arrived during a step and were admitted next).
    admitted = sum(1 for r in recs if r["status"] == 200)
    s["waited_for_capacity"] = max(0, admitted - (s["peak_running"] or 0))
    # The most requests decoding at once as the client sees it: between a request's first token and its end.
    ev = sorted([(r["first"], 1) for r in good if r["first"] is not None] + [(r["end"], -1) for r in good
                                                                              if r["first"] is not None])
    cur = best = 0
    t_best = None
    for t, d in ev:
        cur += d
        if cur > best:
            best, t_best = cur, t
    s["client_max_decoding"] = best
    # The same rate from the client's view: from when that many were first decoding at once (each had its first
    # token) to the first finish after it; unlike /metrics' running count this leaves out prompts being prefilled.
    s["decode_client_window_s"], s["decode_client_tok_s"] = chunk_rate_until_first_finish(recs, good, t_best)
    # Decode-phase rate: text chunks (~tokens) received from the first /metrics poll showing the peak running
    # count until the first request finished after it, over that time. (The server publishes /metrics after each
    # step, so a sequence shows as running only once its first step ended.)
    t_peak = next((x["t"] for x in samples if s["peak_running"]
                   and x.get("num_requests_running", 0) == s["peak_running"]), None)
    s["decode_window_s"], s["decode_tok_s"] = chunk_rate_until_first_finish(recs, good, t_peak)
    s.update(latency_summary(good))
    return s, recs, samples, {}


def run_fairness(args, server, prompts):
    S = args.streams
    stream_prompts, (long_prompt, long_n) = prompts[:S], prompts[S]
    recs = [None] * S
    first_events = [threading.Event() for _ in range(S)]

    def streamer(i):
        try:
            recs[i] = stream_completion(server, stream_prompts[i][0], args.max_tokens, args.timeout, tag=i,
                                        on_first=first_events[i].set)
        finally:
            first_events[i].set()  # also when it failed, so the wait below does not hang

    poller = MetricsPoller(server, args.poll)
    poller.start()
    threads = [threading.Thread(target=streamer, args=(i,)) for i in range(S)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + args.timeout
    for e in first_events:
        e.wait(max(0.0, deadline - time.monotonic()))
    all_decoding = all(e.is_set() for e in first_events)
    if not all_decoding:
        log("warning: not every stream got a first token in time")
    time.sleep(args.settle)
    long_rec = stream_completion(server, long_prompt, args.long_max_tokens, args.timeout, tag="long")
    for t in threads:
        t.join()
    time.sleep(0.3)
    poller.stop()

    w0, w1 = long_rec["send"], long_rec["first"] if long_rec["first"] is not None else long_rec["end"]
    win, base, whole = [], [], []
    running_at_w1 = 0
    for r in recs:
        c = r["chunks"]
        if c and c[-1] > w1:
            running_at_w1 += 1
        for a, b in zip(c, c[1:]):
            whole.append(b - a)
            # a gap belongs to the window when it overlaps [long send, long first token]
            (win if (a < w1 and b > w0) else base).append(b - a)
    s = {"streams": S, "ok": sum(ok(r) for r in recs) + ok(long_rec),
         "errors": len(errors_of(recs + [long_rec])), "all_streams_decoding_at_send": all_decoding,
         "streams_still_decoding_at_long_first_token": running_at_w1,
         "long_prompt_tokens": long_rec["prompt_tokens"] or long_n,
         "long_ttft_ms": ms(long_rec["first"] - long_rec["send"]) if long_rec["first"] is not None else None,
         "window_s": w1 - w0,
         "window_itl_p50_ms": ms(pct(win, 50)), "window_itl_p99_ms": ms(pct(win, 99)),
         "window_itl_max_ms": ms(max(win)) if win else None, "window_itl_samples": len(win),
         "run_itl_p50_ms": ms(pct(whole, 50)), "run_itl_p99_ms": ms(pct(whole, 99)),
         "baseline_itl_p50_ms": ms(pct(base, 50))}
    s["window_p99_over_p50"] = (pct(win, 99) / pct(win, 50)) if win and pct(win, 50) else None
    s["window_p99_over_baseline_p50"] = (pct(win, 99) / pct(base, 50)) if win and base and pct(base, 50) else None
    s["target_ratio_le_3"] = (s["window_p99_over_p50"] is not None and s["window_p99_over_p50"] <= 3.0)
    if running_at_w1 < S:
        log(f"warning: only {running_at_w1}/{S} streams were still decoding when the long request's first token came "
            "(raise --max-tokens)")
    s.update(peak_kv(poller.samples))
    return s, recs + [long_rec], poller.samples, {}


def run_soak(args, server, prompts):
    C, T = args.clients, args.seconds
    recs_per = [[] for _ in range(C)]
    stop_at = now() + T
    t_start = now()

    def client(i):
        k = 0
        while now() < stop_at and server.alive():  # a dead server ends the soak (and fails it)
            prompt = f"Request {i}-{k}." + prompts[i][0][prompts[i][0].find("\n"):]
            recs_per[i].append(stream_completion(server, prompt, args.max_tokens, args.timeout, tag=f"{i}-{k}"))
            k += 1

    rss = RssPoller(server.proc.pid)
    poller = MetricsPoller(server, args.poll)
    rss.start()
    poller.start()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(C)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t_clients_done = now()
    # every request has answered: the server must be back to no running sequence and no KV held
    final = None
    for _ in range(40):
        time.sleep(0.25)
        try:
            final = get_metrics(server)
        except (OSError, http.client.HTTPException):
            final = None
        if final and server.kind == "llama":  # its KV is allocated once: idle = no busy slot, none deferred
            final["kv_bytes_held"] = None
            if final.get("num_requests_running", 1) == 0 and final.get("num_requests_waiting", 1) == 0:
                break
        elif final and final.get("num_requests_running", 1) == 0 and final.get("kv_bytes_held", 1) == 0 \
                and final.get("num_requests_waiting", 1) == 0:
            break
    time.sleep(1.0)
    rss.stop()
    poller.stop()
    recs = [r for rs in recs_per for r in rs]
    failed = sum(1 for r in recs if r["kind"] == "failed")
    lost = sum(1 for r in recs if r["kind"] == "lost")
    tokens = sum(r["completion_tokens"] or 0 for r in recs if ok(r))
    warm_t = t_start + 0.2 * T
    rs = rss.samples
    warm = next((v for t, v in rs if t >= warm_t), rs[-1][1] if rs else None)
    rss_max = max((v for _, v in rs), default=None)
    rss_end = rs[-1][1] if rs else None
    s = {"clients": C, "seconds": T, "requests_sent": len(recs), "requests_done": sum(ok(r) for r in recs),
         "failed": failed, "lost": lost, "errors": failed + lost, "completion_tokens": tokens,
         "tok_s": tokens / (t_clients_done - t_start) if t_clients_done > t_start else None,
         "rss_warm_mib": warm / 1024 if warm is not None else None,
         "rss_max_mib": rss_max / 1024 if rss_max is not None else None,
         "rss_end_mib": rss_end / 1024 if rss_end is not None else None,
         "rss_growth_mib": (rss_end - warm) / 1024 if warm is not None and rss_end is not None else None,
         "rss_max_growth_mib": (rss_max - warm) / 1024 if warm is not None and rss_max is not None else None,
         "final_running": final.get("num_requests_running") if final else None,
         "final_waiting": final.get("num_requests_waiting") if final else None,
         "final_kv_bytes_held": final.get("kv_bytes_held") if final else None}
    s["blocks_all_returned"] = (final is not None and s["final_running"] == 0 and
                                (s["final_kv_bytes_held"] == 0 if server.kind != "llama" else s["final_waiting"] == 0))
    s.update(latency_summary([r for r in recs if ok(r)]))
    s.update(peak_kv(poller.samples))
    return s, recs, poller.samples, {"rss_samples_kib": rs, "final_metrics": final}


# ---------------------------------------------------------------- tables

LATENCY_ROWS = [  # latency_summary's keys
    ("TTFT p50 (ms)", "ttft_p50_ms", ".0f"),
    ("TTFT p99 (ms)", "ttft_p99_ms", ".0f"),
    ("ITL p50 (ms)", "itl_p50_ms", ".1f"),
    ("ITL p99 (ms)", "itl_p99_ms", ".1f"),
]
PEAK_KV_ROW = ("peak KV held (MiB)", lambda s: mib(s["peak_kv_bytes_held"]), ".2f")
ROWS = {
    "capacity": [
        ("requests ok / sent", lambda s: f"{s['ok']}/{s['requests']}", None),
        ("errors", "errors", "d"),
        ("prompt tokens (min..max)", lambda s: f"{s['prompt_tokens_min']}..{s['prompt_tokens_max']}", None),
        ("max running at once (/metrics)", "peak_running", "d"),
        ("peak waiting (/metrics)", "peak_waiting", "d"),
        ("waited for capacity (C - max running)", "waited_for_capacity", "d"),
        ("max decoding at once (client side)", "client_max_decoding", "d"),
        ("wall, first send..last finish (s)", "wall_s", ".2f"),
        ("aggregate generated tok/s", "aggregate_tok_s", ".1f"),
        ("decode window (s)", "decode_window_s", ".2f"),
        ("decode-phase tok/s", "decode_tok_s", ".1f"),
        ("client decode window (s)", "decode_client_window_s", ".2f"),
        ("client decode-phase tok/s", "decode_client_tok_s", ".1f"),
        *LATENCY_ROWS,
        ("peak kv_cache_usage", "peak_kv_cache_usage_perc", ".3f"),
        PEAK_KV_ROW,
        ("full-equivalent at that peak (MiB)", lambda s: mib(s["kv_bytes_full_equivalent_at_peak"]), ".2f"),
        ("held / full-equivalent at peak", lambda s: div(s["peak_kv_bytes_held"],
                                                          s["kv_bytes_full_equivalent_at_peak"]), ".3f"),
    ],
    "fairness": [
        ("requests ok (streams + long)", "ok", "d"),
        ("errors", "errors", "d"),
        ("streams decoding at long's first token", "streams_still_decoding_at_long_first_token", "d"),
        ("long prompt tokens", "long_prompt_tokens", "d"),
        ("long request TTFT (ms)", "long_ttft_ms", ".0f"),
        ("window ITL p50 (ms)", "window_itl_p50_ms", ".1f"),
        ("window ITL p99 (ms)", "window_itl_p99_ms", ".1f"),
        ("window ITL max (ms)", "window_itl_max_ms", ".1f"),
        ("window ITL samples", "window_itl_samples", "d"),
        ("whole-run ITL p50 (ms)", "run_itl_p50_ms", ".1f"),
        ("whole-run ITL p99 (ms)", "run_itl_p99_ms", ".1f"),
        ("baseline ITL p50, outside window (ms)", "baseline_itl_p50_ms", ".1f"),
        ("window p99 / window p50 (target <= 3)", "window_p99_over_p50", ".2f"),
        ("window p99 / baseline p50", "window_p99_over_baseline_p50", ".2f"),
        PEAK_KV_ROW,
    ],
    "soak": [
        ("requests sent", "requests_sent", "d"),
        ("requests done", "requests_done", "d"),
        ("failed", "failed", "d"),
        ("lost", "lost", "d"),
        ("generated tok/s", "tok_s", ".1f"),
        *LATENCY_ROWS,
        ("RSS after warm-up (MiB)", "rss_warm_mib", ".1f"),
        ("RSS max (MiB)", "rss_max_mib", ".1f"),
        ("RSS end - warm-up (MiB)", "rss_growth_mib", "+.1f"),
        ("RSS max - warm-up (MiB)", "rss_max_growth_mib", "+.1f"),
        PEAK_KV_ROW,
        ("final running (must be 0)", "final_running", "d"),
        ("final KV bytes held (must be 0)", "final_kv_bytes_held", "d"),
    ],
}


def mib(x):
    return None if x is None else x / 1048576.0


def div(a, b):
    return None if a is None or not b else a / b


def cell(s, key, fmt):
    v = key(s) if callable(key) else s.get(key)
    if v is None:
        return "n/a", None
    if isinstance(v, str):
        return v, None
    try:
        txt = format(int(round(v)) if fmt == "d" else v, fmt) if fmt else str(v)
    except (TypeError, ValueError):
        txt = str(v)
    return txt, (float(v) if isinstance(v, (int, float)) else None)


def print_table(mode, results):
    pols = list(results)
    head = ["metric"] + pols
    # ratios: each later policy to the first; with `llama` in the list (not first), every other policy to llama
    # instead of llama to the first (its inverse)
    ref = "llama" if "llama" in pols and pols[0] != "llama" else None
    pairs = [(p, pols[0]) for p in pols[1:] if p != ref]
    if ref:
        pairs += [(p, ref) for p in pols if p != ref]
    head += [f"{a}/{b}" for a, b in pairs]
    rows = []
    for label, key, fmt in ROWS[mode]:
        row, vals = [label], []
        for p in pols:
            txt, v = cell(results[p], key, fmt)
            row.append(txt)
            vals.append(v)
        ratio_ok = not (fmt or "").startswith("+") and "must be 0" not in label  # no ratio of differences
        val = dict(zip(pols, vals))
        for a, b in pairs:
            v, w = val[a], val[b]
            row.append(f"{v / w:.2f}" if ratio_ok and v is not None and w not in (None, 0) else "")
        rows.append(row)
    w = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
    line = lambda r: "  ".join(r[0].ljust(w[0]) if i == 0 else r[i].rjust(w[i]) for i in range(len(r)))
    print(line(head))
    print("  ".join("-" * x for x in w))
    for r in rows:
        print(line(r))


# ---------------------------------------------------------------- main

def machine():
    try:
        uname = subprocess.run(["uname", "-a"], capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        uname = " ".join(os.uname())
    try:
        commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                                timeout=10).stdout.strip() or None
    except OSError:
        commit = None
    return {"uname": uname, "nproc": len(os.sched_getaffinity(0)), "cpu_count": os.cpu_count(),
            "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"), "git_commit": commit,
            "python": sys.version.split()[0]}


COMMON_OPTIONS = [  # (flags, dest, argparse keywords, default); accepted before or after the subcommand
    (("--razor",), "razor", {"help": "razor binary (default: build/release/razor)"},
     str(ROOT / "build" / "release" / "razor")),
    (("-m", "--model"), "model", {"help": "model (default: smollm2-135m)"}, "smollm2-135m"),
    (("-t", "--threads"), "threads", {"type": int, "help": "server threads (default: 2)"}, 2),
    (("--kv",), "kv", {"help": "policies, one server each, in order, e.g. full,razor (default: full)"}, "full"),
    (("--kv-pool-mib",), "kv_pool_mib", {"type": int, "help": "serve --kv-pool-mib (default: serve's)"}, None),
    (("--max-running",), "max_running", {"type": int, "help": "serve --max-running (default: 64)"}, 64),
    (("--max-queue",), "max_queue", {"type": int, "help": "serve --max-queue (default: 512)"}, 512),
    (("--serve-arg",), "serve_arg", {"action": "append", "metavar": "ARG",
                                     "help": "extra serve argument, repeatable (the = form: --serve-arg=--window-min=512)"},
     []),
    (("--llama-server",), "llama_server",
     {"help": "llama.cpp's llama-server binary, for the policy `llama` in --kv (bench/build_llama_cpp_tools.sh)"},
     None),
    (("--llama-parallel",), "llama_parallel",
     {"type": int, "help": "llama-server --parallel (default: as many slots as the pool holds whole requests)"},
     None),
    (("--llama-kv-bytes-per-token",), "llama_kv_bytes_per_token",
     {"type": int, "help": "f16 K+V bytes per token (default: from the GGUF: layers * kv heads * (k + v dim) * 2)"},
     None),
    (("--llama-arg",), "llama_arg", {"action": "append", "metavar": "ARG",
                                     "help": "extra llama-server argument, repeatable (--llama-arg=--kv-unified)"},
     []),
    (("--out",), "out", {"help": "write the full results as JSON here"}, None),
    (("--log-dir",), "log_dir", {"help": "server stderr logs (default: beside --out, else a temporary directory)"},
     None),
    (("--timeout",), "timeout", {"type": float, "help": "per-request socket timeout, s (default: 600)"}, 600.0),
    (("--startup-timeout",), "startup_timeout",
     {"type": float, "help": "seconds to wait for the server to listen, profiling included (default: 3600)"}, 3600.0),
    (("--poll",), "poll", {"type": float, "help": "GET /metrics period, s (default: 0.25)"}, 0.25),
    (("--no-warmup",), "no_warmup", {"action": "store_true",
                                      "help": "skip the one short unmeasured request sent before measuring"}, False),
]


def add_common(parser, prefix):
    g = parser.add_argument_group("common options (before or after the subcommand)")
    for flags, dest, kw, _ in COMMON_OPTIONS:
        g.add_argument(*flags, dest=prefix + dest, default=None if kw.get("action") != "store_true" else False, **kw)


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="See the header of bench/serve_load.py for every definition.")
    add_common(ap, "top_")
    sub = ap.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("capacity", help="C requests at once: concurrency, throughput, latency")
    c.add_argument("--clients", type=int, default=16, help="requests, all sent at once (default: 16)")
    c.add_argument("--prompt-tokens", type=int, default=1000, help="tokens per prompt (default: 1000)")
    c.add_argument("--max-tokens", type=int, default=64, help="max_tokens per request (default: 64)")
    f = sub.add_parser("fairness", help="S decoding streams, then one long prompt: their ITL")
    f.add_argument("--streams", type=int, default=4, help="decoding streams (default: 4)")
    f.add_argument("--stream-prompt-tokens", type=int, default=64, help="their prompt tokens (default: 64)")
    f.add_argument("--max-tokens", type=int, default=256,
                   help="the streams' max_tokens: enough to outlast the long prompt's prefill (default: 256)")
    f.add_argument("--long-prompt-tokens", type=int, default=2000, help="the long request's prompt (default: 2000)")
    f.add_argument("--long-max-tokens", type=int, default=8, help="the long request's max_tokens (default: 8)")
    f.add_argument("--settle", type=float, default=1.0,
                   help="seconds between all streams decoding and the long request (baseline ITL)")
    s = sub.add_parser("soak", help="C clients back to back for T seconds: leaks, lost requests")
    s.add_argument("--clients", type=int, default=4, help="client threads (default: 4)")
    s.add_argument("--seconds", type=float, default=60, help="how long they send (default: 60)")
    s.add_argument("--prompt-tokens", type=int, default=256, help="tokens per prompt (default: 256)")
    s.add_argument("--max-tokens", type=int, default=32, help="max_tokens per request (default: 32)")
    for p in (c, f, s):
        add_common(p, "")
    args = ap.parse_args(argv)
    for _, dest, kw, default in COMMON_OPTIONS:
        top, here = getattr(args, "top_" + dest), getattr(args, dest)
        delattr(args, "top_" + dest)
        if dest in ("serve_arg", "llama_arg"):
            setattr(args, dest, (top or []) + (here or []))
        elif kw.get("action") == "store_true":
            setattr(args, dest, bool(top or here))
        else:
            setattr(args, dest, here if here is not None else top if top is not None else default)
    args.policies = [p.strip() for p in args.kv.split(",") if p.strip()]
    if not args.policies:
        ap.error("--kv names no policy")
    if len(set(args.policies)) != len(args.policies):
        ap.error("--kv names a policy twice")
    if args.llama_parallel is not None and args.llama_parallel < 1:
        ap.error("--llama-parallel must be at least 1")
    if not os.path.isabs(args.razor):
        args.razor = str((Path.cwd() / args.razor) if (Path.cwd() / args.razor).exists() else ROOT / args.razor)
    return args


def build_prompts(args, builder):
    if args.mode == "fairness":
        ps = builder.many(args.streams, args.stream_prompt_tokens)
        ps.append(builder.build("L", args.long_prompt_tokens, len(builder.text) // 2, header="Request long."))
        return ps
    return builder.many(args.clients, args.prompt_tokens)  # capacity and soak


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if any(p != "llama" for p in args.policies) and not os.path.exists(args.razor):
        log(f"error: no razor binary at {args.razor}")
        return 2
    if "llama" in args.policies:
        if not args.llama_server:
            log("error: --kv llama needs --llama-server PATH (bench/build_llama_cpp_tools.sh prints its folder)")
            return 2
        if not (os.path.isfile(args.llama_server) and os.access(args.llama_server, os.X_OK)):
            log(f"error: no llama-server binary at {args.llama_server}")
            return 2
        args.llama_server = os.path.abspath(args.llama_server)
        if args.kv_pool_mib is None:
            log("error: --kv llama needs --kv-pool-mib N (the KV memory both servers get)")
            return 2
    out = Path(args.out) if args.out else None
    log_dir = Path(args.log_dir) if args.log_dir else (out.parent if out else Path(tempfile.mkdtemp(prefix="serve_load.")))
    stem = out.stem if out else f"serve_load.{args.mode}"
    results, runs, prompts = {}, {}, None
    exit_code = 0
    runner = {"capacity": run_capacity, "fairness": run_fairness, "soak": run_soak}[args.mode]
    llama = None  # llama_plan() of the llama run
    for policy in args.policies:
        try:
            if policy == "llama":
                llama = llama_plan(args, prompts)
                log(f"[llama] KV matched to --kv-pool-mib {args.kv_pool_mib}: {llama['pool_tokens']} tokens of "
                    f"{llama['kv_bytes_per_token']} B (f16 K+V{', shape ' + str(llama['kv_shape']) if llama['kv_shape'] else ''}); "
                    f"{llama['parallel']} slots{llama['parallel_note']} x {llama['slot_tokens']} tokens (largest "
                    f"request {llama['need_tokens_per_request']} tokens)")
                server = LlamaServer(args, policy, log_dir / f"{stem}.{policy}.server.log", llama)
            else:
                server = Server(args, policy, log_dir / f"{stem}.{policy}.serve.log")
        except SetupError as e:
            log(f"error: {e}")
            return 2
        try:
            server.start(args.startup_timeout)
            if prompts is None:
                builder = PromptBuilder(server)
                prompts = build_prompts(args, builder)
                ns = [n for _, n in prompts]
                log(f"(prompts: {len(prompts)}, tokens {min(ns)}..{max(ns)}, {builder.counts} counting requests)")
            if not args.no_warmup:
                w = stream_completion(server, "Request warm-up.\nHello", 2, args.timeout, tag="warmup")
                if not ok(w):
                    log(f"[{policy}] warm-up request failed: {w['error']}")
            log(f"[{policy}] running {args.mode}")
            summary, recs, samples, extra = runner(args, server, prompts)
            summary["server_alive_after"] = server.alive()
            if not server.alive():
                log(f"[{policy}] the server died; log tail:\n{server.log_tail()}")
                exit_code = 1
        except SetupError as e:
            log(f"error: {e}")
            return 2
        finally:
            rc = server.stop()
        summary["server_exit_code"] = rc
        results[policy] = summary
        runs[policy] = {"serve_argv": server.argv, "banner": server.banner, "log": str(server.log_path),
                        **({"llama_plan": server.plan} if server.kind == "llama" else {}),
                        "summary": summary, "errors": errors_of(recs), "requests": recs,
                        "metrics_samples": samples, **extra}
        if summary.get("errors"):
            exit_code = 1
        if args.mode == "soak" and not summary.get("blocks_all_returned"):
            exit_code = 1
        for e in errors_of(recs)[:5]:
            log(f"[{policy}] request {e['tag']}: {e['kind']}: {e['error']}")

    print(f"\nrazor serve {args.mode}: model {args.model}, -t {args.threads}, "
          f"pool {f'{args.kv_pool_mib} MiB' if args.kv_pool_mib is not None else 'serve default'}, "
          f"serve args {' '.join(args.serve_arg) or '(none)'}")
    if llama:
        print(f"llama: {shlex.join([os.path.basename(args.llama_server)] + runs['llama']['serve_argv'][1:])}")
        print(f"  same KV memory: {args.kv_pool_mib} MiB / {llama['kv_bytes_per_token']} B per token (f16 K+V) = "
              f"{llama['pool_tokens']} tokens; {llama['parallel']} slots{llama['parallel_note']} x "
              f"{llama['slot_tokens']} tokens (each holds the largest request, {llama['need_tokens_per_request']} "
              f"tokens; 256-token padding) = {llama['ctx_tokens']} tokens = {llama['kv_bytes'] / 1048576:.2f} MiB, "
              "allocated at start; rows llama-server has no metric for: n/a")
        print("  llama /metrics: running = llamacpp:requests_processing (busy slots), waiting = "
              "llamacpp:requests_deferred")
    if args.mode == "capacity":
        print(f"{args.clients} requests at once, prompt ~{args.prompt_tokens} tokens, max_tokens {args.max_tokens}")
    elif args.mode == "fairness":
        print(f"{args.streams} streams (prompt ~{args.stream_prompt_tokens}, max_tokens {args.max_tokens}) + one "
              f"~{args.long_prompt_tokens}-token prompt (max_tokens {args.long_max_tokens}) once all stream")
    else:
        print(f"{args.clients} clients back to back for {args.seconds:g} s, prompt ~{args.prompt_tokens} tokens, "
              f"max_tokens {args.max_tokens}")
    print("percentiles: nearest rank; times client side; " + {
        "capacity": "decode-phase tok/s = text chunks (~tokens) received from the first /metrics poll showing "
                    "the max running count to the first request finish after it, over that time; client decode-phase: the "
                    "same from when the most requests were decoding at once (client side)",
        "fairness": "window = the long request's send .. its first token; a stream's ITL gap is in the window "
                    "when it overlaps it; baseline = the gaps outside it",
        "soak": "warm-up = the first 20 % of the run; final values polled after every client stopped"}[args.mode])
    print()
    print_table(args.mode, results)
    if out:
        doc = {"mode": args.mode, "command": shlex.join([sys.executable] + sys.argv), "cwd": os.getcwd(),
               "settings": {k: v for k, v in vars(args).items()}, "machine": machine(),
               "prompts": {"tokens": [n for _, n in prompts] if prompts else [],
                           "first_lines": [p.split("\n", 1)[0] for p, _ in prompts] if prompts else []},
               "results": results, "runs": runs, "exit_code": exit_code}
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(doc, indent=1))
        log(f"wrote {out}")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())
