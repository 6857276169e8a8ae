// What the compensation token (RazorAttention §3) does for the heads razor compresses, measured on the full
// cache: for every compressed KV head, the tokens razor would drop after a prefix of P tokens, D = [N0, P - W),
// and for every query at positions >= P and every query head of the group:
//   dropped mass   m = sum_{j in D} p_j                            (the full softmax's mass on D)
//   token's share  c / (Z_kept + c),  c = exp(q.k_mean * scale + ln|D| - lse)   (what razor's softmax gives it)
//   captured       c / m    (<= 1 by Jensen: |D| exp(q.mean k) <= sum exp(q.k_j); near 1 only when the
//                           dropped keys score alike for this query)
//   output errors  |o - o_full| / |o_full| for razor (kept + token), no token (kept only), and the token with
//                  the full cache's dropped mass as its weight (isolates the mean value from the weight)
// and per KV head the spread of D's keys: mean cos(k_j, k_mean), |k_mean| / mean |k_j|, |v_mean| / mean |v_j|.
// Attached to a Transformer as its AttentionObserver over a FullKvCache (fp32, contiguous) holding the text.
#pragma once

#include <cstdint>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/thread_pool.h"
#include "model/transformer.h"

namespace razor::eval {

// Sums over the scored queries of one (layer, query head).
struct CompensationHeadSums {
  int64_t queries = 0;
  double dropped_mass = 0, token_share = 0, token_mass = 0;  // token_mass: c (on the full softmax's scale)
  double err_token = 0, err_none = 0, err_ideal_weight = 0;
  int64_t token_better = 0;  // queries where the token lowered the output error
};

// The key / value spread of one compressed KV head's dropped tokens.
struct DroppedSpread {
  int64_t dropped = 0;
  double key_cos = 0, key_norm_ratio = 0, value_norm_ratio = 0;
};

class CompensationProbe final : public AttentionObserver {
 public:
  // compressed: [n_layers * n_kv_heads] (layer-major) heads razor cuts; sinks N0 and window W for the prefix
  // of `prefix` tokens; queries at positions >= prefix are scored. pool may be null.
  CompensationProbe(int n_layers, int n_heads, int n_kv_heads, int head_dim, std::vector<bool> compressed,
                    int64_t sinks, int64_t window, int64_t prefix, ThreadPool* pool);
  void OnAttention(int layer, const float* q, const int32_t* positions, int64_t n, const float* lse,
                   const KvCache& cache) override;

  const std::vector<CompensationHeadSums>& head_sums() const { return sums_; }   // [n_layers * n_heads]
  const std::vector<DroppedSpread>& spreads() const { return spreads_; }         // [n_layers * n_kv_heads]
  int64_t dropped_begin() const { return sinks_; }
  int64_t dropped_end() const { return prefix_ - window_; }  // <= dropped_begin(): nothing is dropped

 private:
  void MakeMeans(int layer, const KvCache& cache);

  int n_layers_, n_heads_, n_kv_heads_, head_dim_;
  std::vector<bool> compressed_;
  int64_t sinks_, window_, prefix_;
  ThreadPool* pool_;
  std::vector<CompensationHeadSums> sums_;
  std::vector<DroppedSpread> spreads_;
  std::vector<float> k_mean_, v_mean_;  // [n_layers * n_kv_heads, head_dim]
  std::vector<bool> means_ready_;      // [n_layers]
  std::vector<CompensationHeadSums> scratch_;  // [n, n_heads] per-token values, summed in token order
};

// Summary over every compressed (layer, query head) of one or more probes' sums, and per layer.
struct CompensationSummary {
  int64_t heads = 0, queries = 0;
  double dropped_mass = 0, token_share = 0, captured = 0;  // means over (head, query); captured = sum c / sum m
  double err_token = 0, err_none = 0, err_ideal_weight = 0, token_better = 0;
  double key_cos = 0, key_norm_ratio = 0, value_norm_ratio = 0;  // means over compressed KV heads
};
CompensationSummary Summarise(const std::vector<CompensationHeadSums>& sums, const std::vector<DroppedSpread>& spreads);
nlohmann::json ToJson(const CompensationSummary& s);

}  // namespace razor::eval
