#include "runtime/generator.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>

namespace razor {
namespace {

double Seconds(std::chrono::steady_clock::time_point a, std::chrono::steady_clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Holds back text that may still become a stop string, and emits the rest.
class StopStringFilter {
 public:
  explicit StopStringFilter(const std::vector<std::string>& stops) : stops_(stops) {}
  // Adds text; returns the part safe to emit. Sets *stopped when a stop string completed (its text and
  // anything after it are dropped).
  std::string Push(const std::string& text, bool* stopped) {
    pending_ += text;
    for (const auto& s : stops_) {
      if (s.empty()) continue;
      size_t at = pending_.find(s);
      if (at != std::string::npos) {
        *stopped = true;
        std::string out = pending_.substr(0, at);
        pending_.clear();
        return out;
      }
    }
    size_t hold = 0;  // longest suffix of pending_ that is a proper prefix of some stop string
    for (const auto& s : stops_)
      for (size_t k = std::min(s.size() - (s.empty() ? 0 : 1), pending_.size()); k > hold; --k)
        if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
          hold = k;
          break;
        }
    std::string out = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return out;
  }
  std::string Flush() { return std::exchange(pending_, {}); }

 private:
  const std::vector<std::string>& stops_;
  std::string pending_;
};

}  // namespace

size_t CompleteUtf8Prefix(const std::string& s) {
  // Walk back over at most 3 continuation bytes to the last lead byte and check its sequence is whole.
  size_t n = s.size();
  size_t i = n;
  int cont = 0;
  while (i > 0 && cont < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) {
    --i;
    ++cont;
  }
  if (i == 0) return cont == 0 ? n : n;  // only continuation bytes: nothing sensible to hold
  const unsigned char lead = static_cast<unsigned char>(s[i - 1]);
  int need = 0;
  if ((lead & 0x80) == 0) need = 0;
  else if ((lead & 0xE0) == 0xC0) need = 1;
  else if ((lead & 0xF0) == 0xE0) need = 2;
  else if ((lead & 0xF8) == 0xF0) need = 3;
  else return n;  // invalid lead byte: emit as is
  return cont >= need ? n : i - 1;
}

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
  StopStringFilter stops(opt.stop_strings);
  std::string undecoded;  // bytes of pieces not yet complete UTF-8
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
    if (tokenizer != nullptr) {
      undecoded += tokenizer->TokenToPiece(id);
      const size_t whole = CompleteUtf8Prefix(undecoded);
      emit(stops.Push(undecoded.substr(0, whole), &stopped));
      undecoded.erase(0, whole);
    }
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
  if (r.stop_reason != "stop-string") {
    bool ignored = false;
    emit(stops.Push(undecoded, &ignored));
    emit(stops.Flush());
  }
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
