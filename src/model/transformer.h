// The decoder forward pass shared by llama / qwen2 / qwen3: embeddings -> N x (attention + SwiGLU MLP)
// -> final norm -> logits. BLOOM takes the same loop with LayerNorms, a fused QKV projection, ALiBi in
// place of RoPE and a GELU MLP (ModelConfig's BLOOM flags). Gemma 3 with scaled embeddings, norms on both
// sub-layer outputs, a GeGLU MLP and sliding-window local layers with their own RoPE base (its flags). Activations are fp32; weights are used in their
// stored format. Written once against the Backend seam (ops/backend.h): every kernel goes through it.
//
// One Step runs the tokens of many sequences at once (a batch): every weight matrix is read once per chunk of
// up to chunk_tokens() rows (256; so once per step for any decode batch up to that) for all of their rows
// (matrix-matrix, not one matrix-vector product per sequence), while each sequence appends
// to and attends over its own KV cache (its own policy, its own per-head lengths). A prefill chunk of one
// sequence may share a step with single-token decodes of others.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kv/kv_cache.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "ops/backend.h"
#include "ops/rope.h"

namespace razor {

// Sees every layer's attention inputs right after the attention ran (the retrieval-head profiler). Only for
// steps of a single sequence.
class AttentionObserver {
 public:
  virtual ~AttentionObserver() = default;
  //   q:   [n, n_heads * head_dim] queries after RoPE;  positions: [n]
  //   lse: [n, n_heads] log-sum-exp of each query head's scaled scores (softmax normaliser)
  //   cache: holds this layer's keys (after RoPE), including the n new tokens
  virtual void OnAttention(int layer, const float* q, const int32_t* positions, int64_t n, const float* lse,
                           const KvCache& cache) = 0;
};

// One sequence's part of a step: tokens [0, n) at positions [cache->sequence_length(), +n).
struct StepSequence {
  KvCache* cache = nullptr;
  const int32_t* tokens = nullptr;  // [n]
  int64_t n = 0;
  bool all_logits = false;          // logits of every token; else of the last one only
};

// Host index data of a step's rows (R rows): what every layer of every chunk reads.
struct RowIndex {
  std::vector<int32_t> positions;  // [R]
  std::vector<float> cos, sin;     // [R, head_dim/2] RoPE angles of those positions
  std::vector<float> cos_local, sin_local;  // [R, head_dim/2] with the local layers' base (sliding window only)
};

// A prompt run a slice per call (Transformer::StepSlice): where it stands, its residual stream and its rows'
// positions and angles (made once: recomputed on every slice, a long prompt's angles held the GPU's slice
// budget at its floor; see docs/BENCHMARKS.md, thirteenth session).
struct LayerProgress {
  std::unique_ptr<Buffer> residual;  // [rows, dim] fp32, a backend buffer (device memory on a GPU)
  RowIndex index;                    // [rows] positions and RoPE angles, host
  int next_layer = 0;                // layer under way (0 with next_row 0: not begun, or done)
  int64_t next_row = 0;              // rows of next_layer already run
  int64_t rows = 0;                  // tokens of the prompt being run
};

class Transformer {
 public:
  Transformer(const ModelConfig& config, const ModelWeights& weights, Backend& backend);
  // A private CPU backend over `pool` (tests, tools that drive one sequence).
  Transformer(const ModelConfig& config, const ModelWeights& weights, ThreadPool& pool, MathMode mode);
  ~Transformer();

  // Runs every sequence's tokens, appending their K/V to its cache. logits: the rows of the batch's entries in
  // order, n rows for an all_logits entry and 1 otherwise: [rows, vocab]. A sequence appears at most once.
  // On an error (bad token, context full, KV pool exhausted) the caches of the step may hold partial layers:
  // those sequences must be cleared before reuse; nothing else is touched.
  Status Step(const std::vector<StepSequence>& batch, std::vector<float>* logits);
  // One sequence: logits [n, vocab] when all_logits, else [vocab] for the last token.
  Status Forward(const int32_t* tokens, int64_t n, KvCache& cache, bool all_logits, std::vector<float>* logits) {
    return Step({StepSequence{&cache, tokens, n, all_logits}}, logits);
  }

  // Sliced prefill: one sequence's prompt run `token_layers` (token, layer) pairs at a time (0: all the rest),
  // layer after layer and, inside a layer, chunk after chunk of its rows, resuming where `progress` stopped;
  // the residual stream waits there between calls, which must pass the same tokens. The cache sees what one
  // Step does, in the same order (a compressing cache compresses each layer once all its rows are in, so the
  // layer-by-layer memory peak stays); the tokens are committed and `logits` set (as Step's) only by the call
  // that finishes the last layer, which sets *finished. Other sequences' Steps may run between calls. A
  // budget of whole layers (a multiple of the prompt's length) runs the same chunks as Step: the same logits.
  // On an error the cache may hold partial layers (clear it and reset `progress`).
  Status StepSlice(const StepSequence& seq, LayerProgress* progress, int64_t token_layers, bool* finished,
                   std::vector<float>* logits);

  const ModelConfig& config() const { return config_; }
  Backend& backend() { return *backend_; }
  void set_observer(AttentionObserver* observer) { observer_ = observer; }
  // Rows per chunk inside one Step (bounds activation memory; results do not depend on it). Default: the
  // backend's preferred_chunk_tokens().
  void set_chunk_tokens(int64_t n) { chunk_tokens_ = n > 0 ? n : backend_->preferred_chunk_tokens(); }
  int64_t chunk_tokens() const { return chunk_tokens_; }
  MathMode mode() const { return backend_->math_mode(); }

 private:
  // A run of rows [row0, row0 + n) of the step that belongs to one sequence, inside one chunk.
  struct Piece {
    size_t seq;       // index into the batch
    int64_t row0, n;  // rows of the step
    int64_t pos0;     // position of its first row
  };
  Status Validate(const std::vector<StepSequence>& batch, int64_t* rows, int64_t* out_rows) const;
  void Reserve(int64_t chunk);  // the per-chunk activations
  // Positions and RoPE angles (into `index`, which rows_ then points at), tokens and chunk pieces of the
  // batch's rows.
  void Prepare(const std::vector<StepSequence>& batch, int64_t rows, RowIndex* index);
  void Embed(int64_t rows, float* x_all);
  // Layers [l0, l1) over the residual stream x_all ([rows, dim]), chunk by chunk of the grid.
  Status RunLayers(const std::vector<StepSequence>& batch, int64_t rows, float* x_all, int l0, int l1);
  // Layer l over rows [t0, t0 + m) (<= chunk_tokens_), whose sequences' rows are `pieces`.
  Status LayerChunk(int l, const std::vector<StepSequence>& batch, float* x_all, int64_t t0, int64_t m,
                    const std::vector<Piece>& pieces);
  void Logits(const std::vector<StepSequence>& batch, int64_t out_rows, const float* x_all, std::vector<float>* logits);
  void Attention(int layer, const std::vector<StepSequence>& batch, const std::vector<Piece>& pieces,
                 int64_t chunk_row0);

  const ModelConfig& config_;
  const ModelWeights& weights_;
  std::unique_ptr<Backend> owned_backend_;
  Backend* backend_;
  RopeTable rope_;
  RopeTable rope_local_;             // local (sliding-window) layers' RoPE; unused without a sliding window
  AttentionObserver* observer_ = nullptr;
  int64_t chunk_tokens_ = 256;
  std::vector<float> alibi_slopes_;  // [n_heads] (alibi only)
  std::vector<int64_t> qkv_cols_[3];  // fused_qkv: source column of each head's q / k / v
  // Host index data of a step. R = rows of the step.
  RowIndex step_index_;              // [R] positions and angles of a Step's rows
  const RowIndex* rows_ = &step_index_;  // those of the call under way (a sliced prompt keeps its own)
  std::vector<int32_t> tokens_;      // [R]
  std::vector<int64_t> seq_row0_;    // [batch] first row of each sequence
  std::vector<std::vector<Piece>> chunk_pieces_;  // [chunks] a sequence's rows inside each chunk
  std::vector<float> lse_;           // [m, n_heads] (only with an observer; host)
  std::vector<AttentionItem> items_;
  // Backend buffers. m = rows of a chunk (<= chunk_tokens_):
  std::unique_ptr<Buffer> x_;      // [R, dim]   residual stream
  std::unique_ptr<Buffer> xn_;     // [m, dim]   normed input of a sub-layer (then [rows, dim] for the logits)
  std::unique_ptr<Buffer> q_;      // [m, q_dim]
  std::unique_ptr<Buffer> k_, v_;  // [m, kv_dim]
  std::unique_ptr<Buffer> attn_;   // [m, q_dim]  attention output
  std::unique_ptr<Buffer> proj_;   // [m, dim]    output of wo / w_down
  std::unique_ptr<Buffer> gate_, up_;  // [m, ffn]
  std::unique_ptr<Buffer> qkv_;    // [m, 3 * q_dim] fused projection (fused_qkv only)
  std::unique_ptr<Buffer> logits_;  // [rows, vocab]
};

}  // namespace razor
