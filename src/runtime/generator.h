// Prompt -> prefill (in micro-batches, with progress) -> decode loop with sampling, streaming text,
// and stops at end-of-generation tokens or stop strings.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/status.h"
#include "kv/kv_cache.h"
#include "model/transformer.h"
#include "runtime/engine.h"
#include "runtime/sampler.h"
#include "runtime/token_text_stream.h"
#include "tokenizer/tokenizer.h"

namespace razor {

struct GenerationOptions {
  int max_new_tokens = 128;
  SamplerParams sampler;
  std::vector<std::string> stop_strings;
  bool stop_at_eog = true;
  int64_t prefill_batch = 256;  // tokens per prefill forward call (bounds activation memory)
  std::function<void(const std::string&)> on_text;                 // streamed UTF-8 text
  std::function<void(int64_t done, int64_t total)> on_prefill;     // after every prefill batch
};

struct GenerationResult {
  std::vector<int32_t> output_ids;
  std::string text;
  std::string stop_reason;  // "eog" | "stop-string" | "length" | "context"
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0, decode_seconds = 0;
  double prefill_tok_s() const { return prefill_seconds > 0 ? prompt_tokens / prefill_seconds : 0; }
  // Decode speed counts the steps after the first token (which comes from the prefill logits).
  double decode_tok_s() const {
    return decode_seconds > 0 && output_ids.size() > 1 ? (output_ids.size() - 1) / decode_seconds : 0;
  }
};

// Prefills `prompt` into `cache` (which must be empty or hold a prefix of it... here: empty) and generates.
Result<GenerationResult> Generate(Transformer& model, KvCache& cache, const Tokenizer* tokenizer,
                                  const std::vector<int32_t>& prompt, const GenerationOptions& options);

// The same through an engine's sequence (which must be empty or hold a prefix the prompt continues).
Result<GenerationResult> Generate(Engine& engine, Sequence& seq, const std::vector<int32_t>& prompt,
                                  const GenerationOptions& options);
// Prefill of one sequence through the engine, in batches of `batch` tokens (one call when its cache wants it).
Status PrefillSequence(Engine& engine, Sequence& seq, const std::vector<int32_t>& prompt, int64_t batch,
                       const std::function<void(int64_t, int64_t)>& on_progress);

// Prefill only: runs the prompt through the model in batches; returns the last token's logits.
Status Prefill(Transformer& model, KvCache& cache, const std::vector<int32_t>& prompt, int64_t batch,
               const std::function<void(int64_t, int64_t)>& on_progress, std::vector<float>* last_logits);

}  // namespace razor
