// How far a compressed KV cache moves the model's next-token distributions from the full cache's, on real
// text: prefill the first P tokens with the cache under test (compression happens here), then feed the next
// T tokens one by one and compare each step's distribution with the full cache's at the same position
// (KL(full || test), top-1 agreement), plus the perplexity of the T tokens under both.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "core/thread_pool.h"
#include "ops/matmul.h"
#include "runtime/engine.h"
#include "runtime/kv_cache_factory.h"
#include "runtime/loaded_model.h"

namespace razor::eval {

// log_softmax of logits[0..n) in double.
void LogSoftmax(const float* logits, int n, std::vector<double>* out);
// KL(P || Q) = sum p (log p - log q) from log-probabilities.
double KlDivergence(const std::vector<double>& log_p, const std::vector<double>& log_q);

// Next-token log-probabilities of a run: steps[t] predicts tokens[P + t].
struct StepDistributions {
  std::vector<float> log_probs;   // [T, vocab] (float to halve the memory)
  std::vector<int32_t> argmax;    // [T]
  std::vector<double> nll;        // [T] -log p(actual next token)
  double kv_bytes = 0;            // after the prefix prefill
  double seconds = 0;
};

// Runs `tokens` (P + T) through a fresh cache of `mode`: prefill tokens[0, P), then feed tokens[P, P+T-1)
// one at a time. on_step(t, T) after every step.
Result<StepDistributions> RunSteps(Engine& engine, KvCacheOptions kvo,
                                   KvMode mode, const std::vector<int32_t>& tokens, int64_t prefix,
                                   const std::function<void(int64_t, int64_t)>& on_step);

struct KldResult {
  std::string mode;
  int64_t prefix_tokens = 0, eval_tokens = 0;
  double mean_kl = 0, max_kl = 0, p95_kl = 0;
  double top1_agreement = 0;              // fraction of steps whose argmax equals the full cache's
  double ppl_full = 0, ppl_mode = 0;      // perplexity of the T tokens under each cache
  double kv_bytes = 0, full_kv_bytes = 0, reduction = 0;
  double seconds = 0;
  std::vector<double> kl;                 // [T] per step
  std::vector<int> agree;                 // [T] 1 when argmax agrees
};

KldResult CompareSteps(const StepDistributions& full, const StepDistributions& test, int vocab);
nlohmann::json ToJson(const KldResult& r, bool per_step);

}  // namespace razor::eval
