#!/usr/bin/env python3
"""Generate the Hugging Face `transformers` reference goldens under tests/fixtures/hf/.

Usage:
    .venv/bin/python tests/golden_scripts/make_hf_goldens.py [GGUF_PATH] [--out DIR]
                     [--only smollm,greedy,tiny,gguf] [--verify-only]

GGUF_PATH defaults to $RAZOR_MODEL, else
${RAZOR_HOME:-$HOME/.cache/razor}/models/smollm2-135m/SmolLM2-135M-Instruct.Q4_1.gguf
(only needed for the `smollm` and `greedy` parts).

Outputs (see tests/golden_scripts/README.md for the full description):
  smollm2_text.json         source passage, its full tokenization (GGUF tokenizer, no BOS)
  smollm2_logits.rzgl       600 positions, k_top=64, k_fixed=64
  smollm2_greedy.json       5 prompts x 64 greedy tokens (EOS ignored), per-step top1-top2 gap
  tiny_<name>/              save_pretrained() checkpoint + logits.rzgl (24 positions, full logits)
  tiny_llama_gguf/          GGUFWriter-made llama GGUF + logits.rzgl from transformers loading it

RZGL binary format (little-endian, documented in rzgl.py and tests/golden_reader.h):
  "RZGL", u32 version=1, u32 n_positions, u32 vocab, u32 k_top, u32 k_fixed,
  i32 token_ids[n], i32 fixed_ids[k_fixed], then per position:
  f32 max_abs, f32 lse, f32 gap, k_top x (i32 id, f32 logit) [logit desc, ties by id asc],
  k_fixed x f32 logit.

Every fixture is read back from disk after writing and compared to the live model
(max abs diffs are printed). Torch runs single-threaded.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)
torch.set_num_interop_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rzgl  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "tests" / "fixtures" / "hf"

# ---------------------------------------------------------------- constants --
SMOL_N_POS = 600
SMOL_K_TOP = 64
SMOL_K_FIXED = 64
SMOL_FIXED_SEED = 20240601
GREEDY_NEW = 64
TINY_SEQ_LEN = 24
TINY_VOCAB = 256
TINY_SEED_IDS = 1234

GREEDY_PROMPTS = [
    {"kind": "chat", "messages": [{"role": "user", "content": "What is the capital of France? Answer in one sentence."}]},
    {"kind": "chat", "messages": [{"role": "user", "content": "Write a short Python function that returns the factorial of n."}]},
    {"kind": "chat", "messages": [
        {"role": "system", "content": "You are a concise assistant that answers with a numbered list."},
        {"role": "user", "content": "Give me three tips for sleeping better."}]},
    {"kind": "plain", "text": "The history of the printing press begins in"},
    {"kind": "plain", "text": "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"},
]


def default_model_path() -> str:
    if os.environ.get("RAZOR_MODEL"):
        return os.environ["RAZOR_MODEL"]
    home = os.environ.get("RAZOR_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "razor")
    return os.path.join(home, "models", "smollm2-135m", "SmolLM2-135M-Instruct.Q4_1.gguf")


def log(*a):
    print(*a, flush=True)


def source_text() -> tuple[str, str]:
    """Real English prose shipped with CPython: the 'Execution model' chapter of the
    Python Language Reference, as stored in the stdlib module pydoc_data.topics."""
    import pydoc_data.topics as topics
    return topics.topics["execmodel"], "pydoc_data.topics.topics['execmodel'] (CPython %s)" % sys.version.split()[0]


# ---------------------------------------------------------------- SmolLM2 --
def load_smollm(gguf_path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    d, f = os.path.dirname(os.path.abspath(gguf_path)), os.path.basename(gguf_path)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32,
                                                 attn_implementation="eager")
    model.eval()
    return tok, model


@torch.no_grad()
def forward_logits(model, ids) -> np.ndarray:
    out = model(input_ids=torch.tensor([list(ids)], dtype=torch.long), use_cache=False)
    return out.logits[0].float().numpy()


def make_smollm_logits(tok, model, out: Path):
    text, src = source_text()
    full_ids = tok(text)["input_ids"]  # GGUF tokenizer: add_bos_token is false -> no BOS
    assert len(full_ids) >= SMOL_N_POS, len(full_ids)
    ids = full_ids[:SMOL_N_POS]
    (out / "smollm2_text.json").write_text(json.dumps({
        "source": src,
        "note": "ids = tokenizer(text)['input_ids'] with the GGUF's own tokenizer "
                "(AutoTokenizer.from_pretrained(dir, gguf_file=...)); no BOS is added (add_bos_token=false). "
                "smollm2_logits.rzgl uses ids[:600].",
        "bos_added": False,
        "text": text,
        "ids": full_ids,
    }, ensure_ascii=False, indent=0) + "\n")
    rng = np.random.default_rng(SMOL_FIXED_SEED)
    fixed = np.sort(rng.choice(model.config.vocab_size, SMOL_K_FIXED, replace=False)).astype(np.int32)
    t = time.time()
    logits = forward_logits(model, ids)
    log(f"[smollm] forward {len(ids)} tokens: {time.time() - t:.1f}s")
    g = rzgl.summarize(logits, ids, fixed, SMOL_K_TOP)
    path = out / "smollm2_logits.rzgl"
    rzgl.write(path, g)
    back = rzgl.read(path)
    log(f"[smollm] {path.name} {path.stat().st_size} B  readback vs live: {rzgl.compare_to_logits(back, logits)}")
    # Check that the logits of a causal prefix do not depend on the suffix (sanity on the reference)
    pre = forward_logits(model, ids[:64])
    log(f"[smollm] prefix-64 recompute max|diff| = {np.abs(pre - logits[:64]).max():.3g}")
    gap = back.gap
    log(f"[smollm] max|logit|: min {back.max_abs.min():.2f} median {np.median(back.max_abs):.2f} max {back.max_abs.max():.2f}")
    log(f"[smollm] lse: min {back.lse.min():.2f} max {back.lse.max():.2f}")
    log(f"[smollm] top1-top2 gap: min {gap.min():.4g} p5 {np.percentile(gap, 5):.4g} p25 {np.percentile(gap, 25):.4g} "
        f"median {np.median(gap):.4g}; #gap<0.01: {(gap < 0.01).sum()}, <0.05: {(gap < 0.05).sum()}, <0.1: {(gap < 0.1).sum()}")


@torch.no_grad()
def manual_greedy(model, prompt_ids, n_new):
    """Full-recompute greedy reference (no KV cache, no logits processors)."""
    ids = list(prompt_ids)
    for _ in range(n_new):
        lg = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
        ids.append(int(torch.argmax(lg)))
    return ids[len(prompt_ids):]


@torch.no_grad()
def make_greedy(tok, model, out: Path):
    # Remove EOS from the model's own generation config (passing eos_token_id=None to
    # generate() is treated as "unset" and the model default, 2, comes back), so generation
    # never stops early and no min-length processor touches the logits: output_logits are
    # the raw logits and every output token is their argmax.
    model.generation_config.eos_token_id = None
    model.generation_config.bos_token_id = None
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    gen_kw = dict(do_sample=False, max_new_tokens=GREEDY_NEW, pad_token_id=pad,
                  return_dict_in_generate=True, output_logits=True)
    cases = []
    for i, p in enumerate(GREEDY_PROMPTS):
        if p["kind"] == "chat":
            prompt_text = tok.apply_chat_template(p["messages"], add_generation_prompt=True, tokenize=False)
            ids = tok.apply_chat_template(p["messages"], add_generation_prompt=True, tokenize=True)
            if isinstance(ids, dict) or hasattr(ids, "keys"):
                ids = ids["input_ids"]
            ids = list(ids)
            assert ids == tok(prompt_text, add_special_tokens=False)["input_ids"]
        else:
            prompt_text = p["text"]
            ids = tok(prompt_text)["input_ids"]
        t = time.time()
        res = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), **gen_kw)
        new = res.sequences[0, len(ids):].tolist()
        assert len(new) == GREEDY_NEW, len(new)
        lg = torch.stack(res.logits, 0)[:, 0].float()  # (64, V) raw logits
        top2 = torch.topk(lg, 2, dim=-1)
        assert top2.indices[:, 0].tolist() == new, "generate output != argmax of its raw logits"
        gaps = (top2.values[:, 0].double() - top2.values[:, 1].double()).tolist()
        ref = manual_greedy(model, ids, GREEDY_NEW)
        n_same = next((k for k in range(GREEDY_NEW) if ref[k] != new[k]), GREEDY_NEW)
        log(f"[greedy] prompt {i} ({p['kind']}, {len(ids)} tok) {time.time() - t:.1f}s; "
            f"generate vs no-cache recompute: first {n_same}/{GREEDY_NEW} tokens equal; min gap {min(gaps):.4g}")
        case = {"kind": p["kind"]}
        if p["kind"] == "chat":
            case["messages"] = p["messages"]
        case.update({
            "prompt_text": prompt_text,
            "prompt_ids": ids,
            "output_ids": new,
            "output_text": tok.decode(new),
            "gaps": [round(g, 5) for g in gaps],
            "top2_ids": top2.indices[:, 1].tolist(),
            "top1_logits": [round(float(v), 4) for v in top2.values[:, 0]],
            "nocache_recompute_agrees_for_first": n_same,
        })
        cases.append(case)
    doc = {
        "model": "SmolLM2-135M-Instruct.Q4_1.gguf (dequantized to fp32 by transformers, eager attention)",
        "how": "model.generate(do_sample=False, max_new_tokens=64) after setting model.generation_config.eos_token_id=None, "
               "so generation never stops on EOS (<|im_end|>/<|endoftext|> may appear in output_ids and decoding "
               "just continues) and no logits processor is active. gaps[k] = top1 - top2 of the raw logits at step k "
               "(step 0 = logits after the prompt); top2_ids[k] the runner-up id; top1_logits[k] the winning logit. "
               "Chat prompts: tokenizer.apply_chat_template(messages, add_generation_prompt=True) of the GGUF's template "
               "(adds the default SmolLM system prompt when none is given). Plain prompts: tokenizer(text), no BOS.",
        "n_new": GREEDY_NEW,
        "cases": cases,
    }
    path = out / "smollm2_greedy.json"
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    back = json.loads(path.read_text())
    assert [c["output_ids"] for c in back["cases"]] == [c["output_ids"] for c in cases]
    log(f"[greedy] {path.name} {path.stat().st_size} B (readback ok)")


# ---------------------------------------------------------------- tiny HF --
def tiny_ids() -> list[int]:
    return np.random.default_rng(TINY_SEED_IDS).integers(0, TINY_VOCAB, TINY_SEQ_LEN).tolist()


BASE = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
            intermediate_size=96, vocab_size=TINY_VOCAB, max_position_embeddings=128,
            rms_norm_eps=1e-6, bos_token_id=1, eos_token_id=2, pad_token_id=None)


def tiny_specs():
    from transformers import LlamaConfig, Qwen2Config, Qwen3Config
    llama = dict(BASE, rope_theta=10000.0, tie_word_embeddings=False)
    return [
        # name, config, save dtype, seed, save kwargs
        ("llama", LlamaConfig(**llama), torch.float32, 1, {}),
        ("llama3_rope", LlamaConfig(**dict(llama, max_position_embeddings=512, rope_scaling={
            "rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
            "original_max_position_embeddings": 64})), torch.float32, 2, {}),
        ("qwen2", Qwen2Config(**dict(BASE, rope_theta=1000000.0, tie_word_embeddings=False,
                                     use_sliding_window=False)), torch.float32, 3, {}),
        ("qwen3", Qwen3Config(**dict(BASE, head_dim=16, rope_theta=1000000.0, tie_word_embeddings=False,
                                     attention_bias=False, use_sliding_window=False)), torch.float32, 4, {}),
        ("llama_bf16_sharded", LlamaConfig(**llama), torch.bfloat16, 5, {"max_shard_size": "80KB"}),
        ("llama_tied_f16", LlamaConfig(**dict(llama, tie_word_embeddings=True)), torch.float16, 6, {}),
    ]


@torch.no_grad()
def randomize(model, seed: int):
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if p.ndim == 1 and "norm" in name:
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))   # norm gains ~ 1 +- 0.1
        elif p.ndim == 1:
            p.copy_(0.1 * torch.randn(p.shape, generator=g))         # biases
        elif "embed_tokens" in name:
            p.copy_(1.0 * torch.randn(p.shape, generator=g))
        else:
            p.copy_(0.1 * torch.randn(p.shape, generator=g))         # linear weights (incl. lm_head)


def make_tiny(out: Path):
    from transformers import AutoModelForCausalLM
    ids = tiny_ids()
    for name, cfg, dtype, seed, save_kw in tiny_specs():
        cfg._attn_implementation = "eager"
        torch.manual_seed(seed)
        model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager").eval()
        randomize(model, seed)
        if cfg.tie_word_embeddings:
            assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
        # the golden model = the saved weights (rounded to `dtype`) computed in fp32
        # (round the parameters only: .to(dtype) would also round the rotary inv_freq buffer)
        for p in model.parameters():
            p.data.copy_(p.data.to(dtype).to(torch.float32))
        live_logits = forward_logits(model, ids)
        d = out / f"tiny_{name}"
        if d.exists():
            shutil.rmtree(d)
        model.to(dtype).save_pretrained(d, **save_kw)
        # reload from disk (upcast to fp32) and compute the golden from the reloaded model
        re = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
        logits = forward_logits(re, ids)
        g = rzgl.summarize(logits, ids, [], TINY_VOCAB)
        rzgl.write(d / "logits.rzgl", g)
        back = rzgl.read(d / "logits.rzgl")
        files = sorted(p.name for p in d.iterdir())
        size = sum(p.stat().st_size for p in d.iterdir() if p.suffix in (".safetensors", ".json"))
        log(f"[tiny] {name:20s} {str(dtype):15s} files={files} ckpt={size} B "
            f"reload-vs-live max|diff|={np.abs(logits - live_logits).max():.3g} "
            f"rzgl-vs-reload max|diff|={np.abs(back.full_logits() - logits).max():.3g} "
            f"max|logit|={back.max_abs.max():.2f} min gap={back.gap.min():.3g}")
        assert size < 400_000, size
        if name == "llama3_rope":  # show that the scaling changes the outputs at these positions
            from transformers import AutoConfig
            c2 = AutoConfig.from_pretrained(d)
            c2.rope_parameters = {"rope_type": "default", "rope_theta": c2.rope_parameters["rope_theta"]}
            plain = AutoModelForCausalLM.from_pretrained(d, config=c2, dtype=torch.float32,
                                                         attn_implementation="eager").eval()
            log(f"[tiny] llama3_rope: max|logits(llama3 rope) - logits(default rope)| = "
                f"{np.abs(forward_logits(plain, ids) - logits).max():.3g}")
        if "sharded" in name:
            assert (d / "model.safetensors.index.json").exists()
            assert sum(p.name.endswith(".safetensors") for p in d.iterdir()) >= 2


# ---------------------------------------------------------------- tiny GGUF --
def make_tiny_gguf(out: Path):
    from tiny_gguf import make_tiny_llama_gguf
    make_tiny_llama_gguf(out / "tiny_llama_gguf", tiny_ids(), forward_logits, log, BASE, TINY_VOCAB, randomize)


# ---------------------------------------------------------------- main --
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default=default_model_path(), help="SmolLM2-135M-Instruct GGUF path")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--only", default="smollm,greedy,tiny,gguf", help="comma list of parts")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = set(a.only.split(","))
    import transformers
    log(f"torch {torch.__version__} transformers {transformers.__version__} numpy {np.__version__}")
    if parts & {"smollm", "greedy"}:
        if not os.path.exists(a.model):
            sys.exit(f"model not found: {a.model} (pass a path or set RAZOR_MODEL)")
        t = time.time()
        tok, model = load_smollm(a.model)
        log(f"[smollm] loaded {a.model} in {time.time() - t:.1f}s")
        if "smollm" in parts:
            make_smollm_logits(tok, model, out)
        if "greedy" in parts:
            make_greedy(tok, model, out)
        del model
    if "tiny" in parts:
        make_tiny(out)
    if "gguf" in parts:
        make_tiny_gguf(out)
    total = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    log(f"total size of {out}: {total} B")


if __name__ == "__main__":
    main()
