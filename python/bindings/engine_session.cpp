#include "engine_session.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "core/thread_pool.h"
#include "kv/head_policy.h"
#include "kv/kv_type.h"

namespace razor::py {

Result<std::unique_ptr<Session>> Session::Open(const SessionOptions& o) {
  std::unique_ptr<Session> s(new Session());
  s->options_ = o;
  RAZOR_ASSIGN_OR_RETURN(KvMode mode, ParseKvMode(o.kv));
  (void)mode;
  RAZOR_ASSIGN_OR_RETURN(KvType kv_type, ParseKvType(o.kv_type));
  RAZOR_ASSIGN_OR_RETURN(EngineDevice device, ParseEngineDevice(o.device));
  if (o.threads < 0 || o.threads > ThreadPool::UsableCpuCount())
    return Err(fmt::format("threads={}: expected 0 (every core) to {} (the CPUs this process may use)", o.threads,
                           ThreadPool::UsableCpuCount()));
  if (o.kv_pool_mib < 0 || static_cast<uint64_t>(o.kv_pool_mib) > (uint64_t{1} << 40))
    return Err(fmt::format("kv_pool_mib={}: expected 0 (the machine's memory) to 2^40", o.kv_pool_mib));
  if (o.sinks < 0) return Err(fmt::format("sinks={}: expected 0 or more", o.sinks));
  if (o.window_min < 1) return Err(fmt::format("window_min={}: expected 1 or more", o.window_min));
  if (!(o.window_frac >= 0 && o.window_frac <= 1)) return Err(fmt::format("window_frac={}: expected 0 to 1", o.window_frac));
  if (!(o.induction_ratio >= 0 && o.induction_ratio <= 1))
    return Err(fmt::format("induction_ratio={}: expected 0 to 1", o.induction_ratio));
  if (o.streaming_window < 0) return Err(fmt::format("streaming_window={}: expected 0 or more", o.streaming_window));
  RAZOR_ASSIGN_OR_RETURN(s->model_, LoadModel(o.model_path));
  if (!s->model_->tokenizer) return Err(o.model_path + ": the model has no tokenizer");
  EngineOptions eo;
  eo.device = device;
  eo.threads = o.threads;
  eo.math = o.exact ? MathMode::kExact : MathMode::kFast;
  eo.kv_type = kv_type;
  eo.kv_pool_bytes = static_cast<size_t>(o.kv_pool_mib) << 20;
  eo.context = o.context;
  RAZOR_ASSIGN_OR_RETURN(s->engine_, Engine::Open(s->model_, eo));
  return s;
}

KvCacheOptions Session::KvOptions() const {
  KvCacheOptions kv;
  Result<KvMode> mode = ParseKvMode(options_.kv);  // checked in Open
  kv.mode = mode.ok() ? *mode : KvMode::kFull;
  kv.razor.sinks = options_.sinks;
  kv.razor.window_min = options_.window_min;
  kv.razor.window_frac = options_.window_frac;
  kv.razor.compensation = options_.compensation;
  kv.razor.decode_fold = options_.decode_fold;
  kv.use_echo_heads = options_.echo;
  kv.induction_ratio = options_.induction_ratio;
  kv.streaming_window = options_.streaming_window;
  kv.profile_path = options_.profile_path;
  return kv;
}

Result<std::vector<int32_t>> Session::Tokenize(const std::string& text, bool add_bos, bool parse_special) const {
  return model_->tokenizer->Encode(text, add_bos, parse_special);
}

Result<std::string> Session::Detokenize(const std::vector<int32_t>& ids) const {
  const int32_t vocab = model_->tokenizer->vocab_size();
  for (int32_t id : ids)
    if (id < 0 || id >= vocab) return Err(fmt::format("token id {} out of range [0, {})", id, vocab));
  return model_->tokenizer->Decode(ids);
}

Result<std::string> Session::ApplyChat(const std::vector<std::pair<std::string, std::string>>& messages) const {
  if (messages.empty()) return Err("messages is empty: give at least one {\"role\": ..., \"content\": ...}");
  std::vector<ChatMessage> msgs;
  for (const auto& [role, content] : messages) {
    if (role != "system" && role != "user" && role != "assistant")
      return Err(fmt::format("message role '{}': expected system, user or assistant", ForMessage(role, 40)));
    msgs.push_back({role, content});
  }
  return model_->tokenizer->ApplyChatTemplate(msgs, /*add_generation_prompt=*/true);
}

Result<HeadProfile> Session::EnsureProfile(const std::function<void(int64_t, int64_t)>& on_progress) {
  KvCacheOptions kv = KvOptions();
  kv.mode = KvMode::kRazor;  // profile() asks for it whatever this session's mode
  std::lock_guard<std::mutex> lock(step_mutex_);  // the profiler runs on the engine's thread pool, as Step does
  RAZOR_RETURN_IF_ERROR(engine_->EnsureProfile(kv, on_progress));
  return *engine_->profile();
}

Result<HeadProfile> Session::MakeProfile(const HeadProfilerOptions& o) {
  std::lock_guard<std::mutex> lock(step_mutex_);
  RAZOR_ASSIGN_OR_RETURN(HeadProfile p, engine_->ProfileHeads(o));
  RAZOR_RETURN_IF_ERROR(engine_->SetProfile(std::move(p)));
  return *engine_->profile();
}

Status Session::CheckFits(size_t tokens) const {
  if (static_cast<int64_t>(tokens) > engine_->context())
    return Err(fmt::format("{} tokens are longer than the context of {} (raise ctx)", tokens, engine_->context()));
  return Status::Ok();
}

Result<std::unique_ptr<Sequence>> Session::NewSequenceLocked(int64_t prompt_tokens, const SamplerParams& sampler) {
  if (KvOptionsNeedProfile(KvOptions())) RAZOR_RETURN_IF_ERROR(engine_->EnsureProfile(KvOptions()));
  SequenceOptions so;
  so.kv = KvOptions();
  so.prompt_tokens = prompt_tokens;
  so.sampler = sampler;
  return engine_->NewSequence(so);
}

Result<std::vector<float>> Session::Logits(const std::vector<int32_t>& ids, const std::function<bool()>& cancelled) {
  if (ids.empty()) return Err("no token ids: logits needs at least one");
  RAZOR_RETURN_IF_ERROR(CheckFits(ids.size()));
  std::lock_guard<std::mutex> lock(step_mutex_);
  RAZOR_ASSIGN_OR_RETURN(std::unique_ptr<Sequence> seq, NewSequenceLocked(static_cast<int64_t>(ids.size()), {}));
  if (cancelled && cancelled()) return Err("cancelled");
  std::vector<SequenceInput> in(1);
  in[0].sequence = seq.get();
  in[0].tokens = ids;
  in[0].all_logits = true;
  RAZOR_RETURN_IF_ERROR(engine_->Step(in));
  RAZOR_RETURN_IF_ERROR(in[0].status);
  return seq->logits();
}

namespace {

// log softmax(row)[token], and whether token is the row's argmax (ties: the lowest id, as greedy sampling).
void ScoreRow(const float* row, size_t vocab, int32_t token, double* logprob, uint8_t* greedy) {
  size_t best = 0;
  for (size_t v = 1; v < vocab; ++v)
    if (row[v] > row[best]) best = v;
  double sum = 0;
  for (size_t v = 0; v < vocab; ++v) sum += std::exp(double(row[v]) - double(row[best]));
  *logprob = double(row[token]) - double(row[best]) - std::log(sum);
  *greedy = best == static_cast<size_t>(token);
}

}  // namespace

Result<Session::Scored> Session::ScoreContinuation(const std::vector<int32_t>& context,
                                                   const std::vector<int32_t>& continuation,
                                                   const std::function<bool()>& cancelled) {
  if (context.empty()) return Err("an empty context: put BOS (or EOS) first");
  if (continuation.empty()) return Err("an empty continuation: nothing to score");
  const int32_t vocab_size = config().vocab_size;
  for (int32_t t : continuation)  // the last is scored, never stepped: the engine's own check does not see it
    if (t < 0 || t >= vocab_size) return Err(fmt::format("token id {} out of range [0, {})", t, vocab_size));
  // The last continuation token is scored, never stepped.
  RAZOR_RETURN_IF_ERROR(CheckFits(context.size() + continuation.size() - 1));
  std::lock_guard<std::mutex> lock(step_mutex_);
  RAZOR_ASSIGN_OR_RETURN(std::unique_ptr<Sequence> seq, NewSequenceLocked(static_cast<int64_t>(context.size()), {}));
  const size_t vocab = config().vocab_size;
  Scored out;
  out.logprob.resize(continuation.size());
  out.greedy.resize(continuation.size());
  // Steps: the context as a prompt (its last row predicts continuation[0]), then continuation[:-1], every row,
  // in one step, or a token per step when the cache folds its window after each step (decode_fold), so each
  // token sees the window a decoded token would.
  const size_t chunk = options_.decode_fold ? 1 : std::max<size_t>(1, continuation.size() - 1);
  std::vector<SequenceInput> in(1);
  in[0].sequence = seq.get();
  size_t scored = 0;  // continuation tokens scored so far
  for (bool prompt = true; scored < continuation.size(); prompt = false) {
    if (cancelled && cancelled()) return Err("cancelled");
    const size_t n = prompt ? context.size() : std::min(chunk, continuation.size() - scored);
    if (prompt) in[0].tokens = context;
    else in[0].tokens.assign(continuation.begin() + (scored - 1), continuation.begin() + (scored - 1 + n));
    in[0].all_logits = !prompt;
    in[0].begins_prompt = prompt;
    RAZOR_RETURN_IF_ERROR(engine_->Step(in));
    RAZOR_RETURN_IF_ERROR(in[0].status);
    const std::vector<float>& logits = seq->logits();
    const size_t rows = prompt ? 1 : n;  // a prompt step returns its last row only
    for (size_t r = 0; r < rows; ++r, ++scored)
      ScoreRow(logits.data() + r * vocab, vocab, continuation[scored], &out.logprob[scored], &out.greedy[scored]);
  }
  return out;
}

namespace {

// The CLI's ranges (razor run --temp / --top-k / --top-p / --min-p / --repeat-penalty); NaN fails every check.
Status CheckSampler(const SamplerParams& p) {
  auto in = [](double v, double lo, double hi) { return v >= lo && v <= hi; };
  if (!in(p.temperature, 0, 100)) return Err(fmt::format("temperature={}: expected 0 (greedy) to 100", p.temperature));
  if (!in(p.top_k, 0, 1 << 30)) return Err(fmt::format("top_k={}: expected 0 (off) or more", p.top_k));
  if (!in(p.top_p, 0, 1) || p.top_p == 0) return Err(fmt::format("top_p={}: expected more than 0, at most 1 (off)", p.top_p));
  if (!in(p.min_p, 0, 1)) return Err(fmt::format("min_p={}: expected 0 (off) to 1", p.min_p));
  if (!in(p.repeat_penalty, 0, 100) || p.repeat_penalty == 0)
    return Err(fmt::format("repeat_penalty={}: expected more than 0, at most 100 (1: off)", p.repeat_penalty));
  return Status::Ok();
}

}  // namespace

Result<std::unique_ptr<Generation>> Session::Generate(const std::vector<int32_t>& prompt, const SamplingOptions& s) {
  if (s.max_tokens < 0) return Err(fmt::format("max_tokens={}: expected 0 or more", s.max_tokens));
  RAZOR_RETURN_IF_ERROR(CheckSampler(s.sampler));
  std::unique_ptr<Sequence> seq;
  {
    std::lock_guard<std::mutex> lock(step_mutex_);
    RAZOR_ASSIGN_OR_RETURN(seq, NewSequenceLocked(static_cast<int64_t>(prompt.size()), s.sampler));
  }
  GenerationOptions g;
  g.max_new_tokens = s.max_tokens;
  g.sampler = s.sampler;
  g.stop_strings = s.stop;
  g.stop_at_eog = s.stop_at_eog;
  // The generator polls whatever cancel check the current Next() was given.
  auto cancel = std::make_shared<std::function<bool()>>();
  g.cancelled = [cancel] { return *cancel && (*cancel)(); };
  RAZOR_ASSIGN_OR_RETURN(TokenGenerator gen, TokenGenerator::ForSequence(*engine_, *seq, prompt, std::move(g)));
  return std::make_unique<Generation>(*this, std::move(seq), std::move(gen), std::move(cancel));
}

Result<KvReport> Session::LastKv() {
  std::lock_guard<std::mutex> lock(step_mutex_);
  if (!last_kv_) return Err("no prompt has run yet: kv_stats() reports the last generate()'s cache");
  return *last_kv_;
}

Generation::Generation(Session& session, std::unique_ptr<Sequence> seq, TokenGenerator gen,
                       std::shared_ptr<std::function<bool()>> cancelled)
    : session_(session), seq_(std::move(seq)), gen_(std::move(gen)), cancelled_(std::move(cancelled)) {}

Result<std::optional<std::string>> Generation::Next(const std::function<bool()>& cancelled) {
  std::lock_guard<std::mutex> lock(session_.step_mutex_);
  *cancelled_ = cancelled;
  if (!started_) {
    started_ = true;
    Status st = gen_.Prefill();
    if (!st.ok()) return st;
    session_.last_kv_ = ReportKv(*seq_, session_.config());
    if (!gen_.done()) return std::optional<std::string>(std::string());
  }
  if (gen_.done()) {
    std::string rest = gen_.TakeText();
    if (!rest.empty()) return std::optional<std::string>(std::move(rest));
    session_.last_kv_ = ReportKv(*seq_, session_.config());
    return std::optional<std::string>();
  }
  RAZOR_ASSIGN_OR_RETURN(bool more, gen_.Next());
  (void)more;
  return std::optional<std::string>(gen_.TakeText());
}

KvReport Generation::kv() const { return ReportKv(*seq_, session_.config()); }

KvReport ReportKv(const Sequence& seq, const ModelConfig& c) {
  KvReport r;
  const RazorKvCache& cache = seq.kv();
  r.stats = cache.stats();
  r.mode = KvModeName(cache.policy().mode());
  r.sequence_tokens = seq.length();
  r.bytes = cache.bytes_allocated();
  // The denominator razor run uses: a full cache of the same type and block size holds whole blocks too.
  const int64_t bt = cache.policy().params().block_tokens;
  const size_t block_bytes = RazorKvCache::block_bytes(bt, c.head_dim, cache.type());
  r.full_bytes = static_cast<size_t>(c.n_layers) * c.n_kv_heads * ((r.sequence_tokens + bt - 1) / bt) * block_bytes;
  r.n_layers = c.n_layers;
  r.n_kv_heads = c.n_kv_heads;
  for (int l = 0; l < c.n_layers; ++l)
    for (int h = 0; h < c.n_kv_heads; ++h) {
      const KvHeadView v = cache.View(l, h);
      const int64_t rows = v.len > 0 ? v.first_row + v.len : 0;
      const size_t comp = v.comp_count > 0 ? 2 * static_cast<size_t>(c.head_dim) * sizeof(float) : 0;
      r.head_tokens.push_back(v.len);
      r.head_bytes.push_back(static_cast<int64_t>(((rows + bt - 1) / bt) * block_bytes + comp));
      r.head_compressed.push_back(cache.policy().compresses(l, h) && v.len < seq.length() ? 1 : 0);
    }
  return r;
}

}  // namespace razor::py
