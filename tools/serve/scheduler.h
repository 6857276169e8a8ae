// Continuous batching: one thread owns the Engine (which is not thread-safe). Connection threads Submit()
// jobs and read their events from a JobChannel; every iteration the scheduler drops cancelled jobs, admits
// waiting ones while the KV pool's unreserved bytes cover their policy's footprint (prompt + max_tokens: a
// razor sequence reserves what its compressed heads will hold, not a full cache),
// then runs ONE Engine::Step over every running sequence: decodes and prompt chunks together.
//
// Prompt work per step is budgeted in (token, layer) pairs, so a long prompt does not stall the running
// decodes: with nothing decoding, prompts run whole; with decodes running, each step gets about as much
// prompt work as the decode part of a step takes (`prefill_share` scales it; PrefillBudget steers it on the
// measured step time), shared first come first served. A full cache's prompt enters in chunks of that many
// tokens / n_layers (at least 16, cut so the step's rows end on a 16-row matmul panel). A compressing
// (RazorAttention / streaming) cache needs each layer to see the whole prompt before it compresses that layer
// (KvCache::wants_single_prefill_call), so its prompt is sliced instead: each step runs the next budget's
// worth of it, layer after layer and, inside a layer, chunk after chunk of rows, its residual stream waiting
// in the sequence between steps (SequenceInput::slice_token_layers). The layer-by-layer memory peak (one
// layer whole, the earlier ones compressed) is kept; the cost is that residual ([N, dim] fp32) and reading
// the sliced layers' weights again in each step. One such prompt at a time is under way (the next waits),
// so at most one layer of one prompt is ever whole. RAZOR_SERVE_TRACE=1 prints each step's time, prompt
// work and budget to stderr.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/engine.h"
#include "serve/latency_histogram.h"
#include "serve/prefill_budget.h"

namespace razor::serve {

struct GenerationJob {
  std::vector<int32_t> prompt;
  int64_t max_tokens = 16;
  SamplerParams sampler;
  std::vector<std::string> stops;
  KvMode kv = KvMode::kFull;
};

struct JobEvent {
  enum class Kind { kText, kFinished, kFailed };
  Kind kind = Kind::kText;
  std::string text;           // kText: a delta; kFinished: the last held-back text (may be empty)
  std::string finish_reason;  // kFinished: "stop" | "length"
  std::string error;          // kFailed
  int64_t prompt_tokens = 0, completion_tokens = 0;  // kFinished

  static JobEvent Text(std::string text) { return {Kind::kText, std::move(text), "", "", 0, 0}; }
  static JobEvent Failed(std::string error) { return {Kind::kFailed, "", "", std::move(error), 0, 0}; }
};

// Scheduler -> one connection thread. Cancel() (the client left) makes the scheduler drop the job.
class JobChannel {
 public:
  void Push(JobEvent event);
  // The next event, or nothing after `wait`.
  std::optional<JobEvent> Pop(std::chrono::milliseconds wait);
  void Cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<JobEvent> events_;
  std::atomic<bool> cancelled_{false};
};

struct SchedulerLimits {
  int max_running = 16;
  int max_queue = 64;
  int64_t prefill_chunk = 256;  // prompt tokens per step (x n_layers: the budget) until the rates are measured
  double prefill_share = 1.0;   // prompt work per step, as a multiple of a decode-only step's time
  int max_stalled_steps = 32;   // steps a sequence may sit out for want of KV blocks before it fails
};

// One running sequence as GET /razor/sequences (the web page's KV panel) shows it.
struct SequenceSnapshot {
  uint64_t id = 0;                         // admission order, from 1
  std::string kv;                          // "full" | "razor" | "streaming"
  int64_t prompt_tokens = 0, prefilled = 0, generated = 0;
  int64_t length = 0;                      // tokens the sequence has seen
  size_t kv_bytes = 0;                     // held now: pool blocks + compensation tokens
  size_t full_bytes = 0;                   // K/V bytes a full cache of the same type would hold at this length
  int64_t heads = 0, heads_compressed = 0;
  int n_layers = 0, n_kv_heads = 0;
  std::vector<int32_t> head_tokens;        // [n_layers * n_kv_heads] (layer-major) tokens each head holds
  std::vector<uint8_t> head_compressed;    // [n_layers * n_kv_heads] 1 = cut to sinks + window
};

struct SchedulerMetrics {
  int64_t running = 0, waiting = 0;
  int64_t heads_compressed = 0;            // over the running sequences
  int64_t prompt_tokens_total = 0, generation_tokens_total = 0;
  size_t kv_bytes_held = 0, kv_bytes_full_equivalent = 0, kv_pool_bytes = 0;
  // From a request's arrival: to its first generated token; between its tokens; to its end.
  LatencyHistogram time_to_first_token, inter_token_latency, e2e_request_latency;
  std::vector<SequenceSnapshot> sequences;  // the running ones, in admission order
};

class Scheduler {
 public:
  // base_kv: the KV options of every sequence (a job sets only the mode).
  Scheduler(Engine& engine, KvCacheOptions base_kv, SchedulerLimits limits);
  ~Scheduler();
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a job; nullptr when the queue is full.
  std::shared_ptr<JobChannel> Submit(GenerationJob job);
  // KV bytes admission reserves for a job: the most its sequence's policy holds over its life, prompt
  // (compressed layer by layer) then max_tokens of decode (Engine::PlannedPeakKvBytes). Any thread.
  Result<size_t> ReservationBytes(const GenerationJob& job) const;
  size_t pool_bytes() const { return pool_bytes_; }
  SchedulerMetrics metrics() const;

 private:
  struct Waiting {
    GenerationJob job;
    std::shared_ptr<JobChannel> channel;
    std::chrono::steady_clock::time_point arrived;
  };
  struct Running;
  void Loop();
  void Admit();
  void StepAll();
  void Advance(Running& r);  // samples the next token after a step that completed its prompt or a decode
  void Finish(Running& r, const char* reason, bool flush);
  void Fail(Running& r, const std::string& message);
  void PublishMetrics();
  SequenceSnapshot Snapshot(const Running& r) const;
  SequenceOptions OptionsFor(const GenerationJob& job) const;

  Engine& engine_;
  KvCacheOptions base_kv_;
  SchedulerLimits limits_;
  size_t pool_bytes_;
  size_t reserved_bytes_ = 0;  // scheduler thread only
  PrefillBudget prefill_budget_;  // scheduler thread only
  uint64_t admitted_ = 0;      // scheduler thread only
  std::vector<std::unique_ptr<Running>> running_;  // scheduler thread only
  int64_t prompt_tokens_total_ = 0, generation_tokens_total_ = 0;
  LatencyHistogram ttft_, itl_, e2e_;  // scheduler thread only; copied by PublishMetrics

  mutable std::mutex mu_;  // waiting_, stop_, metrics_
  std::condition_variable cv_;
  std::deque<Waiting> waiting_;
  bool stop_ = false;
  SchedulerMetrics metrics_;
  std::thread thread_;
};

}  // namespace razor::serve
