// Runs one eval sample through the model with one KV cache: chat-template prompt (+ answer prefix),
// prefill, greedy answer, score, and the measured KV bytes / speeds of that run.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "eval/tasks.h"
#include "ops/matmul.h"
#include "runtime/engine.h"
#include "runtime/kv_cache_factory.h"
#include "runtime/loaded_model.h"

namespace razor::eval {

// One of the K samples of an aggregated cell (`razor eval --samples K`, K > 1).
struct SampleOutcome {
  uint64_t seed = 0;                  // MakeSample's seed of this sample (eval_samples.h: SampleSeed)
  double score = 0;                   // fraction of the expected values in the answer
  std::string answer;
  std::vector<std::string> expected;  // the needle values of this sample
  int64_t prompt_tokens = 0;          // real prompt tokens
};

// One (task, mode, length, depth) cell of an eval grid.
struct CellResult {
  std::string task, mode;
  int64_t length = 0;            // requested prompt tokens
  int depth = 0;                 // requested needle depth, percent
  int64_t prompt_tokens = 0;     // real prompt tokens
  double needle_depth = -1;      // measured: fraction of document tokens before the (first) needle; -1: none
  double score = 0;              // fraction of the expected values in the answer
  std::string answer;
  std::vector<std::string> expected;
  double kv_bytes = 0;           // cache bytes after the prompt (measured)
  double full_kv_bytes = 0;      // a full cache of the same KV type for the same tokens
  double reduction = 0;          // 1 - kv_bytes / full_kv_bytes
  int64_t heads_compressed = 0;  // of n_layers * n_kv_heads
  int64_t window = 0;            // W of the compressed heads (0: none)
  double prefill_tok_s = 0, decode_tok_s = 0, seconds = 0;
  // Samples of the cell (eval_samples.h: AggregateSamples). samples == 1: the fields above are the one
  // sample's and per_sample is empty; samples > 1: score, KV bytes, reduction and speeds are means over the
  // samples, answer / expected / prompt_tokens / heads_compressed / window the first sample's.
  int64_t samples = 1;
  int64_t correct = 0;                   // samples whose score is 1 (every expected value in the answer)
  double accuracy = 0;                   // correct / samples
  double wilson_lo = 0, wilson_hi = 1;   // 95 % Wilson score interval of accuracy
  std::vector<SampleOutcome> per_sample;  // [samples] when samples > 1, in sample order
};

class EvalRunner {
 public:
  // base: razor parameters / profile for every mode (its mode field is replaced per run). Every run is a
  // fresh sequence of `engine` (whose profile step must have run for razor / streaming modes).
  EvalRunner(Engine& engine, KvCacheOptions base);

  TokenCounter Counter() const;
  // The chat-template prompt of `s`: user message, generation prompt, then the answer prefix.
  Result<std::vector<int32_t>> PromptTokens(const EvalSample& s) const;
  // A sample of `task` whose whole prompt is about `length` tokens (the document gets what the instruction,
  // question, answer prefix and template leave).
  Result<EvalSample> MakeFitted(const std::string& task, const TaskInputs& in, int64_t length, int depth,
                                uint64_t seed) const;
  // Prefill + greedy answer with a fresh cache of `mode`.
  Result<CellResult> Run(const EvalSample& s, const std::vector<int32_t>& prompt, KvMode mode, int64_t length);

 private:
  Engine& engine_;
  const LoadedModel& model_;
  KvCacheOptions base_;
};

}  // namespace razor::eval
