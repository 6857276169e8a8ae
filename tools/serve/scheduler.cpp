#include "serve/scheduler.h"

#include <cstdlib>

#include <algorithm>

#include <fmt/format.h>

#include "runtime/token_text_stream.h"

namespace razor::serve {

void JobChannel::Push(JobEvent event) {
  {
    std::lock_guard<std::mutex> l(mu_);
    events_.push_back(std::move(event));
  }
  cv_.notify_one();
}

std::optional<JobEvent> JobChannel::Pop(std::chrono::milliseconds wait) {
  std::unique_lock<std::mutex> l(mu_);
  if (!cv_.wait_for(l, wait, [&] { return !events_.empty(); })) return std::nullopt;
  JobEvent e = std::move(events_.front());
  events_.pop_front();
  return e;
}

struct Scheduler::Running {
  Running(GenerationJob j, std::shared_ptr<JobChannel> c, std::unique_ptr<Sequence> s, size_t reserved,
          const Tokenizer* tokenizer, std::chrono::steady_clock::time_point arrived)
      : job(std::move(j)), channel(std::move(c)), seq(std::move(s)), reserved(reserved),
        text(tokenizer, job.stops), arrived(arrived), last_token(arrived) {}
  GenerationJob job;
  std::shared_ptr<JobChannel> channel;
  std::unique_ptr<Sequence> seq;
  size_t reserved;
  uint64_t id = 0;
  TokenTextStream text;
  int64_t prefilled = 0;  // prompt tokens already stepped
  int64_t slice_given = 0;  // sliced prompt: (token, layer) pairs handed to the engine so far
  int32_t next = -1;      // the sampled token its next decode feeds
  int64_t generated = 0;
  int stalls = 0;
  bool done = false;
  std::chrono::steady_clock::time_point arrived, last_token;
};

namespace {
double SecondsSince(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
}  // namespace

Scheduler::Scheduler(Engine& engine, KvCacheOptions base_kv, SchedulerLimits limits)
    : engine_(engine), base_kv_(std::move(base_kv)), limits_(limits),
      pool_bytes_(engine.kv_pool().capacity_bytes()),
      prefill_budget_(engine.config().n_layers, limits.prefill_chunk, limits.prefill_share) {
  metrics_.kv_pool_bytes = pool_bytes_;  // before the first step, too
  thread_ = std::thread([this] { Loop(); });
}

Scheduler::~Scheduler() {
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

SequenceOptions Scheduler::OptionsFor(const GenerationJob& job) const {
  SequenceOptions so;
  so.kv = base_kv_;
  so.kv.mode = job.kv;
  so.prompt_tokens = static_cast<int64_t>(job.prompt.size());
  so.sampler = job.sampler;
  return so;
}

Result<size_t> Scheduler::ReservationBytes(const GenerationJob& job) const {
  return engine_.PlannedPeakKvBytes(OptionsFor(job), static_cast<int64_t>(job.prompt.size()) + job.max_tokens);
}

std::shared_ptr<JobChannel> Scheduler::Submit(GenerationJob job) {
  auto channel = std::make_shared<JobChannel>();
  {
    std::lock_guard<std::mutex> l(mu_);
    if (static_cast<int>(waiting_.size()) >= limits_.max_queue) return nullptr;
    waiting_.push_back({std::move(job), channel, std::chrono::steady_clock::now()});
    metrics_.waiting = static_cast<int64_t>(waiting_.size());
  }
  cv_.notify_all();
  return channel;
}

SchedulerMetrics Scheduler::metrics() const {
  std::lock_guard<std::mutex> l(mu_);
  return metrics_;
}

void Scheduler::Loop() {
  while (true) {
    {
      std::unique_lock<std::mutex> l(mu_);
      cv_.wait(l, [&] { return stop_ || !waiting_.empty() || !running_.empty(); });
      if (stop_) return;
    }
    // A cancelled job's sequence is destroyed here, at once: its blocks go back to the pool.
    for (auto& r : running_)
      if (r->channel->cancelled()) r->done = true;
    Admit();
    StepAll();
    std::erase_if(running_, [&](const std::unique_ptr<Running>& r) {
      if (r->done) reserved_bytes_ -= r->reserved;
      return r->done;
    });
    PublishMetrics();
  }
}

void Scheduler::Admit() {
  while (static_cast<int>(running_.size()) < limits_.max_running) {
    Waiting w;
    size_t need = 0;
    {
      std::lock_guard<std::mutex> l(mu_);
      if (waiting_.empty()) return;
      Waiting& front = waiting_.front();
      auto planned = ReservationBytes(front.job);
      need = planned ? *planned : 0;  // an error here is NewSequence's below, reported to the client
      // First come, first served: the head waits for memory (later jobs do not overtake it).
      if (!front.channel->cancelled() && reserved_bytes_ + need > pool_bytes_) return;
      w = std::move(front);
      waiting_.pop_front();
    }
    if (w.channel->cancelled()) continue;
    auto seq = engine_.NewSequence(OptionsFor(w.job));
    if (!seq) {
      w.channel->Push(JobEvent::Failed(seq.error()));
      continue;
    }
    reserved_bytes_ += need;
    running_.push_back(
        std::make_unique<Running>(std::move(w.job), w.channel, std::move(*seq), need, engine_.tokenizer(), w.arrived));
    running_.back()->id = ++admitted_;
  }
}

namespace {
// The batched forward's matmuls take rows in panels of 16 (the CPU GEMM; the GPU's tensor-core GEMV takes up to
// 16 rows): a step of 20 rows costs about as much as one of 32. Measured with `razor bench -m smollm2-135m -t 2
// --kv full -p 256 -n 8 --batch 12,16,20` on a 2-core box: 34.8, 44.4 and 69.2 ms a step.
constexpr int64_t kRowPanel = 16;
}  // namespace

void Scheduler::StepAll() {
  std::vector<SequenceInput> inputs;
  std::vector<Running*> owners;
  bool slicing = false;  // one compressing prompt at a time is under way: one layer of one prompt whole
  const int64_t n_layers = engine_.config().n_layers;
  int64_t decodes = 0;
  for (const auto& rp : running_)
    if (!rp->done && rp->prefilled >= static_cast<int64_t>(rp->job.prompt.size())) ++decodes;
  const int64_t budget = prefill_budget_.Next(decodes > 0);  // (token, layer) pairs of prompt work; 0: unlimited
  int64_t left = budget > 0 ? budget : INT64_MAX;
  int64_t prompt_work = 0;
  bool budget_bound = false;  // some prompt got less work this step than it had left
  int64_t step_rows = decodes;  // rows of the batched forward so far: one per decode, one per chunk token
  for (auto& rp : running_) {
    Running& r = *rp;
    if (r.done) continue;
    SequenceInput in;
    in.sequence = r.seq.get();
    const int64_t n = static_cast<int64_t>(r.job.prompt.size());
    if (r.prefilled < n && left <= 0) {  // the step's prompt budget is spent: next step
      budget_bound = true;
      continue;
    }
    if (r.prefilled < n && r.seq->cache().wants_single_prefill_call()) {
      // Sliced: the whole prompt, layer after layer, `give` (token, layer) pairs this step.
      if (slicing) continue;  // waits for the one before it
      slicing = true;
      const int64_t remaining = std::max<int64_t>(1, n * n_layers - r.slice_given);
      const int64_t give = std::min(left, remaining);
      budget_bound |= give < remaining;
      in.tokens = r.job.prompt;
      in.begins_prompt = true;
      in.slice_token_layers = give >= remaining && r.slice_given == 0 ? 0 : give;
      r.slice_given += give;
      left -= give;
      prompt_work += give;
    } else if (r.prefilled < n) {
      const int64_t chunk = std::max<int64_t>(1, std::min(n - r.prefilled, left / n_layers));
      int64_t tokens = std::max<int64_t>(std::min<int64_t>(16, n - r.prefilled), chunk);
      // Beside decodes, a chunk that is not its prompt's last is cut so the step's rows end on a whole panel.
      const int64_t rows_after = step_rows + tokens;
      if (budget > 0 && r.prefilled + tokens < n && rows_after > kRowPanel) {
        const int64_t cut = rows_after / kRowPanel * kRowPanel - step_rows;
        if (cut >= 1) tokens = cut;
      }
      const int64_t end = std::min(n, r.prefilled + tokens);
      step_rows += end - r.prefilled;
      budget_bound |= end < n;
      in.tokens.assign(r.job.prompt.begin() + r.prefilled, r.job.prompt.begin() + end);
      in.begins_prompt = r.prefilled == 0;  // the whole prompt announced once, though it comes in chunks
      in.prompt_tokens = n;
      left -= (end - r.prefilled) * n_layers;
      prompt_work += (end - r.prefilled) * n_layers;
    } else {
      in.tokens = {r.next};
    }
    inputs.push_back(std::move(in));
    owners.push_back(&r);
  }
  if (inputs.empty()) return;
  const auto t0 = std::chrono::steady_clock::now();
  const Status step = engine_.Step(inputs);
  const double seconds = SecondsSince(t0);
  if (step.ok()) prefill_budget_.Observe(seconds, prompt_work, decodes, budget_bound);
  static const bool trace = std::getenv("RAZOR_SERVE_TRACE") != nullptr;
  if (trace)
    fmt::print(stderr, "step {:.1f} ms, prompt work {} of budget {} (bound {}), decodes {}, decode avg {:.1f} ms\n",
               seconds * 1e3, prompt_work, budget, budget_bound, decodes,
               prefill_budget_.decode_step_seconds() * 1e3);
  for (size_t i = 0; i < inputs.size(); ++i) {
    Running& r = *owners[i];
    const SequenceInput& in = inputs[i];
    if (in.status.ok() && !step.ok()) {  // the whole step was refused: every input fails with it
      Fail(r, step.message());
      continue;
    }
    if (!in.status.ok()) {
      if (r.seq->failed()) Fail(r, in.status.message());
      else if (++r.stalls > limits_.max_stalled_steps)
        Fail(r, fmt::format("{} for {} steps in a row; try again later", in.status.message(), r.stalls));
      continue;
    }
    r.stalls = 0;
    if (in.prompt_pending) continue;  // a sliced prompt with work left
    if (r.prefilled < static_cast<int64_t>(r.job.prompt.size())) {
      r.prefilled += static_cast<int64_t>(in.tokens.size());
      prompt_tokens_total_ += static_cast<int64_t>(in.tokens.size());
      if (r.prefilled < static_cast<int64_t>(r.job.prompt.size())) continue;
    }
    Advance(r);
  }
}

void Scheduler::Advance(Running& r) {
  const int32_t id = r.seq->Sample();
  const Tokenizer* tokenizer = engine_.tokenizer();
  if (tokenizer != nullptr && tokenizer->IsEndOfGeneration(id)) return Finish(r, "stop", true);
  ++r.generated;
  ++generation_tokens_total_;
  (r.generated == 1 ? ttft_ : itl_).Observe(SecondsSince(r.generated == 1 ? r.arrived : r.last_token));
  r.last_token = std::chrono::steady_clock::now();
  bool stopped = false;
  std::string delta = r.text.Push(id, &stopped);
  if (!delta.empty()) r.channel->Push(JobEvent::Text(std::move(delta)));
  if (stopped) return Finish(r, "stop", false);
  if (r.generated >= r.job.max_tokens || r.seq->length() + 1 > r.seq->cache().capacity())
    return Finish(r, "length", true);
  r.next = id;
}

void Scheduler::Finish(Running& r, const char* reason, bool flush) {
  JobEvent e;
  e.kind = JobEvent::Kind::kFinished;
  e.finish_reason = reason;
  if (flush) e.text = r.text.Finish();
  e.prompt_tokens = static_cast<int64_t>(r.job.prompt.size());
  e.completion_tokens = r.generated;
  r.channel->Push(std::move(e));
  r.done = true;
  e2e_.Observe(SecondsSince(r.arrived));
}

void Scheduler::Fail(Running& r, const std::string& message) {
  r.channel->Push(JobEvent::Failed(message));
  r.done = true;
}

SequenceSnapshot Scheduler::Snapshot(const Running& r) const {
  const RazorKvCache& cache = r.seq->kv();
  const RazorKvStats st = cache.stats();
  SequenceSnapshot s;
  s.id = r.id;
  s.kv = KvModeName(r.job.kv);
  s.prompt_tokens = static_cast<int64_t>(r.job.prompt.size());
  s.prefilled = r.prefilled;
  s.generated = r.generated;
  s.length = r.seq->length();
  s.kv_bytes = cache.bytes_allocated();
  s.full_bytes = st.full_cache_bytes;
  s.heads = st.heads;
  s.heads_compressed = st.heads_compressed;
  s.n_layers = cache.policy().n_layers();
  s.n_kv_heads = cache.policy().n_kv_heads();
  for (int l = 0; l < s.n_layers; ++l)
    for (int h = 0; h < s.n_kv_heads; ++h) {
      const KvHeadView v = cache.View(l, h);
      s.head_tokens.push_back(static_cast<int32_t>(v.len));
      s.head_compressed.push_back(v.comp_count > 0 || v.len < s.length ? 1 : 0);
    }
  return s;
}

void Scheduler::PublishMetrics() {
  SchedulerMetrics m;
  for (const auto& r : running_) {
    m.kv_bytes_full_equivalent += r->seq->kv_stats().full_cache_bytes;
    m.sequences.push_back(Snapshot(*r));
    m.heads_compressed += m.sequences.back().heads_compressed;
  }
  m.running = static_cast<int64_t>(running_.size());
  m.prompt_tokens_total = prompt_tokens_total_;
  m.generation_tokens_total = generation_tokens_total_;
  m.kv_bytes_held = engine_.kv_pool().bytes_in_use();
  m.kv_pool_bytes = pool_bytes_;
  m.time_to_first_token = ttft_;
  m.inter_token_latency = itl_;
  m.e2e_request_latency = e2e_;
  std::lock_guard<std::mutex> l(mu_);
  m.waiting = static_cast<int64_t>(waiting_.size());
  metrics_ = m;
}

}  // namespace razor::serve
