// Named weight tensors of a decoder, viewed in place in the mmapped file (no dequantized copy).
// Matrices stay in their stored type; small vectors (norm gains, biases) are converted to fp32 at load.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor_view.h"
#include "model/model_config.h"

namespace razor {

class GgufFile;
class SafetensorsCheckpoint;

struct LayerWeights {
  std::vector<float> attn_norm;            // [dim]
  TensorView wq, wk, wv, wo;               // [q_dim x dim], [kv_dim x dim] x2, [dim x q_dim]  (rows x cols)
  std::vector<float> bq, bk, bv;           // [q_dim], [kv_dim], [kv_dim]; empty unless qkv_bias
  std::vector<float> q_norm, k_norm;       // [head_dim]; empty unless qk_norm
  std::vector<float> ffn_norm;             // [dim]
  TensorView w_gate, w_up, w_down;         // [ffn x dim] x2, [dim x ffn]  (w_gate unset for a GELU MLP)
  // BLOOM (config.layer_norm / fused_qkv / dense_bias); empty or unset otherwise:
  std::vector<float> attn_norm_b, ffn_norm_b;  // [dim] LayerNorm biases
  TensorView wqkv;                         // [3 * q_dim x dim], output rows [n_heads, 3 (q, k, v), head_dim]
  std::vector<float> bqkv;                 // [3 * q_dim], same layout
  std::vector<float> bo;                   // [dim]
  std::vector<float> b_up, b_down;         // [ffn], [dim]
  // Gemma 3 (config.post_norms): RMSNorm gains of the attention and MLP outputs; empty otherwise.
  std::vector<float> post_attn_norm, post_ffn_norm;  // [dim]
};

struct ModelWeights {
  TensorView token_embd;                   // [vocab x dim]
  std::vector<float> output_norm;          // [dim]
  std::vector<float> output_norm_b;        // [dim] LayerNorm bias (config.layer_norm)
  std::vector<float> embd_norm, embd_norm_b;  // [dim] LayerNorm after the embedding (config.embedding_norm)
  TensorView output;                       // [vocab x dim] (== token_embd when tied)
  std::vector<float> rope_freq_factors;    // [head_dim/2] divisors of the RoPE frequencies; empty if none
  std::vector<LayerWeights> layers;
  std::shared_ptr<void> keep_alive;        // owns the file mappings the views point into

  // Parameter count (elements) and stored bytes of every tensor used.
  int64_t parameter_count = 0;
  size_t stored_bytes = 0;
};

// Every weight matrix the forward pass multiplies by (the embedding table too), each once.
std::vector<const TensorView*> WeightMatrices(const ModelWeights& w);

Result<ModelWeights> LoadWeightsFromGguf(std::shared_ptr<GgufFile> gguf, const ModelConfig& config);
Result<ModelWeights> LoadWeightsFromSafetensors(std::shared_ptr<SafetensorsCheckpoint> ckpt,
                                                const ModelConfig& config, const std::string& dir);

}  // namespace razor
