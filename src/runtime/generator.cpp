#include "runtime/generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>


namespace razor {
namespace {

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

}  // namespace

Status Prefill(Transformer& model, KvCache& cache, const std::vector<int32_t>& prompt, int64_t batch,
               const std::function<void(int64_t, int64_t)>& on_progress, std::vector<float>* last_logits) {
  const int64_t n = static_cast<int64_t>(prompt.size());
  batch = cache.wants_single_prefill_call() ? n : std::max<int64_t>(1, batch);
  cache.BeginPrefill(n);
  for (int64_t b = 0; b < n; b += batch) {
    const int64_t len = std::min(batch, n - b);
    RAZOR_RETURN_IF_ERROR(model.Forward(prompt.data() + b, len, cache, false, last_logits));
    if (on_progress) on_progress(b + len, n);
  }
  return Status::Ok();
}

TokenGenerator::TokenGenerator(PrefillFn prefill, DecodeFn decode, RoomFn room, int32_t vocab,
                               const Tokenizer* tokenizer, std::vector<int32_t> prompt, GenerationOptions options)
    : prefill_(std::move(prefill)),
      decode_(std::move(decode)),
      room_(std::move(room)),
      vocab_(vocab),
      tokenizer_(tokenizer),
      options_(std::move(options)),
      sampler_(options_.sampler),
      text_(tokenizer, options_.stop_strings),
      history_(std::move(prompt)) {
  result_.prompt_tokens = static_cast<int64_t>(history_.size());
  result_.stop_reason = "length";
}

Status TokenGenerator::Prefill() {
  if (prefilled_) return Err("the prompt has already run");
  prefilled_ = true;
  const auto t0 = std::chrono::steady_clock::now();
  Status st = prefill_(&logits_);
  decode_start_ = std::chrono::steady_clock::now();
  result_.prefill_seconds = Seconds(t0, decode_start_);
  if (!st.ok()) done_ = true;
  else if (options_.max_new_tokens <= 0) Finish("length");
  return st;
}

void TokenGenerator::Emit(const std::string& s) {
  if (s.empty()) return;
  result_.text += s;
  fresh_text_ += s;
  if (options_.on_text) options_.on_text(s);
}

void TokenGenerator::Finish(const char* reason) {
  result_.stop_reason = reason;
  if (result_.stop_reason != "stop-string") Emit(text_.Finish());
  result_.decode_seconds = Seconds(decode_start_, std::chrono::steady_clock::now());
  done_ = true;
}

Result<bool> TokenGenerator::Next() {
  if (!prefilled_) return Err("Next() before Prefill()");
  if (done_) return false;
  if (options_.cancelled && options_.cancelled()) {
    done_ = true;
    return Err("cancelled");
  }
  const int32_t id = sampler_.Sample(logits_.data(), vocab_, history_);
  if (options_.stop_at_eog && tokenizer_ != nullptr && tokenizer_->IsEndOfGeneration(id)) {
    Finish("eog");
    return false;
  }
  result_.output_ids.push_back(id);
  history_.push_back(id);
  bool stopped = false;
  Emit(text_.Push(id, &stopped));
  if (stopped) Finish("stop-string");
  else if (static_cast<int>(result_.output_ids.size()) >= options_.max_new_tokens) Finish("length");
  else if (!room_()) Finish("context");
  if (done_) return false;
  if (Status st = decode_(id, &logits_); !st.ok()) {
    done_ = true;
    return st;
  }
  return true;
}

namespace {

Result<GenerationResult> RunToEnd(TokenGenerator& g) {
  RAZOR_RETURN_IF_ERROR(g.Prefill());
  while (true) {
    RAZOR_ASSIGN_OR_RETURN(bool more, g.Next());
    if (!more) break;
  }
  return g.result();
}

Status CheckPrompt(const std::vector<int32_t>& prompt, int64_t capacity) {
  if (prompt.empty()) return Err("empty prompt: nothing to generate from");
  if (static_cast<int64_t>(prompt.size()) > capacity)
    return Err(fmt::format("prompt is {} tokens, longer than the context of {} (raise --ctx or shorten the prompt)",
                           prompt.size(), capacity));
  return Status::Ok();
}

}  // namespace

Result<GenerationResult> Generate(Transformer& model, KvCache& cache, const Tokenizer* tokenizer,
                                  const std::vector<int32_t>& prompt, const GenerationOptions& opt) {
  RAZOR_RETURN_IF_ERROR(CheckPrompt(prompt, cache.capacity()));
  TokenGenerator g(
      [&](std::vector<float>* logits) {
        return Prefill(model, cache, prompt, opt.prefill_batch, opt.on_prefill, logits);
      },
      [&](int32_t id, std::vector<float>* logits) { return model.Forward(&id, 1, cache, false, logits); },
      [&] { return cache.sequence_length() + 1 <= cache.capacity(); }, model.config().vocab_size, tokenizer, prompt,
      opt);
  return RunToEnd(g);
}

Status PrefillSequence(Engine& engine, Sequence& seq, const std::vector<int32_t>& prompt, int64_t batch,
                       const std::function<void(int64_t, int64_t)>& on_progress,
                       const std::function<bool()>& cancelled) {
  const int64_t n = static_cast<int64_t>(prompt.size());
  batch = seq.cache().wants_single_prefill_call() ? n : std::max<int64_t>(1, batch);
  for (int64_t b = 0; b < n; b += batch) {
    if (cancelled && cancelled()) return Err("cancelled");
    std::vector<SequenceInput> in(1);
    in[0].sequence = &seq;
    in[0].tokens.assign(prompt.begin() + b, prompt.begin() + std::min(n, b + batch));
    in[0].begins_prompt = b == 0;  // the whole prompt announced once, though it comes in batches
    in[0].prompt_tokens = n;
    RAZOR_RETURN_IF_ERROR(engine.Step(in));
    RAZOR_RETURN_IF_ERROR(in[0].status);
    if (on_progress) on_progress(std::min(n, b + batch), n);
  }
  return Status::Ok();
}

Result<TokenGenerator> TokenGenerator::ForSequence(Engine& engine, Sequence& seq, std::vector<int32_t> prompt,
                                                   GenerationOptions opt) {
  RAZOR_RETURN_IF_ERROR(CheckPrompt(prompt, seq.cache().capacity() - seq.length()));
  auto shared_prompt = std::make_shared<const std::vector<int32_t>>(prompt);
  const int64_t batch = opt.prefill_batch;
  auto on_prefill = opt.on_prefill;
  auto cancelled = opt.cancelled;
  return TokenGenerator(
      [&engine, &seq, shared_prompt, batch, on_prefill, cancelled](std::vector<float>* logits) {
        RAZOR_RETURN_IF_ERROR(PrefillSequence(engine, seq, *shared_prompt, batch, on_prefill, cancelled));
        *logits = seq.logits();
        return Status::Ok();
      },
      [&engine, &seq](int32_t id, std::vector<float>* logits) {
        std::vector<SequenceInput> in(1);
        in[0].sequence = &seq;
        in[0].tokens = {id};
        RAZOR_RETURN_IF_ERROR(engine.Step(in));
        RAZOR_RETURN_IF_ERROR(in[0].status);
        *logits = seq.logits();
        return Status::Ok();
      },
      [&seq] { return seq.length() + 1 <= seq.cache().capacity(); }, engine.config().vocab_size, engine.tokenizer(),
      std::move(prompt), std::move(opt));
}

Result<GenerationResult> Generate(Engine& engine, Sequence& seq, const std::vector<int32_t>& prompt,
                                  const GenerationOptions& opt) {
  RAZOR_ASSIGN_OR_RETURN(TokenGenerator g, TokenGenerator::ForSequence(engine, seq, prompt, opt));
  return RunToEnd(g);
}

}  // namespace razor
