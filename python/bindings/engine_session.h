// The engine as the Python package sees it: one model and one Engine, built from razor.LLM's arguments, and
// the calls the package makes (tokenize, logits, generations, the head profile, KV statistics). Plain C++:
// errors are Status / Result, no Python types; module.cpp binds it, converts arrays and handles the GIL.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "runtime/engine.h"
#include "runtime/generator.h"

namespace razor::py {

// razor.LLM(...)'s arguments after the Python side resolved the model name to a path.
struct SessionOptions {
  std::string model_path;
  std::string device = "cpu";      // "cpu" | "cuda" | "auto"
  std::string kv = "razor";        // "full" | "razor" | "streaming"
  std::string kv_type = "f16";     // "f16" | "bf16" | "f32"
  int threads = 0;                 // 0: every core
  int64_t context = 0;             // 0: the model's trained context
  int64_t kv_pool_mib = 0;         // 0: the machine's memory
  bool exact = false;              // reference kernels (fp32 weights and accumulation; CPU only)
  // RazorAttention / streaming parameters (RAZOR_ATTENTION.md; the CLI's --sinks ... flags).
  int64_t sinks = 4;
  int64_t window_min = 4000;
  double window_frac = 0.2;
  bool compensation = true;
  bool echo = true;
  double induction_ratio = 0;      // 0: the profile's own
  bool decode_fold = false;
  int64_t streaming_window = 0;    // 0: razor's budget for the prompt
  std::string profile_path;        // "": the model's cached profile (made on first use)
};

struct SamplingOptions {
  int max_tokens = 128;
  SamplerParams sampler;
  std::vector<std::string> stop;
  bool stop_at_eog = true;
};

// KV statistics of one sequence after its prompt (and decode so far).
struct KvReport {
  RazorKvStats stats;
  std::string mode;
  int64_t sequence_tokens = 0;
  size_t bytes = 0;                          // K/V blocks + compensation tokens held
  size_t full_bytes = 0;                     // a full cache of the same type and block size at this length
  int n_layers = 0, n_kv_heads = 0;
  std::vector<int64_t> head_tokens;          // [n_layers * n_kv_heads] tokens each head keeps
  std::vector<int64_t> head_bytes;           // [n_layers * n_kv_heads] pool blocks held + compensation token
  std::vector<uint8_t> head_compressed;      // [n_layers * n_kv_heads] 1: cut to sinks + window
};

class Session;

// One generation on a sequence of its own (so two streams may interleave): Prefill, then Next per token.
class Generation {
 public:
  // cancelled: the cell gen's options poll (GenerationOptions::cancelled); Next() fills it.
  Generation(Session& session, std::unique_ptr<Sequence> seq, TokenGenerator gen,
             std::shared_ptr<std::function<bool()>> cancelled);
  // Runs the prompt on the first call, then one token; returns the text now safe to show ("" while a UTF-8
  // character or a possible stop string is held back), or nullopt once the generation is over.
  Result<std::optional<std::string>> Next(const std::function<bool()>& cancelled);
  const GenerationResult& result() const { return gen_.result(); }
  KvReport kv() const;
  bool done() const { return gen_.done(); }

 private:
  Session& session_;
  std::unique_ptr<Sequence> seq_;
  TokenGenerator gen_;
  bool started_ = false;
  std::shared_ptr<std::function<bool()>> cancelled_;  // what gen_'s options poll: the current Next's check
};

class Session {
 public:
  static Result<std::unique_ptr<Session>> Open(const SessionOptions& options);

  const SessionOptions& options() const { return options_; }
  const ModelConfig& config() const { return engine_->config(); }
  const LoadedModel& model() const { return *model_; }
  Engine& engine() { return *engine_; }
  std::string backend_name() { return engine_->backend().Describe(); }

  Result<std::vector<int32_t>> Tokenize(const std::string& text, bool add_bos, bool parse_special) const;
  Result<std::string> Detokenize(const std::vector<int32_t>& ids) const;
  // messages: (role, content) pairs. The prompt text in the model's chat format, ending with the assistant header.
  Result<std::string> ApplyChat(const std::vector<std::pair<std::string, std::string>>& messages) const;

  // Teacher-forced logits of every position: [ids.size(), vocab] row-major, on a fresh sequence of this
  // session's KV policy (a compressing cache keeps the prompt whole until it is in, so these are the full
  // cache's logits), in one forward call.
  Result<std::vector<float>> Logits(const std::vector<int32_t>& ids, const std::function<bool()>& cancelled);

  // The log-probability of each continuation token after the context, under this session's KV policy: the
  // context runs as a prompt (a compressing cache compresses it), then the continuation is teacher-forced in
  // one step on that cache, as decoded tokens would be. logprob[i] = log p(continuation[i] | context,
  // continuation[:i]); greedy[i]: continuation[i] is the argmax there. Empty context: an error (the caller
  // puts BOS / EOS first, as lm-evaluation-harness does).
  struct Scored {
    std::vector<double> logprob;
    std::vector<uint8_t> greedy;
  };
  Result<Scored> ScoreContinuation(const std::vector<int32_t>& context, const std::vector<int32_t>& continuation,
                                   const std::function<bool()>& cancelled);

  // A generation of the token ids (a prompt), on a sequence of its own; seed and sampling from `s`.
  Result<std::unique_ptr<Generation>> Generate(const std::vector<int32_t>& prompt, const SamplingOptions& s);

  // The profile razor / streaming sequences use (a copy): loaded or made now (minutes; progress by callback,
  // called with the step lock held). Both hold the step lock: the profiler runs on the engine's thread pool.
  Result<HeadProfile> EnsureProfile(const std::function<void(int64_t, int64_t)>& on_progress);
  // A new profile, made now with these settings, installed for this session's sequences (a copy).
  Result<HeadProfile> MakeProfile(const HeadProfilerOptions& o);

  // The KV statistics of the last generation's sequence (after its prompt), or an error when none ran yet.
  Result<KvReport> LastKv();

  // Engine::Step is not re-entrant: every step of every sequence of this session holds this lock.
  std::mutex& step_mutex() { return step_mutex_; }

 private:
  friend class Generation;
  Session() = default;
  KvCacheOptions KvOptions() const;
  // Err when `tokens` exceed the engine's context.
  Status CheckFits(size_t tokens) const;
  // A sequence of this session's KV policy for a prompt of prompt_tokens (the profile loaded or made first).
  // The caller holds step_mutex_ (the engine's pool and profile are not thread-safe).
  Result<std::unique_ptr<Sequence>> NewSequenceLocked(int64_t prompt_tokens, const SamplerParams& sampler);
  SessionOptions options_;
  std::shared_ptr<LoadedModel> model_;
  std::unique_ptr<Engine> engine_;
  std::mutex step_mutex_;
  std::optional<KvReport> last_kv_;
};

// The statistics of a sequence's cache (any mode).
KvReport ReportKv(const Sequence& seq, const ModelConfig& config);

}  // namespace razor::py
