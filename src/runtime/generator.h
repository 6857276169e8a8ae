// Prompt -> prefill (in micro-batches, with progress) -> decode loop with sampling, streaming text,
// and stops at end-of-generation tokens or stop strings.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <utility>
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
  // Polled between prefill batches and between tokens; true stops the generation with the error "cancelled"
  // (a front end's Ctrl-C or a closed connection). A compressing cache's prompt runs in one forward call.
  std::function<bool()> cancelled;
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

// One generation, a token at a time, for front ends that hand out text as it comes (Python's stream=True):
//   TokenGenerator g = ...; g.Prefill(); while (*g.Next()) { ... g.TakeText() ... }
// Generate() below is this loop.
class TokenGenerator {
 public:
  using PrefillFn = std::function<Status(std::vector<float>* last_logits)>;
  using DecodeFn = std::function<Status(int32_t id, std::vector<float>* logits)>;
  using RoomFn = std::function<bool()>;  // true while one more token fits in the context
  // Through an engine's sequence (empty, or holding a prefix the prompt continues); both must outlive this.
  static Result<TokenGenerator> ForSequence(Engine& engine, Sequence& seq, std::vector<int32_t> prompt,
                                            GenerationOptions options);
  TokenGenerator(PrefillFn prefill, DecodeFn decode, RoomFn room, int32_t vocab, const Tokenizer* tokenizer,
                 std::vector<int32_t> prompt, GenerationOptions options);

  // Runs the prompt (once). Error "cancelled" when options.cancelled said so between batches.
  Status Prefill();
  // Samples one token, emits its text (options.on_text and TakeText), stops at end-of-generation, a stop string,
  // max_new_tokens or the context, and otherwise decodes it. Returns whether another Next() may follow.
  Result<bool> Next();
  bool done() const { return done_; }
  // The text emitted since the last call.
  std::string TakeText() { return std::exchange(fresh_text_, std::string()); }
  const GenerationResult& result() const { return result_; }

 private:
  void Emit(const std::string& s);
  void Finish(const char* reason);
  PrefillFn prefill_;
  DecodeFn decode_;
  RoomFn room_;
  int32_t vocab_;
  const Tokenizer* tokenizer_;
  GenerationOptions options_;
  Sampler sampler_;
  TokenTextStream text_;
  std::vector<int32_t> history_;  // prompt + generated ids (the repetition penalty's)
  std::vector<float> logits_;     // of the last token run
  GenerationResult result_;
  bool prefilled_ = false, done_ = false;
  std::chrono::steady_clock::time_point decode_start_;
  std::string fresh_text_;
};

// Prefills `prompt` into `cache` (which must be empty or hold a prefix of it... here: empty) and generates.
Result<GenerationResult> Generate(Transformer& model, KvCache& cache, const Tokenizer* tokenizer,
                                  const std::vector<int32_t>& prompt, const GenerationOptions& options);

// The same through an engine's sequence (which must be empty or hold a prefix the prompt continues).
Result<GenerationResult> Generate(Engine& engine, Sequence& seq, const std::vector<int32_t>& prompt,
                                  const GenerationOptions& options);
// Prefill of one sequence through the engine, in batches of `batch` tokens (one call when its cache wants it).
// cancelled: polled between batches (see GenerationOptions::cancelled).
Status PrefillSequence(Engine& engine, Sequence& seq, const std::vector<int32_t>& prompt, int64_t batch,
                       const std::function<void(int64_t, int64_t)>& on_progress,
                       const std::function<bool()>& cancelled = {});

// Prefill only: runs the prompt through the model in batches; returns the last token's logits.
Status Prefill(Transformer& model, KvCache& cache, const std::vector<int32_t>& prompt, int64_t batch,
               const std::function<void(int64_t, int64_t)>& on_progress, std::vector<float>* last_logits);

}  // namespace razor
