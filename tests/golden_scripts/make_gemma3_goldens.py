#!/usr/bin/env python3
"""Generate the Hugging Face `transformers` reference goldens for Gemma 3 (GGUF arch `gemma3`).

Usage:
    .venv/bin/python tests/golden_scripts/make_gemma3_goldens.py [GGUF_PATH] [--out DIR]
                     [--only checks,logits,window,greedy]

GGUF_PATH defaults to $RAZOR_GEMMA3_MODEL, else
${RAZOR_HOME:-$HOME/.cache/razor}/models/gemma3-270m/gemma-3-270m-q4_k_m.gguf
(sha256 a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818, checked).

Outputs (see tests/golden_scripts/README.md):
  gemma3_text.json     source passage, its tokenization (BOS 2 first), model facts checked at load
  gemma3_logits.rzgl   logits at every position of that passage (1159 positions > 2 x the
                       512-token sliding window), k_top=16, k_fixed=0
  gemma3_greedy.json   3 plain prompts (BOS + text) x 24 greedy tokens (EOS ignored)

Model: AutoModelForCausalLM.from_pretrained(dir, gguf_file=..., dtype=torch.float32,
attn_implementation="eager") -> Gemma3ForCausalLM; tokenizer: AutoTokenizer.from_pretrained(dir,
gguf_file=...) (GemmaTokenizer, add_bos_token=true). The `checks` part compares every loaded
parameter with the GGUF tensor dequantized by the `gguf` package (norms: HF w == GGUF w - 1;
everything else equal, Q/K not permuted). The `window` part reruns the forward with the sliding
window disabled and records how much the logits past position 511 change. Torch single-threaded.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
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
SHA256 = "a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"

N_PARAGRAPHS = 31  # execmodel paragraphs 0..30 -> 1159 tokens with BOS
K_TOP = 16
GREEDY_NEW = 24
GREEDY_PROMPTS = [
    "The history of the printing press begins in",
    "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n",
    "The three primary colors are",
]
CHUNK = 128  # rows per rzgl.summarize call (the full (N, 262144) float64 copy would be 2.4 GB)


def default_model_path() -> str:
    if os.environ.get("RAZOR_GEMMA3_MODEL"):
        return os.environ["RAZOR_GEMMA3_MODEL"]
    home = os.environ.get("RAZOR_HOME") or os.path.join(os.path.expanduser("~"), ".cache", "razor")
    return os.path.join(home, "models", "gemma3-270m", "gemma-3-270m-q4_k_m.gguf")


def log(*a):
    print(*a, flush=True)


def sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def source_text() -> tuple[str, str]:
    """Real English prose shipped with CPython: the first 31 paragraphs ('\\n\\n'-separated) of the
    'Execution model' chapter of the Python Language Reference (pydoc_data.topics), i.e. up to and
    including "The namespace for a module is automatically created the first time ..."."""
    import pydoc_data.topics as topics
    text = "\n\n".join(topics.topics["execmodel"].split("\n\n")[:N_PARAGRAPHS])
    return text, ("pydoc_data.topics.topics['execmodel'], first %d '\\n\\n'-separated paragraphs (CPython %s)"
                  % (N_PARAGRAPHS, sys.version.split()[0]))


def load(gguf_path: str):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    d, f = os.path.dirname(os.path.abspath(gguf_path)), os.path.basename(gguf_path)
    tok = AutoTokenizer.from_pretrained(d, gguf_file=f)
    model = AutoModelForCausalLM.from_pretrained(d, gguf_file=f, dtype=torch.float32, attn_implementation="eager")
    model.eval()
    return tok, model


def sentencepiece_ids(gguf_path: str, texts: list[str]) -> list[list[int]]:
    """SentencePiece's own ids (ModelProto rebuilt from the GGUF; see make_tokenizer_goldens.py)."""
    from make_tokenizer_goldens import gemma3_sentencepiece
    sp = gemma3_sentencepiece(Path(gguf_path))
    return [sp.encode(t) for t in texts]


@torch.no_grad()
def forward_logits(model, ids) -> np.ndarray:
    out = model(input_ids=torch.tensor([list(ids)], dtype=torch.long), use_cache=False)
    return out.logits[0].float().numpy()


# ---------------------------------------------------------------- load checks --
def config_facts(model) -> dict:
    c = model.config
    global_layers = [i for i, t in enumerate(c.layer_types) if t == "full_attention"]
    facts = {
        "class": type(model).__name__,
        "num_hidden_layers": c.num_hidden_layers, "hidden_size": c.hidden_size,
        "intermediate_size": c.intermediate_size, "num_attention_heads": c.num_attention_heads,
        "num_key_value_heads": c.num_key_value_heads, "head_dim": c.head_dim, "vocab_size": c.vocab_size,
        "sliding_window": c.sliding_window,
        "layer_types": "every 6th layer full_attention (global), the others sliding_attention",
        "global_layers": global_layers,
        "rope_theta_global": c.rope_parameters["full_attention"]["rope_theta"],
        "rope_theta_local": c.rope_parameters["sliding_attention"]["rope_theta"],
        "rope_type": "default (no scaling) on both",
        "query_pre_attn_scalar": c.query_pre_attn_scalar,
        "hidden_activation": c.hidden_activation,
        "rms_norm_eps": c.rms_norm_eps,
        "tie_word_embeddings": c.tie_word_embeddings,
        "final_logit_softcapping": c.final_logit_softcapping,
        "attn_logit_softcapping": c.attn_logit_softcapping,
        "embed_scale": float(model.model.embed_tokens.embed_scale),
        "bos_token_id": c.bos_token_id, "eos_token_id": c.eos_token_id, "pad_token_id": c.pad_token_id,
    }
    assert c.num_hidden_layers == 18 and c.num_attention_heads == 4 and c.num_key_value_heads == 1
    assert c.head_dim == 256 and c.sliding_window == 512 and c.query_pre_attn_scalar == 256
    assert global_layers == [5, 11, 17], global_layers
    assert facts["rope_theta_global"] == 1e6 and facts["rope_theta_local"] == 1e4
    assert c.rope_parameters["full_attention"]["rope_type"] == "default"
    assert c.rope_parameters["sliding_attention"]["rope_type"] == "default"
    assert c.hidden_activation == "gelu_pytorch_tanh" and c.tie_word_embeddings
    assert c.final_logit_softcapping is None and c.attn_logit_softcapping is None
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    return facts


@torch.no_grad()
def check_weights(model, gguf_path: str) -> dict:
    """Every loaded parameter against the GGUF tensor dequantized by the `gguf` package."""
    from gguf import GGUFReader, dequantize
    names = {"attn_norm": "input_layernorm", "ffn_norm": "pre_feedforward_layernorm",
             "post_attention_norm": "post_attention_layernorm", "post_ffw_norm": "post_feedforward_layernorm",
             "attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm",
             "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj", "attn_v": "self_attn.v_proj",
             "attn_output": "self_attn.o_proj", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
             "ffn_down": "mlp.down_proj"}
    params = dict(model.named_parameters())
    reader = GGUFReader(gguf_path)
    worst: dict[str, float] = {}
    types: dict[str, set] = {}
    for t in reader.tensors:
        shape = [int(x) for x in reversed(t.shape)]
        g = np.asarray(dequantize(t.data, t.tensor_type), np.float32).reshape(shape)
        if t.name == "token_embd.weight":
            hf, kind = "model.embed_tokens.weight", "token_embd"
        elif t.name == "output_norm.weight":
            hf, kind = "model.norm.weight", "output_norm"
        else:
            _, layer, kind, _ = t.name.split(".")
            hf = f"model.layers.{layer}.{names[kind]}.weight"
        h = params[hf].numpy()
        assert h.shape == g.shape, (t.name, h.shape, g.shape)
        types.setdefault(kind, set()).add(t.tensor_type.name)
        if "norm" in kind:
            assert np.abs(h - g).max() >= 0.5  # stored with +1 ...
            d = float(np.abs(h - (g - 1.0)).max())  # ... and loaded with -1
            # HF Gemma3RMSNorm multiplies by (1 + w) in fp32: that is the GGUF value exactly
            d = max(d, float(np.abs((np.float32(1.0) + h) - g).max()))
        else:
            d = float(np.abs(h - g).max())  # no permutation of attn_q / attn_k rows
        worst[kind] = max(worst.get(kind, 0.0), d)
    for kind in sorted(worst):
        log(f"[checks] {kind:20s} {','.join(sorted(types[kind])):10s} max|HF - GGUF{' + 1 - 1' if 'norm' in kind else ''}| "
            f"= {worst[kind]:.3g}")
    assert max(worst.values()) == 0.0, worst
    return {
        "norm_plus_one": "the GGUF stores every Gemma RMSNorm gain as 1 + w (llama.cpp's converter adds 1); "
                         "transformers subtracts 1 on load (Gemma2TensorProcessor) and computes x_normed * (1 + w) "
                         "in fp32, so the multiplier is the GGUF value itself, bit for bit. Applies to all 7 norms: "
                         "attn_norm, post_attention_norm, ffn_norm, post_ffw_norm, attn_q_norm, attn_k_norm, output_norm.",
        "qk_layout": "attn_q / attn_k are NOT permuted: the dequantized GGUF rows equal the HF q_proj / k_proj rows "
                     "exactly, and HF applies RoPE rotate_half style (pairs (i, i + 128) of each 256-dim head; "
                     "llama.cpp NEOX rope type).",
        "weights_vs_gguf_max_abs_diff": 0.0,
        "gguf_tensor_types": {k: sorted(v) for k, v in sorted(types.items())},
    }


def token_nll(logits: np.ndarray, ids) -> np.ndarray:
    """(N-1,) -log p(ids[p+1] | ids[..p]), float64, in chunks."""
    nlls = []
    for a in range(0, len(ids) - 1, CHUNK):
        lp = logits[a:min(a + CHUNK, len(ids) - 1)].astype(np.float64)
        m = lp.max(1, keepdims=True)
        lse = m[:, 0] + np.log(np.exp(lp - m).sum(1))
        nlls.append(lse - lp[np.arange(len(lp)), ids[a + 1:a + 1 + len(lp)]])
    return np.concatenate(nlls)


# ---------------------------------------------------------------- rzgl in chunks --
def summarize_chunked(logits: np.ndarray, ids, k_top: int) -> rzgl.Rzgl:
    parts = [rzgl.summarize(logits[a:a + CHUNK], ids[a:a + CHUNK], [], k_top) for a in range(0, len(ids), CHUNK)]
    cat = lambda f: np.concatenate([getattr(p, f) for p in parts])  # noqa: E731
    return rzgl.Rzgl(logits.shape[1], np.asarray(ids, np.int32), np.zeros(0, np.int32), cat("max_abs"), cat("lse"),
                     cat("gap"), cat("top_ids"), cat("top_logits"), cat("fixed_logits"))


def compare_chunked(g: rzgl.Rzgl, logits: np.ndarray) -> dict:
    out: dict = {}
    for a in range(0, len(g.token_ids), CHUNK):
        b = a + CHUNK
        sub = rzgl.Rzgl(g.vocab, g.token_ids[a:b], g.fixed_ids, g.max_abs[a:b], g.lse[a:b], g.gap[a:b],
                        g.top_ids[a:b], g.top_logits[a:b], g.fixed_logits[a:b])
        for k, v in rzgl.compare_to_logits(sub, logits[a:b]).items():
            out[k] = (out.get(k, True) and v) if isinstance(v, bool) else max(out.get(k, 0.0), v)
    return out


# ---------------------------------------------------------------- logits + window --
def make_logits(tok, model, gguf_path: str, out: Path, facts: dict, do_window: bool):
    text, src = source_text()
    ids = tok(text)["input_ids"]
    assert ids[0] == 2 and ids.count(2) == 1, ids[:4]
    assert ids[1:] == sentencepiece_ids(gguf_path, [text])[0], "HF ids != SentencePiece ids"
    assert 1100 <= len(ids) <= 1300, len(ids)
    t = time.time()
    logits = forward_logits(model, ids)
    log(f"[logits] forward {len(ids)} tokens: {time.time() - t:.1f}s")
    nll = float(np.mean(token_nll(logits, ids)))
    t = time.time()
    g = summarize_chunked(logits, ids, K_TOP)
    path = out / "gemma3_logits.rzgl"
    rzgl.write(path, g)
    back = rzgl.read(path)
    log(f"[logits] {path.name} {path.stat().st_size} B ({time.time() - t:.1f}s) readback vs live: "
        f"{compare_chunked(back, logits)}")
    pre = forward_logits(model, ids[:64])
    log(f"[logits] prefix-64 recompute max|diff| = {np.abs(pre - logits[:64]).max():.3g}")
    gap = back.gap
    stats = {
        "mean_nll_of_text": round(nll, 4),
        "max_abs_logit": [round(float(back.max_abs.min()), 2), round(float(np.median(back.max_abs)), 2),
                          round(float(back.max_abs.max()), 2)],
        "lse": [round(float(back.lse.min()), 2), round(float(back.lse.max()), 2)],
        "gap_min_p5_p25_median": [round(float(gap.min()), 5), round(float(np.percentile(gap, 5)), 4),
                                  round(float(np.percentile(gap, 25)), 4), round(float(np.median(gap)), 4)],
        "n_gap_below_0.01_0.05_0.1": [int((gap < 0.01).sum()), int((gap < 0.05).sum()), int((gap < 0.1).sum())],
    }
    log(f"[logits] mean NLL {nll:.4f}; max|logit| min/median/max {stats['max_abs_logit']}; lse {stats['lse']}; "
        f"gap min/p5/p25/median {stats['gap_min_p5_p25_median']}; #gap<0.01/0.05/0.1 {stats['n_gap_below_0.01_0.05_0.1']}")

    window = None
    if do_window:
        window = window_check(model, ids, logits, back)
    doc = {
        "source": src,
        "note": "ids = tokenizer(text)['input_ids'] with the GGUF's own tokenizer "
                "(AutoTokenizer.from_pretrained(dir, gguf_file=...), GemmaTokenizer, add_bos_token=true): "
                "BOS (2) first, then the text's ids (equal to SentencePiece's). gemma3_logits.rzgl uses all of them: "
                "position p = ids[p], logits predicting ids[p+1]; a local layer at position p attends to keys "
                "max(0, p - 511) .. p, so from position 512 on the window cuts keys off.",
        "bos_added": True,
        "model": os.path.basename(gguf_path),
        "sha256": SHA256,
        "config": facts,
        "logits_stats": stats,
        "window_check": window,
        "text": text,
        "ids": ids,
    }
    p = out / "gemma3_text.json"
    p.write_text(json.dumps(doc, ensure_ascii=False, indent=0) + "\n")
    assert json.loads(p.read_text())["ids"] == ids
    log(f"[logits] {p.name} {p.stat().st_size} B ({len(ids)} ids)")


@torch.no_grad()
def window_check(model, ids, logits, back: rzgl.Rzgl) -> dict:
    """Forward again with the sliding window disabled: positions < 512 must not move, later ones must."""
    c = model.config
    sw = c.sliding_window
    huge = 1 << 30
    c.sliding_window = huge
    for layer in model.model.layers:
        if layer.self_attn.sliding_window is not None:
            layer.self_attn.sliding_window = huge
    try:
        t = time.time()
        nowin = forward_logits(model, ids)
        log(f"[window] forward without sliding window: {time.time() - t:.1f}s")
    finally:
        c.sliding_window = sw
        for layer in model.model.layers:
            if layer.self_attn.is_sliding:
                layer.self_attn.sliding_window = sw
    assert c.sliding_window == sw and all(
        (layer.self_attn.sliding_window == sw) == layer.self_attn.is_sliding for layer in model.model.layers)
    # window restored (a 64-token prefix forward reproduces the long forward's rows bit for bit here)
    assert np.array_equal(forward_logits(model, ids[:64]), logits[:64])
    before = float(np.abs(nowin[:sw] - logits[:sw]).max())
    after = np.array([np.abs(nowin[p] - logits[p]).max() for p in range(sw, len(ids))])
    top1 = back.top_ids[:, 0].astype(np.int64)
    top1_nowin = np.take_along_axis(nowin, top1[:, None], 1)[:, 0]
    dtop1 = np.abs(top1_nowin - back.top_logits[:, 0])  # the stored top-1 id's logit, with vs without window
    dmax = np.abs(nowin.max(1) - logits.max(1))  # top-1 value vs top-1 value
    argmax_changed = int((nowin[sw:].argmax(1) != top1[sw:]).sum())
    res = {
        "how": "model.config.sliding_window and every local layer's self_attn.sliding_window set to 2**30, same ids, "
               "same single forward; differences are |logits(no window) - logits(window 512)|",
        "max_abs_diff_positions_0_511": float(before),
        "max_abs_diff_positions_512_on": float(after.max()),
        "median_over_positions_512_on_of_max_abs_diff": round(float(np.median(after)), 4),
        "max_abs_diff_top1_logit_512_on": round(float(dtop1[sw:].max()), 4),
        "max_abs_diff_top1_value_512_on": round(float(dmax[sw:].max()), 4),
        "positions_512_on_where_argmax_changes": argmax_changed,
        "n_positions_512_on": int(len(ids) - sw),
        "mean_nll_positions_512_on_with_window": round(float(token_nll(logits, ids)[sw:].mean()), 4),
        "mean_nll_positions_512_on_without_window": round(float(token_nll(nowin, ids)[sw:].mean()), 4),
    }
    log(f"[window] {res}")
    assert before == 0.0 and after.min() > 0.0
    return res


# ---------------------------------------------------------------- greedy --
@torch.no_grad()
def manual_greedy(model, prompt_ids, n_new):
    ids = list(prompt_ids)
    for _ in range(n_new):
        lg = model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1]
        ids.append(int(torch.argmax(lg)))
    return ids[len(prompt_ids):]


@torch.no_grad()
def make_greedy(tok, model, gguf_path: str, out: Path):
    model.generation_config.eos_token_id = None
    model.generation_config.bos_token_id = None
    gen_kw = dict(do_sample=False, max_new_tokens=GREEDY_NEW, pad_token_id=0, top_k=None, top_p=None,
                  temperature=None, return_dict_in_generate=True, output_logits=True)
    sp = sentencepiece_ids(gguf_path, GREEDY_PROMPTS)
    cases = []
    for i, text in enumerate(GREEDY_PROMPTS):
        ids = tok(text)["input_ids"]
        assert ids[0] == 2 and ids[1:] == sp[i], (ids, sp[i])
        t = time.time()
        res = model.generate(torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long), **gen_kw)
        new = res.sequences[0, len(ids):].tolist()
        assert len(new) == GREEDY_NEW, len(new)
        lg = torch.stack(res.logits, 0)[:, 0].float()
        top2 = torch.topk(lg, 2, dim=-1)
        assert top2.indices[:, 0].tolist() == new, "generate output != argmax of its raw logits"
        gaps = (top2.values[:, 0].double() - top2.values[:, 1].double()).tolist()
        ref = manual_greedy(model, ids, GREEDY_NEW)
        n_same = next((k for k in range(GREEDY_NEW) if ref[k] != new[k]), GREEDY_NEW)
        log(f"[greedy] prompt {i} ({len(ids)} tok) {time.time() - t:.1f}s; generate vs no-cache recompute: "
            f"first {n_same}/{GREEDY_NEW} equal; min gap {min(gaps):.4g}; {tok.decode(new)!r}")
        cases.append({
            "kind": "plain",
            "prompt_text": text,
            "prompt_ids": ids,
            "output_ids": new,
            "output_text": tok.decode(new),
            "gaps": [round(g, 5) for g in gaps],
            "top2_ids": top2.indices[:, 1].tolist(),
            "top1_logits": [round(float(v), 4) for v in top2.values[:, 0]],
            "nocache_recompute_agrees_for_first": n_same,
        })
    doc = {
        "model": f"{os.path.basename(gguf_path)} (sha256 {SHA256}; dequantized to fp32 by transformers, eager attention)",
        "how": "prompt_ids = tokenizer(prompt_text)['input_ids'] (BOS 2 first). model.generate(do_sample=False, "
               "max_new_tokens=24) after setting model.generation_config.eos_token_id=None (no stop, no logits "
               "processor: each output token is the argmax of the raw logits). gaps[k] = top1 - top2 of the raw "
               "logits at step k (step 0 = logits after the prompt); top2_ids[k] the runner-up; top1_logits[k] "
               "the winning logit. Each case re-checked with a no-KV-cache full-recompute greedy loop.",
        "n_new": GREEDY_NEW,
        "cases": cases,
    }
    path = out / "gemma3_greedy.json"
    path.write_text(json.dumps(doc, ensure_ascii=False, indent=1) + "\n")
    assert [c["output_ids"] for c in json.loads(path.read_text())["cases"]] == [c["output_ids"] for c in cases]
    log(f"[greedy] {path.name} {path.stat().st_size} B (readback ok)")


# ---------------------------------------------------------------- main --
def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", nargs="?", default=default_model_path(), help="gemma-3-270m-q4_k_m.gguf path")
    ap.add_argument("--out", default=str(DEFAULT_OUT))
    ap.add_argument("--only", default="checks,logits,window,greedy", help="comma list of parts")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    parts = set(a.only.split(","))
    import transformers
    log(f"torch {torch.__version__} transformers {transformers.__version__} numpy {np.__version__}")
    if not os.path.exists(a.model):
        sys.exit(f"model not found: {a.model} (pass a path or set RAZOR_GEMMA3_MODEL)")
    t = time.time()
    digest = sha256(a.model)
    if digest != SHA256:
        sys.exit(f"{a.model}: sha256 {digest} != {SHA256}")
    tok, model = load(a.model)
    log(f"loaded {a.model} in {time.time() - t:.1f}s (sha256 ok)")
    facts = config_facts(model)
    if "checks" in parts:
        t = time.time()
        facts.update(check_weights(model, a.model))
        log(f"[checks] {time.time() - t:.1f}s")
    if "logits" in parts:
        make_logits(tok, model, a.model, out, facts, "window" in parts)
    if "greedy" in parts:
        make_greedy(tok, model, a.model, out)
    total = sum((out / n).stat().st_size for n in ("gemma3_text.json", "gemma3_logits.rzgl", "gemma3_greedy.json")
                if (out / n).exists())
    log(f"total size of the gemma3 fixtures: {total} B")


if __name__ == "__main__":
    main()
