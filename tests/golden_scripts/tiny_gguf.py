"""Tiny random llama GGUF written with gguf.GGUFWriter, plus its transformers logits golden.

Part of make_hf_goldens.py (--only gguf). Steps:
  1. random fp32 LlamaForCausalLM (same shapes as tiny_llama, seed 7);
  2. every weight is written to GGUF the way llama.cpp's convert_hf_to_gguf.py does for
     llama: HF names -> GGUF names, attn_q/attn_k rows permuted (LlamaModel.permute),
     types mixed F32 (norms) / F16 / Q8_0 (see TYPES);
  3. transformers loads the GGUF (dequantizes, un-permutes Q/K) and its fp32 eager logits
     on the 24 tiny ids are stored in logits.rzgl (full logits);
  4. cross-check: the original HF model with each weight replaced by dequant(quant(w))
     must give the same logits (printed max abs diff).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import torch

import rzgl

Q8 = "Q8_0"
F16 = "F16"
F32 = "F32"
# per-layer types (layer 0, layer 1) so both layers exercise different code paths
TYPES = {
    "attn_q": (Q8, F16), "attn_k": (Q8, F16), "attn_v": (F16, Q8), "attn_output": (Q8, F16),
    "ffn_gate": (F16, Q8), "ffn_up": (Q8, F16), "ffn_down": (Q8, Q8),
}
GLOBAL_TYPES = {"token_embd": Q8, "output": F16, "output_norm": F32}


def permute(w: np.ndarray, n_head: int, n_head_kv: int | None) -> np.ndarray:
    """Exactly convert_hf_to_gguf.py LlamaModel.permute."""
    if n_head_kv is not None and n_head != n_head_kv:
        n_head = n_head_kv
    return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
            .swapaxes(1, 2).reshape(w.shape))


def byte_tokens() -> list[str]:
    """GPT-2 byte-to-unicode alphabet: a 256-entry byte-level BPE vocab (no merges)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    m = dict(zip(bs, cs))
    return [chr(m[b]) for b in range(256)]


def make_tiny_llama_gguf(d: Path, ids, forward_logits, log, BASE: dict, TINY_VOCAB: int, randomize):
    import gguf
    from gguf.quants import dequantize, quantize
    from transformers import AutoModelForCausalLM, LlamaConfig

    cfg = LlamaConfig(**dict(BASE, rope_theta=10000.0, tie_word_embeddings=False))
    model = AutoModelForCausalLM.from_config(cfg, dtype=torch.float32, attn_implementation="eager").eval()
    randomize(model, 7)
    nh, nkv, L = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.num_hidden_layers
    head_dim = cfg.hidden_size // nh

    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    path = d / "tiny_llama.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("razor-tiny-llama-random")
    w.add_context_length(cfg.max_position_embeddings)
    w.add_embedding_length(cfg.hidden_size)
    w.add_block_count(L)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(nh)
    w.add_head_count_kv(nkv)
    w.add_rope_dimension_count(head_dim)
    w.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
    w.add_layer_norm_rms_eps(cfg.rms_norm_eps)
    w.add_vocab_size(TINY_VOCAB)
    w.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    w.add_tokenizer_model("gpt2")
    w.add_tokenizer_pre("default")
    w.add_token_list(byte_tokens())
    w.add_token_types([gguf.TokenType.NORMAL] * TINY_VOCAB)
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)

    sd = {k: v.detach().float().numpy().copy() for k, v in model.state_dict().items()}
    rounded = {}  # HF name -> what the GGUF actually holds (dequantized, un-permuted)

    def put(gname: str, hf_name: str, arr: np.ndarray, qtype: str, perm=None):
        a = np.ascontiguousarray(arr, np.float32)
        if perm is not None:
            a = permute(a, *perm)
        if qtype == Q8:
            q = quantize(a, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(gname, q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            back = dequantize(q, gguf.GGMLQuantizationType.Q8_0).reshape(a.shape)
        elif qtype == F16:
            w.add_tensor(gname, a.astype(np.float16))
            back = a.astype(np.float16).astype(np.float32)
        else:
            w.add_tensor(gname, a)
            back = a
        if perm is not None:  # inverse of permute: reshape(n,hd/2,2,..) -> swap -> reshape
            n = perm[1] if perm[1] is not None and perm[0] != perm[1] else perm[0]
            back = back.reshape(n, a.shape[0] // n // 2, 2, *a.shape[1:]).swapaxes(1, 2).reshape(a.shape)
        rounded[hf_name] = back

    put("token_embd.weight", "model.embed_tokens.weight", sd["model.embed_tokens.weight"], GLOBAL_TYPES["token_embd"])
    for i in range(L):
        p = f"model.layers.{i}."
        put(f"blk.{i}.attn_norm.weight", p + "input_layernorm.weight", sd[p + "input_layernorm.weight"], F32)
        put(f"blk.{i}.attn_q.weight", p + "self_attn.q_proj.weight", sd[p + "self_attn.q_proj.weight"], TYPES["attn_q"][i], (nh, nh))
        put(f"blk.{i}.attn_k.weight", p + "self_attn.k_proj.weight", sd[p + "self_attn.k_proj.weight"], TYPES["attn_k"][i], (nh, nkv))
        put(f"blk.{i}.attn_v.weight", p + "self_attn.v_proj.weight", sd[p + "self_attn.v_proj.weight"], TYPES["attn_v"][i])
        put(f"blk.{i}.attn_output.weight", p + "self_attn.o_proj.weight", sd[p + "self_attn.o_proj.weight"], TYPES["attn_output"][i])
        put(f"blk.{i}.ffn_norm.weight", p + "post_attention_layernorm.weight", sd[p + "post_attention_layernorm.weight"], F32)
        put(f"blk.{i}.ffn_gate.weight", p + "mlp.gate_proj.weight", sd[p + "mlp.gate_proj.weight"], TYPES["ffn_gate"][i])
        put(f"blk.{i}.ffn_up.weight", p + "mlp.up_proj.weight", sd[p + "mlp.up_proj.weight"], TYPES["ffn_up"][i])
        put(f"blk.{i}.ffn_down.weight", p + "mlp.down_proj.weight", sd[p + "mlp.down_proj.weight"], TYPES["ffn_down"][i])
    put("output_norm.weight", "model.norm.weight", sd["model.norm.weight"], GLOBAL_TYPES["output_norm"])
    put("output.weight", "lm_head.weight", sd["lm_head.weight"], GLOBAL_TYPES["output"])
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()

    # expected: HF model holding exactly the (dequantized) GGUF weights
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if k in rounded:
                v.copy_(torch.from_numpy(rounded[k]))
    expect = forward_logits(model, ids)

    hf = AutoModelForCausalLM.from_pretrained(str(d), gguf_file=path.name, dtype=torch.float32,
                                              attn_implementation="eager").eval()
    c = hf.config
    assert (c.hidden_size, c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads,
            c.intermediate_size, c.vocab_size, c.tie_word_embeddings) == (64, L, nh, nkv, cfg.intermediate_size, TINY_VOCAB, False), c
    logits = forward_logits(hf, ids)
    g = rzgl.summarize(logits, ids, [], TINY_VOCAB)
    rzgl.write(d / "logits.rzgl", g)
    back = rzgl.read(d / "logits.rzgl")
    # how much the quantization changed the outputs vs the unquantized random model
    log(f"[gguf] {path.name} {path.stat().st_size} B; transformers(GGUF) vs HF-with-dequantized-weights "
        f"max|diff|={np.abs(logits - expect).max():.3g}; rzgl-vs-live max|diff|="
        f"{np.abs(back.full_logits() - logits).max():.3g}; max|logit|={back.max_abs.max():.2f} min gap={back.gap.min():.3g}")
