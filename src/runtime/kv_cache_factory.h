// Builds the KV cache a run asks for: full, razor (RazorAttention, retrieval heads from a head profile)
// or streaming (StreamingLLM sinks + window on every head, at razor's KV budget for the same prompt).
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "core/thread_pool.h"
#include "kv/head_policy.h"
#include "kv/head_profile.h"
#include "kv/kv_cache.h"
#include "runtime/loaded_model.h"

namespace razor {

struct KvCacheOptions {
  KvMode mode = KvMode::kFull;
  RazorParams razor;            // sinks, window, compensation, decode_fold (mode is taken from `mode`)
  std::string profile_path;     // empty: the cached profile beside the model (made on first use)
  bool use_echo_heads = true;   // --no-echo: retrieval = induction heads only
  double induction_ratio = 0;   // > 0: re-select the induction heads from the profile's scores at this ratio
  int64_t streaming_window = 0; // 0: match razor's KV budget for the prompt length
  bool verbose = false;
  std::function<void(const std::string&)> log;  // verbose lines (stderr in the CLI)
  // Progress of profiling on first use, in layer passes (done, total); the library never prints itself.
  std::function<void(int64_t done, int64_t total)> on_progress;
};

// Where a model's profile is cached when no --profile is given: "<model>.razor-profile.json" beside
// the model if that directory is writable, else ${RAZOR_HOME:-~/.cache/razor}/profiles/<file>.
std::string DefaultProfilePath(const LoadedModel& model);

// Loads (and checks against the model) or computes and caches the head profile.
Result<HeadProfile> LoadOrMakeProfile(const LoadedModel& model, const KvCacheOptions& options, ThreadPool& pool);

// capacity: most tokens; prompt_tokens: the prompt length (sets the streaming window at razor's budget).
Result<std::unique_ptr<KvCache>> MakeKvCache(const LoadedModel& model, const KvCacheOptions& options,
                                             int64_t capacity, int64_t prompt_tokens, ThreadPool& pool);

}  // namespace razor
