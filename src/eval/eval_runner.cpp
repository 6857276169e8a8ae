#include "eval/eval_runner.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdlib>

#include "eval/eval_samples.h"
#include "eval/wilson_interval.h"
#include "kv/razor_kv_cache.h"
#include "model/transformer.h"
#include "runtime/generator.h"

namespace razor::eval {

EvalRunner::EvalRunner(Engine& engine, KvCacheOptions base)
    : engine_(engine), model_(engine.model()), base_(std::move(base)) {}

TokenCounter EvalRunner::Counter() const {
  const Tokenizer* tok = model_.tokenizer.get();
  return [tok](std::string_view s) -> int64_t { return static_cast<int64_t>(tok->Encode(s, false, false).size()); };
}

Result<std::vector<int32_t>> EvalRunner::PromptTokens(const EvalSample& s) const {
  if (!model_.tokenizer) return Err(model_.path + ": the model has no tokenizer");
  if (model_.tokenizer->chat_template_kind() == ChatTemplateKind::kNone && model_.tokenizer->has_chat_template())
    // An instruction model in a format razor does not render (e.g. Gemma 3 -it's <start_of_turn>): prompting it
    // as plain text would measure a different model than the one users chat with.
    return Err(model_.path + ": the model's chat template is not one razor renders (ChatML, Llama 3); eval does "
               "not prompt an instruction model as plain text");
  if (model_.tokenizer->chat_template_kind() == ChatTemplateKind::kNone) {
    // A base model (no chat template, e.g. Gemma 3 270M): the request as plain text after BOS, and the answer
    // prefix as the text to continue.
    return model_.tokenizer->Encode(s.UserMessage() + "\n\n" + s.answer_prefix, /*add_bos=*/true,
                                    /*parse_special=*/false);
  }
  auto rendered = model_.tokenizer->ApplyChatTemplate({{"user", s.UserMessage()}}, true);
  if (!rendered) return rendered.status();
  return model_.tokenizer->Encode(*rendered + s.answer_prefix, /*add_bos=*/false, /*parse_special=*/true);
}

Result<EvalSample> EvalRunner::MakeFitted(const std::string& task, const TaskInputs& in, int64_t length, int depth,
                                          uint64_t seed) const {
  // The overhead is what the prompt costs with an empty document; the document gets the rest.
  RAZOR_ASSIGN_OR_RETURN(EvalSample probe, MakeSample(task, in, 0, depth, seed));
  probe.document.clear();
  RAZOR_ASSIGN_OR_RETURN(auto empty, PromptTokens(probe));
  const int64_t doc = length - static_cast<int64_t>(empty.size()) - 2;  // 2: the blank lines around the document
  if (doc < 16) return Err(fmt::format("{}: length {} leaves no room for a document", task, length));
  // Sentence counts summed separately differ a little from the joined text's: correct by the miss (a few
  // rounds, keeping the closest).
  RAZOR_ASSIGN_OR_RETURN(EvalSample best, MakeSample(task, in, doc, depth, seed));
  RAZOR_ASSIGN_OR_RETURN(auto ids, PromptTokens(best));
  int64_t best_miss = length - static_cast<int64_t>(ids.size());
  int64_t budget = doc;
  for (int round = 0; round < 3 && std::abs(best_miss) > 8; ++round) {
    budget += length - static_cast<int64_t>(ids.size());
    if (budget < 16) break;
    RAZOR_ASSIGN_OR_RETURN(EvalSample s, MakeSample(task, in, budget, depth, seed));
    RAZOR_ASSIGN_OR_RETURN(ids, PromptTokens(s));
    const int64_t miss = length - static_cast<int64_t>(ids.size());
    if (std::abs(miss) < std::abs(best_miss)) best = std::move(s), best_miss = miss;
  }
  return best;
}

Result<CellResult> EvalRunner::Run(const EvalSample& s, const std::vector<int32_t>& prompt, KvMode mode,
                                   int64_t length) {
  CellResult r;
  r.task = s.task;
  r.mode = KvModeName(mode);
  r.length = length;
  r.depth = s.depth;
  r.prompt_tokens = static_cast<int64_t>(prompt.size());
  r.expected = s.expected;
  KvCacheOptions kvo = base_;
  kvo.mode = mode;
  if (r.prompt_tokens + s.max_new_tokens + 1 > engine_.context())
    return Err(fmt::format("a prompt of {} tokens and its answer do not fit the context of {}", r.prompt_tokens,
                           engine_.context()));
  SequenceOptions so;
  so.kv = kvo;
  so.prompt_tokens = r.prompt_tokens;
  so.capacity = r.prompt_tokens + s.max_new_tokens + 1;
  RAZOR_ASSIGN_OR_RETURN(auto seq, engine_.NewSequence(so));
  const KvCache* cache = &seq->cache();
  GenerationOptions g;
  g.max_new_tokens = s.max_new_tokens;
  g.sampler.temperature = 0;
  g.on_prefill = [&](int64_t done, int64_t total) {
    if (done == total) r.kv_bytes = static_cast<double>(cache->bytes_allocated());
  };
  const auto t0 = std::chrono::steady_clock::now();
  RAZOR_ASSIGN_OR_RETURN(auto gen, Generate(engine_, *seq, prompt, g));
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (r.kv_bytes == 0) r.kv_bytes = static_cast<double>(cache->bytes_allocated());
  r.full_kv_bytes = static_cast<double>(engine_.full_kv_bytes_per_token()) * r.prompt_tokens;
  r.reduction = r.full_kv_bytes > 0 ? 1.0 - r.kv_bytes / r.full_kv_bytes : 0;
  if (const auto* rz = dynamic_cast<const RazorKvCache*>(cache)) {
    const RazorKvStats st = rz->stats();
    r.heads_compressed = st.heads_compressed;
    r.window = st.window;
  }
  r.answer = gen.text;
  r.score = ScoreAnswer(gen.text, s.expected);
  r.correct = IsCorrect(r.score) ? 1 : 0;
  r.accuracy = static_cast<double>(r.correct);
  const Interval ci = WilsonInterval(r.correct, 1);
  r.wilson_lo = ci.lo, r.wilson_hi = ci.hi;
  r.prefill_tok_s = gen.prefill_tok_s();
  r.decode_tok_s = gen.decode_tok_s();
  return r;
}

}  // namespace razor::eval
