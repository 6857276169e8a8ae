#!/usr/bin/env python3
"""Generate the ALiBi (BLOOM) reference golden under tests/fixtures/hf/tiny_bloom/.

Usage:
    .venv/bin/python tests/golden_scripts/make_alibi_goldens.py [--out DIR]

A tiny random-weight transformers BloomForCausalLM (hidden 48, 6 heads of 8, 2 layers, vocab 256), every
parameter randomized with a fixed seed (layernorm gains ~ 1 +- 0.1, layernorm/linear biases and linear
weights ~ N(0, 0.1^2), word embeddings ~ N(0, 1)), saved with save_pretrained (fp32 safetensors), then
reloaded from disk (hidden 64 would be 470 KB of fp32 with BLOOM's 4h MLP, over the 400 KB fixture
budget; 6 heads also exercise the non-power-of-two ALiBi slopes); logits.rzgl holds the full logits (k_top = vocab) of 24 ids from default_rng(1234)
(the same ids as the other tiny goldens, see make_hf_goldens.py).

BLOOM facts the engine relies on (transformers models/bloom/modeling_bloom.py), printed and checked here:
  - fused query_key_value: output rows laid out [n_head, 3, head_dim] (q, k, v interleaved per head);
  - ALiBi: score = q.k / sqrt(head_dim) + slope_h * key_position (shift-invariant per query, equal to
    - slope_h * (query_position - key_position)); slopes from _get_alibi_slopes (also non-power-of-two);
  - GELU: tanh approximation with the constant 0.79788456 (bloom_gelu_forward);
  - word_embeddings_layernorm after the embedding lookup, LayerNorm (with bias) before each sub-layer,
    ln_f before the tied lm_head.

tiny_bloom_gguf/: the same weights written with gguf.GGUFWriter the way llama.cpp's convert_hf_to_gguf.py
does for BLOOM (attn_qkv rows regrouped to [3, n_head, head_dim], i.e. all q, then all k, then all v), matrices
F16 except ffn_down Q8_0 (the only one whose rows are a multiple of 32), vectors F32; logits.rzgl from
transformers loading that GGUF (it undoes the regrouping, BloomTensorProcessor).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

torch.set_num_threads(1)
torch.set_num_interop_threads(1)

sys.path.insert(0, str(Path(__file__).resolve().parent))
import rzgl  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
DEFAULT_OUT = REPO / "tests" / "fixtures" / "hf"
SEQ_LEN = 24
VOCAB = 256
SEED_IDS = 1234
SEED = 11


def log(*a):
    print(*a, flush=True)


@torch.no_grad()
def forward_logits(model, ids) -> np.ndarray:
    out = model(input_ids=torch.tensor([list(ids)], dtype=torch.long), use_cache=False)
    return out.logits[0].float().numpy()


@torch.no_grad()
def randomize(model, seed: int):
    g = torch.Generator().manual_seed(seed)
    for name, p in model.named_parameters():
        if p.ndim == 1 and ("layernorm" in name or "ln_f" in name) and name.endswith("weight"):
            p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))   # layernorm gains ~ 1 +- 0.1
        elif p.ndim == 1:
            p.copy_(0.1 * torch.randn(p.shape, generator=g))         # layernorm and linear biases
        elif "word_embeddings" in name:
            p.copy_(1.0 * torch.randn(p.shape, generator=g))
        else:
            p.copy_(0.1 * torch.randn(p.shape, generator=g))         # linear weights


def check_facts():
    from transformers.models.bloom import modeling_bloom as mb
    for n in (4, 6, 12):
        log(f"[bloom] alibi slopes n_head={n}: {mb._get_alibi_slopes(n, 'cpu').tolist()}")
    x = torch.linspace(-4, 4, 9)
    ref = x * 0.5 * (1.0 + torch.tanh(0.79788456 * x * (1 + 0.044715 * x * x)))
    assert torch.equal(mb.bloom_gelu_forward(x), ref)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    from transformers import AutoModelForCausalLM, BloomConfig
    check_facts()
    ids = np.random.default_rng(SEED_IDS).integers(0, VOCAB, SEQ_LEN).tolist()
    cfg = BloomConfig(vocab_size=VOCAB, hidden_size=48, n_layer=2, n_head=6, layer_norm_epsilon=1e-5,
                      tie_word_embeddings=True, bos_token_id=1, eos_token_id=2)
    torch.manual_seed(SEED)
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager").eval()
    randomize(model, SEED)
    assert model.lm_head.weight.data_ptr() == model.transformer.word_embeddings.weight.data_ptr()
    live = forward_logits(model, ids)
    d = args.out / "tiny_bloom"
    if d.exists():
        shutil.rmtree(d)
    model.save_pretrained(d)
    re = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32, attn_implementation="eager").eval()
    logits = forward_logits(re, ids)
    # KV-cache path of transformers agrees (prefill 7 then one at a time): ALiBi positions carry over.
    with torch.no_grad():
        out = re(input_ids=torch.tensor([ids[:7]]), use_cache=True)
        cached = [out.logits[0]]
        past = out.past_key_values
        for t in range(7, SEQ_LEN):
            mask = torch.ones(1, t + 1, dtype=torch.long)
            out = re(input_ids=torch.tensor([[ids[t]]]), past_key_values=past, attention_mask=mask, use_cache=True)
            past = out.past_key_values
            cached.append(out.logits[0])
        cached = torch.cat(cached, 0).numpy()
    g = rzgl.summarize(logits, ids, [], VOCAB)
    rzgl.write(d / "logits.rzgl", g)
    back = rzgl.read(d / "logits.rzgl")
    size = sum(p.stat().st_size for p in d.iterdir())
    log(f"[bloom] files={sorted(p.name for p in d.iterdir())} size={size} B "
        f"reload-vs-live max|diff|={np.abs(logits - live).max():.3g} "
        f"cached-vs-full max|diff|={np.abs(cached - logits).max():.3g} "
        f"rzgl-vs-reload max|diff|={np.abs(back.full_logits() - logits).max():.3g} "
        f"max|logit|={back.max_abs.max():.2f} min gap={back.gap.min():.3g}")
    assert size < 400_000, size
    make_gguf(d, args.out / "tiny_bloom_gguf", ids)


def make_gguf(hf_dir: Path, d: Path, ids):
    import gguf
    from gguf.quants import quantize
    from transformers import AutoModelForCausalLM
    from tiny_gguf import byte_tokens
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32, attn_implementation="eager").eval()
    cfg = model.config
    nh, dim, L = cfg.n_head, cfg.hidden_size, cfg.n_layer
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    path = d / "tiny_bloom.gguf"
    w = gguf.GGUFWriter(str(path), "bloom")
    w.add_name("razor-tiny-bloom-random")
    w.add_context_length(2048)
    w.add_embedding_length(dim)
    w.add_block_count(L)
    w.add_feed_forward_length(4 * dim)
    w.add_head_count(nh)
    w.add_head_count_kv(nh)
    w.add_layer_norm_eps(cfg.layer_norm_epsilon)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_F16)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(byte_tokens())
    w.add_token_types([gguf.TokenType.NORMAL] * VOCAB)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    sd = {k: v.detach().float().numpy().copy() for k, v in model.state_dict().items()}

    def put(name, a, qtype="F32"):
        a = np.ascontiguousarray(a, np.float32)
        if qtype == "Q8_0":
            q = quantize(a, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(name, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
        elif qtype == "F16":
            w.add_tensor(name, a.astype(np.float16))
        else:
            w.add_tensor(name, a)

    def regroup(a):  # convert_hf_to_gguf.py BloomModel: [n_head, 3, hd, ...] -> [3, n_head, hd, ...]
        x = a.reshape(nh, 3, dim // nh, *a.shape[1:])
        return np.concatenate([x[:, i].reshape(-1, *a.shape[1:]) for i in range(3)], axis=0)

    put("token_embd.weight", sd["transformer.word_embeddings.weight"], "F16")
    put("token_embd_norm.weight", sd["transformer.word_embeddings_layernorm.weight"])
    put("token_embd_norm.bias", sd["transformer.word_embeddings_layernorm.bias"])
    for i in range(L):
        p = f"transformer.h.{i}."
        for g, h in (("attn_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm")):
            put(f"blk.{i}.{g}.weight", sd[p + h + ".weight"])
            put(f"blk.{i}.{g}.bias", sd[p + h + ".bias"])
        put(f"blk.{i}.attn_qkv.weight", regroup(sd[p + "self_attention.query_key_value.weight"]), "F16")
        put(f"blk.{i}.attn_qkv.bias", regroup(sd[p + "self_attention.query_key_value.bias"]))
        put(f"blk.{i}.attn_output.weight", sd[p + "self_attention.dense.weight"], "F16")
        put(f"blk.{i}.attn_output.bias", sd[p + "self_attention.dense.bias"])
        put(f"blk.{i}.ffn_up.weight", sd[p + "mlp.dense_h_to_4h.weight"], "F16")
        put(f"blk.{i}.ffn_up.bias", sd[p + "mlp.dense_h_to_4h.bias"])
        put(f"blk.{i}.ffn_down.weight", sd[p + "mlp.dense_4h_to_h.weight"], "Q8_0")
        put(f"blk.{i}.ffn_down.bias", sd[p + "mlp.dense_4h_to_h.bias"])
    put("output_norm.weight", sd["transformer.ln_f.weight"])
    put("output_norm.bias", sd["transformer.ln_f.bias"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    gm = AutoModelForCausalLM.from_pretrained(d, gguf_file=path.name, dtype=torch.float32,
                                              attn_implementation="eager").eval()
    logits = forward_logits(gm, ids)
    rzgl.write(d / "logits.rzgl", rzgl.summarize(logits, ids, [], VOCAB))
    size = sum(p.stat().st_size for p in d.iterdir())
    log(f"[bloom-gguf] size={size} B  max|logits(gguf) - logits(fp32)|="
        f"{np.abs(logits - forward_logits(model, ids)).max():.3g}")
    assert size < 400_000, size


if __name__ == "__main__":
    main()
