// The decoder forward pass shared by llama / qwen2 / qwen3: embeddings -> N x (attention + SwiGLU MLP)
// -> final norm -> logits. BLOOM takes the same loop with LayerNorms, a fused QKV projection, ALiBi in
// place of RoPE and a GELU MLP (ModelConfig's BLOOM flags). Activations are fp32; weights are used in their stored format.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kv/kv_cache.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "ops/matmul.h"
#include "ops/rope.h"

namespace razor {

// Sees every layer's attention inputs right after the attention ran (the retrieval-head profiler).
class AttentionObserver {
 public:
  virtual ~AttentionObserver() = default;
  //   q:   [n, n_heads * head_dim] queries after RoPE;  positions: [n]
  //   lse: [n, n_heads] log-sum-exp of each query head's scaled scores (softmax normaliser)
  //   cache: holds this layer's keys (after RoPE), including the n new tokens
  virtual void OnAttention(int layer, const float* q, const int32_t* positions, int64_t n, const float* lse,
                           const KvCache& cache) = 0;
};

class Transformer {
 public:
  Transformer(const ModelConfig& config, const ModelWeights& weights, ThreadPool& pool, MathMode mode);

  // Runs tokens[0..n) at positions [cache.sequence_length(), +n), appending their K/V to the cache.
  // logits: [n, vocab] when all_logits, else [vocab] for the last token only.
  Status Forward(const int32_t* tokens, int64_t n, KvCache& cache, bool all_logits, std::vector<float>* logits);

  const ModelConfig& config() const { return config_; }
  void set_observer(AttentionObserver* observer) { observer_ = observer; }
  // Tokens per chunk inside one Forward call (bounds activation memory; results do not depend on it).
  void set_chunk_tokens(int64_t n) { chunk_tokens_ = n > 0 ? n : 256; }
  int64_t chunk_tokens() const { return chunk_tokens_; }
  MathMode mode() const { return mode_; }

 private:
  // Attention of the n queries in q_ (positions [n]) over the layer's cache; output into attn_.
  void Attention(int layer, const int32_t* positions, int64_t n, const KvCache& cache);
  // The pre-sub-layer norm of m rows of x into out: RMSNorm, or LayerNorm with bias (config.layer_norm).
  void Norm(const float* x, int64_t m, const std::vector<float>& gain, const std::vector<float>& bias,
            float* out) const;

  const ModelConfig& config_;
  const ModelWeights& weights_;
  ThreadPool& pool_;
  MathMode mode_;
  RopeTable rope_;
  AttentionObserver* observer_ = nullptr;
  int64_t chunk_tokens_ = 256;
  std::vector<float> lse_;     // [m, n_heads] (only with an observer)
  // Scratch. n = tokens of the call, m = tokens of a chunk (<= 256):
  std::vector<float> x_;       // [n, dim]   residual stream
  std::vector<float> xn_;      // [m, dim]   normed input of a sub-layer (then [rows, dim] for the logits)
  std::vector<float> q_;       // [m, q_dim]
  std::vector<float> k_, v_;   // [m, kv_dim]
  std::vector<float> attn_;    // [m, q_dim]  attention output
  std::vector<float> proj_;    // [m, dim]    output of wo / w_down
  std::vector<float> gate_, up_;  // [m, ffn]
  std::vector<float> qkv_;     // [m, 3 * q_dim] fused projection (fused_qkv only)
  std::vector<float> alibi_slopes_;  // [n_heads] (alibi only)
  std::vector<int32_t> positions_;  // [n]
  std::vector<float> cos_, sin_;    // [n, head_dim/2]
};

}  // namespace razor
