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

namespace {

// The loop both entry points share. prefill(logits): runs the prompt, leaves the last token's logits;
// decode(id, logits): runs one token; room(): true while one more token fits in the context.
Result<GenerationResult> GenerateLoop(const std::function<Status(std::vector<float>*)>& prefill,
                                      const std::function<Status(int32_t, std::vector<float>*)>& decode,
                                      const std::function<bool()>& room, int32_t vocab, const Tokenizer* tokenizer,
                                      const std::vector<int32_t>& prompt, const GenerationOptions& opt) {
  GenerationResult r;
  r.prompt_tokens = static_cast<int64_t>(prompt.size());
  std::vector<float> logits;
  auto t0 = std::chrono::steady_clock::now();
  RAZOR_RETURN_IF_ERROR(prefill(&logits));
  auto t1 = std::chrono::steady_clock::now();
  r.prefill_seconds = Seconds(t0, t1);

  Sampler sampler(opt.sampler);
  std::vector<int32_t> history = prompt;
  TokenTextStream text(tokenizer, opt.stop_strings);
  r.stop_reason = "length";
  auto emit = [&](const std::string& s) {
    if (s.empty()) return;
    r.text += s;
    if (opt.on_text) opt.on_text(s);
  };
  for (int i = 0; i < opt.max_new_tokens; ++i) {
    const int32_t id = sampler.Sample(logits.data(), vocab, history);
    if (opt.stop_at_eog && tokenizer != nullptr && tokenizer->IsEndOfGeneration(id)) {
      r.stop_reason = "eog";
      break;
    }
    r.output_ids.push_back(id);
    history.push_back(id);
    bool stopped = false;
    emit(text.Push(id, &stopped));
    if (stopped) {
      r.stop_reason = "stop-string";
      break;
    }
    if (i + 1 == opt.max_new_tokens) break;
    if (!room()) {
      r.stop_reason = "context";
      break;
    }
    RAZOR_RETURN_IF_ERROR(decode(id, &logits));
  }
  if (r.stop_reason != "stop-string") emit(text.Finish());
  r.decode_seconds = Seconds(t1, std::chrono::steady_clock::now());
  return r;
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
  return GenerateLoop(
      [&](std::vector<float>* logits) {
        return Prefill(model, cache, prompt, opt.prefill_batch, opt.on_prefill, logits);
      },
      [&](int32_t id, std::vector<float>* logits) { return model.Forward(&id, 1, cache, false, logits); },
      [&] { return cache.sequence_length() + 1 <= cache.capacity(); }, model.config().vocab_size, tokenizer, prompt,
      opt);
}

Status PrefillSequence(Engine& engine, Sequence& seq, const std::vector<int32_t>& prompt, int64_t batch,
                       const std::function<void(int64_t, int64_t)>& on_progress) {
  const int64_t n = static_cast<int64_t>(prompt.size());
  batch = seq.cache().wants_single_prefill_call() ? n : std::max<int64_t>(1, batch);
  for (int64_t b = 0; b < n; b += batch) {
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

Result<GenerationResult> Generate(Engine& engine, Sequence& seq, const std::vector<int32_t>& prompt,
                                  const GenerationOptions& opt) {
  RAZOR_RETURN_IF_ERROR(CheckPrompt(prompt, seq.cache().capacity() - seq.length()));
  return GenerateLoop(
      [&](std::vector<float>* logits) {
        RAZOR_RETURN_IF_ERROR(PrefillSequence(engine, seq, prompt, opt.prefill_batch, opt.on_prefill));
        *logits = seq.logits();
        return Status::Ok();
      },
      [&](int32_t id, std::vector<float>* logits) {
        std::vector<SequenceInput> in(1);
        in[0].sequence = &seq;
        in[0].tokens = {id};
        RAZOR_RETURN_IF_ERROR(engine.Step(in));
        *logits = seq.logits();
        return Status::Ok();
      },
      [&] { return seq.length() + 1 <= seq.cache().capacity(); }, engine.config().vocab_size, engine.tokenizer(), prompt,
      opt);
}

}  // namespace razor
