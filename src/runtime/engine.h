// The engine: one model (config, weights, tokenizer), its head profile, one backend and one KV block pool,
// built once; sequences drawn from it, each with its own per-head KV cache (blocks from the shared pool), its
// own KV policy and sampler. Every front end (CLI commands, a server, Python) drives sequences through
// Step(); the library never prints (messages and progress reach the front end by callbacks).
//
//   auto engine = Engine::Open(model, {.threads = 2, .kv_type = KvType::kF16});
//   engine->EnsureProfile(kv_options);                  // razor / streaming need it; explicit, may profile
//   auto seq = engine->NewSequence({.kv = kv_options});
//   engine->Step({{seq.get(), prompt_ids}});            // prefill (and any other sequence's decode)
//   seq->logits()                                       // [vocab] of its last token
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kv/head_profile.h"
#include "kv/kv_block_pool.h"
#include "kv/razor_kv_cache.h"
#include "model/transformer.h"
#include "runtime/head_profiler.h"
#include "ops/backend.h"
#include "runtime/kv_cache_factory.h"
#include "runtime/loaded_model.h"
#include "runtime/sampler.h"

namespace razor {

// Where the forward pass runs. kAuto: the GPU when razor is built with CUDA, a device is present and the math
// mode is the default (exact / int8 are CPU kernels); else the CPU.
enum class EngineDevice { kAuto, kCpu, kCuda };
Result<EngineDevice> ParseEngineDevice(std::string_view name);  // "auto" | "cpu" | "cuda"
// Whether this build has the CUDA backend.
bool BuiltWithCuda();
// kAuto resolved for this machine and math mode (kCpu / kCuda stay as they are).
EngineDevice ResolveEngineDevice(EngineDevice d, MathMode math);
// kAuto resolved for this model too: the CPU when the CUDA backend cannot run it (sliding-window attention,
// a head_dim that is not a multiple of 8 or is over 256). kCpu / kCuda stay as they are (the engine refuses a
// model that --device cuda cannot run).
EngineDevice ResolveEngineDevice(EngineDevice d, MathMode math, const ModelConfig& c);
// Device-to-device copy bandwidth of the GPU, bytes/s (read + written), median of several 2 GiB copies; 0
// without a usable GPU.
double MeasureGpuCopyBandwidth();

struct EngineOptions {
  EngineDevice device = EngineDevice::kCpu;
  int threads = 0;                      // 0: every core (CPU threads; the CPU still profiles heads)
  MathMode math = MathMode::kFast;
  KvType kv_type = KvType::kF16;        // storage of every sequence's K/V rows
  size_t kv_pool_bytes = 0;             // capacity of the shared pool; 0: the machine's memory
  int64_t kv_block_tokens = 64;         // tokens per pool block
  int64_t context = 0;                  // most tokens of a sequence; 0: the model's trained context
};

struct SequenceOptions {
  KvCacheOptions kv;           // mode and parameters (kv.kv_type is the engine's)
  int64_t prompt_tokens = 0;   // sets streaming's window at razor's budget for this prompt length
  int64_t capacity = 0;        // most tokens of this sequence (<= the engine's context); 0: the context. Also
                               // what an ALiBi head's span must cover to count as a retrieval head
  SamplerParams sampler;
};

class Engine;

// One stream of tokens: its KV cache (from the engine's pool), the tokens it has seen, its sampler, and the
// logits of its last step. Close() (or destruction) returns its blocks to the pool at once.
class Sequence {
 public:
  ~Sequence();
  Sequence(const Sequence&) = delete;
  Sequence& operator=(const Sequence&) = delete;

  KvCache& cache() { return *cache_; }
  const RazorKvCache& kv() const { return *cache_; }
  RazorKvStats kv_stats() const { return cache_->stats(); }
  const std::vector<int32_t>& tokens() const { return tokens_; }
  int64_t length() const { return cache_->sequence_length(); }
  const KvHeadPolicy& policy() const { return cache_->policy(); }
  // Logits of the last step: [vocab] for its last token, or [n, vocab] when that step asked for all.
  const std::vector<float>& logits() const { return logits_; }
  // The sampler's choice from the last token's logits; -1 when the sequence has none (no step ran for it).
  int32_t Sample() {
    if (logits_.size() < static_cast<size_t>(vocab_)) return -1;
    return sampler_.Sample(logits_.data() + logits_.size() - vocab_, vocab_, tokens_);
  }
  // Frees every block and forgets the tokens (the sequence can take a new prompt).
  void Reset();
  // True after a failed step: its cache may hold partial layers; Reset() before reusing it.
  bool failed() const { return failed_; }
  // A sliced prompt is under way (SequenceInput::slice_token_layers).
  bool prefill_pending() const { return prefill_.next_layer > 0 || prefill_.next_row > 0; }

 private:
  friend class Engine;
  Sequence(std::unique_ptr<RazorKvCache> cache, const SamplerParams& sampler, int32_t vocab)
      : cache_(std::move(cache)), sampler_(sampler), vocab_(vocab) {}
  std::unique_ptr<RazorKvCache> cache_;
  Sampler sampler_;
  int32_t vocab_;
  std::vector<int32_t> tokens_;
  std::vector<float> logits_;
  LayerProgress prefill_;  // a layer-sliced prompt under way
  bool failed_ = false;
};

// A sequence's part of one step: new tokens (a prompt, a prompt chunk or one decode token).
struct SequenceInput {
  Sequence* sequence = nullptr;
  std::vector<int32_t> tokens;
  bool all_logits = false;
  // The tokens begin a prompt (a compressing cache compresses each layer once it holds all of it).
  // Default: true when the sequence is empty.
  std::optional<bool> begins_prompt;
  // With begins_prompt: the whole prompt's length when it comes in several steps (default: these tokens).
  std::optional<int64_t> prompt_tokens;
  // Sliced prefill of a compressing (razor / streaming) prompt: run only `slice_token_layers` (token, layer)
  // pairs of it in this step (a whole layer of an N-token prompt is N; 0: all). Its residual stream waits in
  // the sequence; send the same tokens again every step until prompt_pending comes back false (then its
  // logits are set). Decodes of other sequences run between, so a long prompt does not stall them, and each
  // layer is still compressed as soon as it holds the whole prompt (Transformer::StepSlice).
  int64_t slice_token_layers = 0;
  bool prompt_pending = false;  // out: the prompt has work left (no logits yet)
  // Out: this input's own outcome. A decode whose blocks the pool cannot give gets "KV pool exhausted" here
  // and sits the step out (its sequence untouched, still usable); the others run.
  Status status;
};

class Engine {
 public:
  static Result<std::unique_ptr<Engine>> Open(std::shared_ptr<LoadedModel> model, const EngineOptions& options);
  ~Engine();

  const LoadedModel& model() const { return *model_; }
  const ModelConfig& config() const { return model_->config; }
  const Tokenizer* tokenizer() const { return model_->tokenizer.get(); }
  const EngineOptions& options() const { return options_; }
  int64_t context() const { return context_; }
  Backend& backend() { return *backend_; }
  ThreadPool& thread_pool() { return *pool_; }
  Transformer& transformer() { return *transformer_; }
  KvBlockPool& kv_pool() { return *kv_pool_; }
  // K/V bytes one token takes in a full cache of the engine's storage type (every layer and KV head).
  size_t full_kv_bytes_per_token() const;

  // The head profile razor (and budget-matched streaming) sequences need: loaded from kv.profile_path or the
  // model's cached profile, or made now (minutes; progress by callback). Once per engine.
  Status EnsureProfile(const KvCacheOptions& kv, const std::function<void(int64_t, int64_t)>& on_progress = {});
  const HeadProfile* profile() const { return profile_ ? &*profile_ : nullptr; }
  // Uses this profile for razor / streaming sequences from now on (a synthetic one, or one made elsewhere);
  // an error when it was made for another model (shapes or tensor table).
  Status SetProfile(HeadProfile profile);
  // Profiles the model's retrieval heads now (razor profile): on the CPU, on the engine's thread pool and math
  // mode (the profiler reads every layer's attention, which only the CPU backend exposes). Progress by
  // options.on_progress. Does not install the result (EnsureProfile loads or makes the cached one).
  Result<HeadProfile> ProfileHeads(const HeadProfilerOptions& options);

  // A new sequence (no blocks yet). Errors on a policy the profile cannot serve (EnsureProfile not called).
  Result<std::unique_ptr<Sequence>> NewSequence(const SequenceOptions& options);
  // The KV policy such a sequence gets (its per-head rules for options.prompt_tokens).
  Result<KvHeadPolicy> PolicyFor(const SequenceOptions& options) const;
  // Most KV pool bytes such a sequence holds: its prompt of options.prompt_tokens (one prefill, compressed
  // layer by layer) then decode to total_tokens (KvHeadPolicy::PlannedPeakBlocks). Safe from any thread
  // while the profile does not change.
  Result<size_t> PlannedPeakKvBytes(const SequenceOptions& options, int64_t total_tokens) const;

  // One forward step over the inputs (each sequence at most once); each run sequence's logits() are set.
  //  - an input that is invalid by itself (no tokens, a token outside the vocabulary, past the context) fails
  //    the whole step before any work: nothing is touched;
  //  - decodes and full-cache prompts get their blocks before any work: one the pool cannot serve gets its own
  //    error in `status` and is left out, untouched; the step runs the rest (Ok when at least one input ran);
  //  - a prompt of a compressing cache cannot take its blocks up front (its layers are compressed one at a
  //    time, so it never holds them all): such prompts run after the others, in a second forward pass, and one
  //    that exhausts the pool part-way fails only them (marked failed: Reset() before reuse). Admission by KV
  //    budget (the server's) keeps this from happening.
  Status Step(std::vector<SequenceInput>& inputs);

 private:
  Engine() = default;
  std::shared_ptr<LoadedModel> model_;
  EngineOptions options_;
  int64_t context_ = 0;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<Backend> backend_;
  std::unique_ptr<Transformer> transformer_;
  std::shared_ptr<KvBlockPool> kv_pool_;
  std::optional<HeadProfile> profile_;
  std::vector<float> step_logits_;
};

}  // namespace razor
