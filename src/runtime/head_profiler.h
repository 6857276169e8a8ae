// Finds retrieval heads without data (RazorAttention §1): runs BOS + a random block of L ordinary token ids
// repeated R times through the model with a full KV cache and, for every layer and query head, measures
// how much attention each query in repeats 2..R puts on
//   induction: the tokens that followed earlier copies of the current token  (A[i, j+1], j ≡ i mod L, j < i)
//   echo:      the earlier copies themselves                                  (A[i, j])
// A KV head scores the max over its query heads; all KV heads are ranked together.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kv/head_profile.h"
#include "model/transformer.h"
#include "runtime/loaded_model.h"

namespace razor {

// Architecture, shapes and a fingerprint of the tensors the model uses (names, types, shapes).
ModelIdentity ModelIdentityOf(const LoadedModel& model);
ModelIdentity ModelIdentityOf(const ModelConfig& config, const ModelWeights& weights);

// Accumulates induction / echo scores from the attention of a prompt laid out as
//   position 0: BOS;  position 1 + r*L + t: block token t of copy r  (r < R).
// Positions are absolute, so the prompt may arrive in any number of Forward calls.
class HeadScoreObserver final : public AttentionObserver {
 public:
  // pool: splits the per-layer work (may be null: single thread). Results do not depend on the split.
  HeadScoreObserver(int n_layers, int n_heads, int n_kv_heads, int head_dim, int64_t block, ThreadPool* pool);

  void OnAttention(int layer, const float* q, const int32_t* positions, int64_t n, const float* lse,
                   const KvCache& cache) override;

  // ALiBi models: the slope of every query head ([n_heads]), so scores include the kernel's position bias.
  std::vector<float> alibi_slopes;
  float scale = 0.0f;              // query scale of the model's attention (0: 1 / sqrt(head_dim))
  std::vector<int32_t> windows;    // [n_layers] sliding window of each layer (empty or 0: none): keys the
                                   // attention hid from a query score 0 here too
  // Called after every layer of every Forward call (progress of a long single call).
  std::function<void(int layer)> on_layer;

  // Mean over the scored query positions seen so far; [n_layers * n_heads].
  std::vector<float> MeanInduction() const;
  std::vector<float> MeanEcho() const;
  int64_t scored_queries(int layer) const { return counts_[layer]; }

 private:
  int n_layers_, n_heads_, n_kv_heads_, head_dim_;
  int64_t block_;
  ThreadPool* pool_;
  std::vector<double> sum_induction_, sum_echo_;  // [n_layers * n_heads]
  std::vector<int64_t> counts_;                   // [n_layers] query positions scored
  std::vector<float> tok_induction_, tok_echo_;   // scratch [n, n_heads] per-token masses
};

struct HeadProfilerOptions {
  double induction_ratio = 0.14;
  double echo_ratio = 0.01;
  int64_t block = 2500;        // L before capping: 1 + L * repeats <= context
  int repeats = 4;             // R >= 2
  uint64_t seed = 1;
  int32_t token_lo = -1;       // block ids from the ordinary ids in [token_lo, token_hi); -1: [vocab/4, vocab/2)
  int32_t token_hi = -1;
  int32_t bos_id = -1;         // -1: the tokenizer's (or GGUF metadata's) BOS, else id 1
  int64_t context = 0;         // 0: the model's trained context
  int64_t batch = 0;           // tokens per Forward call; 0: the whole prompt in one call
  // (done, total) in units of layer passes: n_calls * n_layers in all.
  std::function<void(int64_t done, int64_t total)> on_progress;
};

// The profile input: BOS then the block repeated. Resolves the defaults of `options` into `params`
// (token range, capped block, BOS). Special ids in the range are skipped when a tokenizer is given.
Result<std::vector<int32_t>> MakeProfilePrompt(const ModelConfig& config, const Tokenizer* tokenizer,
                                               int32_t gguf_bos_id, const HeadProfilerOptions& options,
                                               HeadProfileParams* params);

// Runs the whole profile. `model` must outlive the call; the Transformer uses `pool` and `mode`.
Result<HeadProfile> ProfileHeads(const LoadedModel& model, ThreadPool& pool, MathMode mode,
                                 const HeadProfilerOptions& options);
// The same over a config + weights (tests with synthetic weights); `tokenizer` may be null.
Result<HeadProfile> ProfileHeads(const ModelConfig& config, const ModelWeights& weights, const Tokenizer* tokenizer,
                                 int32_t gguf_bos_id, const ModelIdentity& identity, ThreadPool& pool, MathMode mode,
                                 const HeadProfilerOptions& options);

}  // namespace razor
