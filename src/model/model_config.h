// The hyper-parameters of one decoder-only transformer, from GGUF metadata or a Hugging Face config.json.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "ops/rope_params.h"

namespace razor {

class GgufFile;

enum class Architecture { kLlama, kQwen2, kQwen3, kBloom, kGemma3 };
const char* ArchitectureName(Architecture a);
// "llama, qwen2, qwen3, bloom, gemma3": for error messages that list what is supported.
std::string SupportedArchitectures();

struct ModelConfig {
  Architecture arch = Architecture::kLlama;
  std::string name;
  int n_layers = 0;
  int dim = 0;          // residual stream width
  int n_heads = 0;      // query heads
  int n_kv_heads = 0;   // key/value heads (GQA: n_heads % n_kv_heads == 0)
  int head_dim = 0;
  int ffn_dim = 0;
  int vocab_size = 0;
  int context_length = 0;  // trained context (positions)
  float rms_eps = 1e-5f;
  double rope_theta = 10000.0;
  int rope_dim = 0;        // dimensions rotated per head (== head_dim for every supported arch)
  RopeLayout rope_layout = RopeLayout::kHalfSplit;
  RopeScaling rope_scaling;
  RopeParams rope() const { return {rope_theta, rope_dim, rope_layout, rope_scaling}; }
  bool qkv_bias = false;   // qwen2
  bool qk_norm = false;    // qwen3: RMSNorm over head_dim on q and k before RoPE
  bool tied_embeddings = false;
  // BLOOM-style blocks (all false / RMSNorm + SwiGLU + RoPE for llama, qwen2, qwen3):
  bool layer_norm = false;       // LayerNorm with bias (eps rms_eps) instead of RMSNorm, for every norm
  bool embedding_norm = false;   // a LayerNorm right after the embedding lookup (word_embeddings_layernorm)
  bool fused_qkv = false;        // one [3 * q_dim x dim] projection + bias, rows laid out as below
  bool fused_qkv_split = false;  // rows [3 (q, k, v), n_heads, head_dim] (llama.cpp GGUF); else [n_heads, 3, head_dim] (HF)
  bool dense_bias = false;       // biases on the attention output and both MLP projections
  bool gelu_mlp = false;         // MLP = down(gelu_tanh(up x + b) ) + b, no gate
  bool alibi = false;            // ALiBi position biases instead of RoPE (slopes: AlibiSlopes)
  // Gemma 3 blocks (all off elsewhere):
  bool scale_embeddings = false; // the embedding row times sqrt(dim)
  bool post_norms = false;       // RMSNorm of each sub-layer's output before it joins the residual
  bool gelu_gated_mlp = false;   // MLP = down(gelu_tanh(gate x) * up x) instead of SiLU
  float attn_scale = 0.0f;       // query scale; 0: 1 / sqrt(head_dim)
  // Sliding-window attention: a local layer's query at position p sees keys at positions (p - window, p].
  // Layer l is global (full causal attention, RoPE base rope_theta) when (l + 1) % swa_period == 0, local
  // (window, RoPE base rope_theta_local) otherwise. sliding_window == 0: every layer global.
  int sliding_window = 0;
  int swa_period = 0;
  double rope_theta_local = 10000.0;
  bool is_local_layer(int l) const { return sliding_window > 0 && (swa_period <= 0 || (l + 1) % swa_period != 0); }
  RopeParams rope_local() const { return {rope_theta_local, rope_dim, rope_layout, RopeScaling{}}; }
  float query_scale() const { return attn_scale > 0 ? attn_scale : 1.0f / std::sqrt(static_cast<float>(head_dim)); }

  int q_dim() const { return n_heads * head_dim; }
  int kv_dim() const { return n_kv_heads * head_dim; }
  int group_size() const { return n_heads / n_kv_heads; }
  // fused_qkv: first row of part (0 q, 1 k, 2 v) of head h in the fused projection.
  int64_t fused_qkv_row(int part, int h) const {
    return static_cast<int64_t>(fused_qkv_split ? part * n_heads + h : 3 * h + part) * head_dim;
  }
  // fp32 K+V bytes one token occupies in a full cache across all layers.
  // K/V bytes one token takes in a full cache that stores `elem_bytes` per value (4: fp32, 2: f16 / bf16).
  size_t kv_bytes_per_token(size_t elem_bytes) const { return size_t(2) * n_layers * kv_dim() * elem_bytes; }

  // Every field that sizes a buffer or divides something, before any of it is used: counts positive and
  // below the limits below (so q_dim, kv_dim, fused_qkv_row and kv_bytes_per_token cannot overflow), GQA
  // divisible, head_dim even, eps / rope base / llama3 scaling finite and in range.
  Status Validate() const;

  // Limits far above every released model; a file past them is corrupt or hostile.
  static constexpr int kMaxLayers = 1024;
  static constexpr int kMaxDim = 1 << 17;       // residual width and ffn width
  static constexpr int kMaxHeads = 1 << 12;     // query heads (KV heads <= query heads)
  static constexpr int kMaxHeadDim = 1 << 12;
  static constexpr int kMaxVocab = 1 << 24;
  static constexpr int kMaxContext = 1 << 30;   // positions (a KV cache holds at most INT32_MAX tokens)
};

// ALiBi slope of each of n_heads heads, as transformers' BLOOM computes them (_get_alibi_slopes): a
// geometric series 2^(-8/n') for the largest power of two n' <= n_heads, then the odd powers of
// 2^(-4/n') for the remaining heads.
std::vector<float> AlibiSlopes(int n_heads);

Result<ModelConfig> ConfigFromGguf(const GgufFile& gguf);
Result<ModelConfig> ConfigFromHfJson(const std::string& config_json_path);
// The same from the file's text (`origin` prefixes errors): what ConfigFromHfJson parses, and the fuzz target.
Result<ModelConfig> ConfigFromHfJsonText(const std::string& text, const std::string& origin);

}  // namespace razor
