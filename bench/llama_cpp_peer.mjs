#!/usr/bin/env node
// llama.cpp peer benchmark: prefill and decode tok/s of llama.cpp's CPU backend on a GGUF, for comparison with
// `razor bench` on the same file. llama.cpp comes from the npm package node-llama-cpp (prebuilt binaries),
// installed outside the repo by bench/install_llama_cpp_peer.sh.
//
// Usage:
//   bench/install_llama_cpp_peer.sh        # once
//   node bench/llama_cpp_peer.mjs --model FILE [--prompt-lens 512,2048] [--decode-after 512,4096] [--n-gen 64]
//        [--threads 1[,2,...]] [--reps 3] [--batch-size 512] [--flash-attn auto|on|off] [--seed 1] [--json OUT]
//        [--no-warmup] [--verbose]   (--verbose: echo llama.cpp's own log lines to stderr)
//   A list option takes "none" to skip that test (e.g. --decode-after none).
//   node bench/llama_cpp_peer.mjs --info   # only load llama.cpp and print its build / system info
//
// Where node-llama-cpp is looked for: $LLAMA_PEER_DIR, else ${RAZOR_CACHE:-${RAZOR_HOME:-~/.cache/razor}}/llama-cpp-peer.
// The model defaults to ${RAZOR_HOME:-~/.cache/razor}/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf.
//
// What is measured (CPU backend only, gpu: false; KV cache f16, node-llama-cpp's and llama.cpp's default):
//   prefill N   a fresh sequence (KV cleared) evaluates N random non-special token ids (uniform in
//               [100, n_vocab), fixed seed, control/special tokens skipped) in one controlledEvaluate call; logits
//               only for the last token, plus one greedy pick from them (as razor does: logits of the last prompt
//               token, then argmax). tok/s = N / wall time of that call.
//   decode C    a fresh sequence evaluates C such tokens (not timed), then n_gen single-token steps are timed: each
//               step is one llama_decode of the previous step's greedy token with its logits, then the greedy pick
//               (llama.cpp's greedy sampler = argmax). tok/s = n_gen / wall time of the n_gen steps.
// Batching: node-llama-cpp sets llama.cpp's n_batch = n_ubatch = --batch-size (default 512, which is llama.cpp's
// default n_ubatch and razor's prefill chunk), and splits longer prompts into batches of that size in JS.
// Timings are wall clock around node-llama-cpp calls, so they include its small JS / N-API overhead per call
// (one call per prefill, one per decoded token). llama.cpp's own timers (llama_perf_context) are read as well and
// shown next to them ("llama.cpp internal"), which excludes that overhead.
// Each context gets one short untimed warm-up evaluation (touches the mmap'd weights) before its reps.
// Flash attention: --flash-attn auto (default, as llama.cpp's default; on the CPU backend it resolves to enabled).
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import {createRequire} from "node:module";
import {pathToFileURL} from "node:url";

const cacheRoot = process.env.RAZOR_CACHE || process.env.RAZOR_HOME || path.join(os.homedir(), ".cache", "razor");
const peerDir = path.resolve(process.env.LLAMA_PEER_DIR || path.join(cacheRoot, "llama-cpp-peer"));
const defaultModel = path.join(process.env.RAZOR_HOME || path.join(os.homedir(), ".cache", "razor"),
                               "models", "smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf");

function die(msg, code = 2) {
  process.stderr.write(`llama_cpp_peer: error: ${msg}\n`);
  process.exit(code);
}

function parseIntList(name, s) {
  const v = String(s).split(",").map((x) => x.trim()).filter((x) => x !== "");
  if (v.length === 0) die(`${name}: empty list`);
  return v.map((x) => {
    if (!/^\d+$/.test(x) || Number(x) <= 0) die(`${name}: '${x}' is not a positive integer (in '${s}')`);
    return Number(x);
  });
}

function parseArgs(argv) {
  const o = {model: defaultModel, promptLens: [512], decodeAfter: [512], nGen: 64, threads: [1], reps: 3,
             batchSize: 512, flashAttn: "auto", seed: 1, json: null, info: false, warmup: true, verbose: false};
  const flags = new Set(["--info", "--no-warmup", "--verbose", "-h", "--help"]);
  const valued = new Set(["--model", "-m", "--prompt-lens", "--decode-after", "--n-gen", "--threads", "-t", "--reps",
                          "--batch-size", "-b", "--flash-attn", "--seed", "--json"]);
  for (let i = 0; i < argv.length; i++) {
    let k = argv[i], v = null;
    if (k.startsWith("--") && k.includes("=")) [k, v] = [k.slice(0, k.indexOf("=")), k.slice(k.indexOf("=") + 1)];
    else if (!flags.has(k)) {
      if (!valued.has(k)) die(`unknown option '${argv[i]}' (see --help)`);
      if (i + 1 >= argv.length) die(`${k} needs a value (see --help)`);
      v = argv[++i];
    }
    const one = () => parseIntList(k, v)[0];
    const list = () => (v === "none" ? [] : parseIntList(k, v));
    switch (k) {
      case "--model": case "-m": o.model = v; break;
      case "--prompt-lens": o.promptLens = list(); break;
      case "--decode-after": o.decodeAfter = list(); break;
      case "--n-gen": o.nGen = one(); break;
      case "--threads": case "-t": o.threads = parseIntList(k, v); break;
      case "--reps": o.reps = one(); break;
      case "--batch-size": case "-b": o.batchSize = one(); break;
      case "--flash-attn":
        if (!["auto", "on", "off"].includes(v)) die(`--flash-attn: '${v}' is not one of auto, on, off`);
        o.flashAttn = v;
        break;
      case "--seed": o.seed = parseIntList(k, v)[0]; break;
      case "--json": o.json = v; break;
      case "--no-warmup": o.warmup = false; break;
      case "--info": o.info = true; break;
      case "--verbose": o.verbose = true; break;
      case "-h": case "--help": {
        const src = fs.readFileSync(new URL(import.meta.url), "utf8").split("\n");
        const head = [];
        for (const l of src.slice(1)) {
          if (!l.startsWith("//")) break;
          head.push(l.replace(/^\/\/ ?/, ""));
        }
        process.stdout.write(head.join("\n") + "\n");
        process.exit(0);
      }
      default: die(`unknown option '${argv[i]}' (see --help)`);
    }
  }
  return o;
}

async function loadNodeLlamaCpp() {
  const req = createRequire(path.join(peerDir, "package.json"));
  let entry;
  try {
    entry = req.resolve("node-llama-cpp");
  } catch {
    die(`node-llama-cpp not found in ${peerDir} (run bench/install_llama_cpp_peer.sh, or set LLAMA_PEER_DIR)`, 1);
  }
  // entry is <pkg>/dist/index.js; package.json is not in the package's "exports".
  const pkgJson = path.join(path.dirname(path.dirname(entry)), "package.json");
  const version = JSON.parse(fs.readFileSync(pkgJson, "utf8")).version;
  const mod = await import(pathToFileURL(entry).href);
  return {mod, version};
}

// mulberry32: small seeded PRNG (the exact ids differ from razor's mt19937; both are uniform random non-special ids).
function rng32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6D2B79F5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

const now = () => Number(process.hrtime.bigint()) / 1e9;

function cpuModel() {
  try {
    const m = fs.readFileSync("/proc/cpuinfo", "utf8").match(/^model name\s*:\s*(.*)$/m);
    return m ? m[1].trim() : os.cpus()[0]?.model ?? "unknown";
  } catch {
    return os.cpus()[0]?.model ?? "unknown";
  }
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  // Never download or build llama.cpp: prebuilt binaries only.
  process.env.NODE_LLAMA_CPP_SKIP_DOWNLOAD = "true";
  const {mod, version: nlcVersion} = await loadNodeLlamaCpp();
  const {getLlama, LlamaLogLevel} = mod;

  // llama.cpp's log lines (info and up) are kept, not printed: they carry the resolved flash-attention setting and
  // the llama_perf_context timings.
  const logLines = [];
  const llama = await getLlama({
    gpu: false, build: "never", skipDownload: true, usePrebuiltBinaries: true, progressLogs: false,
    maxThreads: 0,  // no thread cap: a context's `threads` is then always the number actually used
    logLevel: LlamaLogLevel.info,
    logger: (level, message) => {
      logLines.push(message);
      if (o.verbose || level === LlamaLogLevel.error || level === LlamaLogLevel.fatal)
        process.stderr.write(`[llama.cpp] ${message.trimEnd()}\n`);
    },
  });
  if (llama.gpu !== false) die(`llama.cpp backend is '${llama.gpu}', expected CPU only`, 1);
  const rel = llama.llamaCppRelease;
  const info = {
    node_llama_cpp_version: nlcVersion,
    llama_cpp_version: rel.release,
    llama_cpp_repo: rel.repo,
    build_type: llama.buildType,
    system_info: llama.systemInfo,
    cpu_math_cores: llama.cpuMathCores,
    cpu: cpuModel(),
  };
  // The prebuilt ships one ggml CPU library per x86 level (haswell, zen4, ...) and loads the best one this CPU runs.
  let cpuVariant = null;
  try {
    cpuVariant = (fs.readFileSync("/proc/self/maps", "utf8").match(/libggml-cpu-([A-Za-z0-9_]+)\.so/) || [])[1] ?? null;
  } catch { /* not Linux */ }
  if (cpuVariant) info.ggml_cpu_variant = cpuVariant;
  console.log(`llama.cpp ${info.llama_cpp_version} via node-llama-cpp ${nlcVersion} (${info.build_type}, CPU backend)`);
  console.log(`system info: ${info.system_info}`);
  console.log(`cpu: ${info.cpu} | cpuMathCores: ${info.cpu_math_cores}${cpuVariant ? ` | ggml CPU variant: ${cpuVariant}` : ""}`);
  if (info.build_type !== "prebuilt") die(`node-llama-cpp did not use its prebuilt binary (buildType ${info.build_type})`, 1);
  if (o.info) {
    await llama.dispose();
    return;
  }

  if (!fs.existsSync(o.model)) die(`model file not found: ${o.model}`);
  const model = await llama.loadModel({modelPath: o.model, gpuLayers: 0});
  const nVocab = model.fileInsights?.vocabularySize ?? model.fileInfo?.metadata?.tokenizer?.ggml?.tokens?.length;
  if (!nVocab) die("could not read the vocabulary size from the model", 1);
  const trainCtx = model.trainContextSize;
  console.log(`model: ${o.model} | ${model.typeDescription} | ${(model.size / 1048576).toFixed(1)} MiB | vocab ${nVocab} | train ctx ${trainCtx}`);

  const rand = rng32(o.seed);
  const isSpecial = (t) => {
    try {
      const a = model.getTokenAttributes(t);
      return a.control || a.undefined || a.unknown || a.unused || model.isSpecialToken(t) || model.isEogToken(t);
    } catch {
      return true;
    }
  };
  const randomTokens = (n) => {
    const out = [];
    while (out.length < n) {
      const t = 100 + Math.floor(rand() * (nVocab - 100));
      if (!isSpecial(t)) out.push(t);
    }
    return out;
  };

  const greedy = {generateNext: {token: true, options: {temperature: 0}}};
  const withNext = (tokens) => [...tokens.slice(0, -1), [tokens[tokens.length - 1], greedy]];
  const nextOf = (res, n) => {
    const tok = res[n - 1]?.next?.token;
    if (tok == null) throw new Error("no next token from controlledEvaluate");
    return tok;
  };

  // llama_perf_context_print (+ reset): parse llama.cpp's own prompt-eval / eval timings.
  async function takePerf(ctx) {
    const from = logLines.length;
    await ctx.printTimings();
    const text = logLines.slice(from).join("\n");
    const grab = (re) => {
      const m = text.match(re);
      return m ? {ms: Number(m[1]), n: Number(m[2])} : null;
    };
    return {prompt: grab(/prompt eval time\s*=\s*([\d.]+) ms\s*\/\s*(\d+) tokens/),
            eval: grab(/(?<!prompt )eval time\s*=\s*([\d.]+) ms\s*\/\s*(\d+) runs/)};
  }

  const fa = o.flashAttn === "auto" ? "auto" : o.flashAttn === "on";
  async function makeContext(threads, size) {
    const from = logLines.length;
    const ctx = await model.createContext({
      contextSize: size, batchSize: o.batchSize, threads, sequences: 1, flashAttention: fa,
      performanceTracking: true, failedCreationRemedy: false, ignoreMemorySafetyChecks: true,
    });
    const text = logLines.slice(from).join("\n");
    const faLine = (text.match(/Flash Attention (?:was \w+, set to )?(enabled|disabled)/i) ||
                    text.match(/flash_attn\s*=\s*(\S+)/) || [])[1];
    const kv = text.match(/K \((\w+)\)[^\n]*V \((\w+)\)/);
    if (kv && (kv[1] !== "f16" || kv[2] !== "f16")) die(`KV cache is K ${kv[1]} / V ${kv[2]}, expected f16`, 1);
    const seq = ctx.getSequence();
    if (o.warmup) {
      await seq.controlledEvaluate(withNext(randomTokens(Math.min(32, size - 4))));
      const r = await seq.controlledEvaluate([[100 + 1, greedy]]);
      nextOf(r, 1);
      await seq.clearHistory();
    }
    await takePerf(ctx);  // reset llama.cpp's counters
    return {ctx, seq, faLine};
  }
  function checkThreads(ctx, threads) {
    if (ctx.currentThreads !== threads)
      die(`llama.cpp runs ${ctx.currentThreads} threads, asked for ${threads}`, 1);
  }

  const results = {prefill: [], decode: []};
  let faResolved = null;
  const fmt = (x) => x.toFixed(1);
  for (const threads of o.threads) {
    for (const n of o.promptLens) {
      if (n > trainCtx) die(`prompt ${n} exceeds the model's context ${trainCtx}`);
      const {ctx, seq, faLine} = await makeContext(threads, Math.min(trainCtx, n + 1));
      faResolved ??= faLine;
      const tokS = [], native = [];
      for (let r = 0; r < o.reps; r++) {
        const prompt = randomTokens(n);
        await seq.clearHistory();
        const items = withNext(prompt);
        const t0 = now();
        const res = await seq.controlledEvaluate(items);
        const t1 = now();
        nextOf(res, n);
        tokS.push(n / (t1 - t0));
        const p = await takePerf(ctx);
        if (p.prompt && p.prompt.n > 0) native.push(p.prompt.n / (p.prompt.ms / 1000));
        process.stderr.write(`\r[threads ${threads} prefill ${n} rep ${r + 1}/${o.reps}] ${fmt(tokS.at(-1))} tok/s   `);
      }
      checkThreads(ctx, threads);
      process.stderr.write("\r\x1b[K");
      results.prefill.push({n, threads, tok_s: tokS, median: median(tokS),
                            llama_internal_tok_s: native, llama_internal_median: native.length ? median(native) : null,
                            context_size: ctx.contextSize});
      await ctx.dispose();
    }
    for (const c of o.decodeAfter) {
      if (c + o.nGen > trainCtx) die(`decode after ${c} + ${o.nGen} tokens exceeds the model's context ${trainCtx}`);
      // Room past the last token: node-llama-cpp shifts the context (drops tokens) when a sequence fills
      // it, so a context of exactly c + n_gen would lose tokens at the end (positions stay < trainCtx).
      const {ctx, seq, faLine} = await makeContext(threads, c + o.nGen + 256);
      faResolved ??= faLine;
      const tokS = [], native = [];
      for (let r = 0; r < o.reps; r++) {
        const prompt = randomTokens(c);
        await seq.clearHistory();
        let next = nextOf(await seq.controlledEvaluate(withNext(prompt)), c);
        await takePerf(ctx);  // drop the prefill from llama.cpp's counters
        const t0 = now();
        for (let i = 0; i < o.nGen; i++) next = nextOf(await seq.controlledEvaluate([[next, greedy]]), 1);
        const t1 = now();
        tokS.push(o.nGen / (t1 - t0));
        const p = await takePerf(ctx);
        if (p.eval && p.eval.n > 0) native.push(p.eval.n / (p.eval.ms / 1000));
        if (seq.nextTokenIndex !== c + o.nGen) die(`sequence holds ${seq.nextTokenIndex} tokens, expected ${c + o.nGen}`, 1);
        process.stderr.write(`\r[threads ${threads} decode after ${c} rep ${r + 1}/${o.reps}] ${fmt(tokS.at(-1))} tok/s   `);
      }
      checkThreads(ctx, threads);
      process.stderr.write("\r\x1b[K");
      results.decode.push({ctx: c, threads, n_gen: o.nGen, tok_s: tokS, median: median(tokS),
                           llama_internal_tok_s: native, llama_internal_median: native.length ? median(native) : null,
                           context_size: ctx.contextSize});
      await ctx.dispose();
    }
  }

  console.log(`flash attention: ${o.flashAttn}${faResolved ? ` (llama.cpp: ${faResolved})` : ""} | KV f16 | ` +
              `n_batch = n_ubatch = ${o.batchSize} | reps ${o.reps} | seed ${o.seed}`);
  console.log("");
  console.log("| test | threads | tokens | tok/s (median) | tok/s (each rep) | llama.cpp internal tok/s (median) |");
  console.log("|---|--:|--:|--:|---|--:|");
  const row = (name, t, n, e) =>
    console.log(`| ${name} | ${t} | ${n} | ${fmt(e.median)} | ${e.tok_s.map(fmt).join(", ")} | ` +
                `${e.llama_internal_median != null ? fmt(e.llama_internal_median) : "-"} |`);
  for (const e of results.prefill) row("prefill", e.threads, e.n, e);
  for (const e of results.decode) row(`decode after ${e.ctx}`, e.threads, o.nGen, e);

  if (o.json) {
    const out = {
      tool: "bench/llama_cpp_peer.mjs",
      ...info,
      model: path.resolve(o.model),
      model_type: model.typeDescription,
      model_bytes: model.size,
      threads: o.threads,
      kv_type: "f16",
      flash_attn: o.flashAttn,
      flash_attn_resolved: faResolved ?? null,
      n_batch: o.batchSize,
      n_ubatch: o.batchSize,
      n_gen: o.nGen,
      reps: o.reps,
      seed: o.seed,
      warmup: o.warmup,
      prompt_tokens: "uniform random non-special ids in [100, n_vocab)",
      decode_sampling: "greedy (llama.cpp greedy sampler), logits of every decoded token",
      timing: "wall clock around node-llama-cpp calls; llama_internal_* from llama_perf_context",
      date: new Date().toISOString(),
      prefill: results.prefill,
      decode: results.decode,
    };
    fs.mkdirSync(path.dirname(path.resolve(o.json)), {recursive: true});
    fs.writeFileSync(o.json, JSON.stringify(out, null, 2) + "\n");
    console.log(`\nwrote ${o.json}`);
  }
  await model.dispose();
  await llama.dispose();
}

main().catch((e) => die(e?.stack || String(e), 1));
