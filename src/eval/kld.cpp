#include "eval/kld.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "model/transformer.h"
#include "runtime/generator.h"

namespace razor::eval {

void LogSoftmax(const float* logits, int n, std::vector<double>* out) {
  out->resize(n);
  double mx = -INFINITY;
  for (int i = 0; i < n; ++i) mx = std::max(mx, static_cast<double>(logits[i]));
  double sum = 0;
  for (int i = 0; i < n; ++i) sum += std::exp(logits[i] - mx);
  const double lse = mx + std::log(sum);
  for (int i = 0; i < n; ++i) (*out)[i] = logits[i] - lse;
}

double KlDivergence(const std::vector<double>& log_p, const std::vector<double>& log_q) {
  double kl = 0;
  for (size_t i = 0; i < log_p.size(); ++i) {
    const double p = std::exp(log_p[i]);
    if (p > 0) kl += p * (log_p[i] - log_q[i]);
  }
  return std::max(0.0, kl);
}

Result<StepDistributions> RunSteps(Engine& engine, KvCacheOptions kvo,
                                   KvMode mode, const std::vector<int32_t>& tokens, int64_t prefix,
                                   const std::function<void(int64_t, int64_t)>& on_step) {
  const int64_t total = static_cast<int64_t>(tokens.size());
  if (prefix < 1 || prefix >= total) return Err("kld: the prefix must leave at least one token to predict");
  const int64_t steps = total - prefix;
  const int vocab = engine.config().vocab_size;
  if (total > engine.context()) return Err("kld: the text is longer than the engine's context");
  kvo.mode = mode;
  SequenceOptions so;
  so.kv = kvo;
  so.prompt_tokens = prefix;
  so.capacity = total;  // the prefix and steps - 1 tokens enter the cache
  RAZOR_ASSIGN_OR_RETURN(auto seq, engine.NewSequence(so));
  StepDistributions d;
  d.log_probs.resize(static_cast<size_t>(steps) * vocab);
  d.argmax.resize(steps);
  d.nll.resize(steps);
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<float> logits;
  std::vector<int32_t> prompt(tokens.begin(), tokens.begin() + prefix);
  RAZOR_RETURN_IF_ERROR(PrefillSequence(engine, *seq, prompt, 256, nullptr));
  logits = seq->logits();
  d.kv_bytes = static_cast<double>(seq->cache().bytes_allocated());
  std::vector<double> lp;
  for (int64_t t = 0; t < steps; ++t) {
    if (t > 0) {
      std::vector<SequenceInput> in(1);
      in[0].sequence = seq.get();
      in[0].tokens = {tokens[prefix + t - 1]};
      RAZOR_RETURN_IF_ERROR(engine.Step(in));
      logits = seq->logits();
    }
    LogSoftmax(logits.data(), vocab, &lp);
    float* row = &d.log_probs[static_cast<size_t>(t) * vocab];
    int32_t best = 0;
    for (int i = 0; i < vocab; ++i) {
      row[i] = static_cast<float>(lp[i]);
      if (lp[i] > lp[best]) best = i;
    }
    d.argmax[t] = best;
    d.nll[t] = -lp[tokens[prefix + t]];
    if (on_step) on_step(t + 1, steps);
  }
  d.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return d;
}

KldResult CompareSteps(const StepDistributions& full, const StepDistributions& test, int vocab) {
  KldResult r;
  const size_t steps = full.argmax.size();
  r.eval_tokens = static_cast<int64_t>(steps);
  std::vector<double> p(vocab), q(vocab);
  double nll_full = 0, nll_test = 0;
  int agree = 0;
  for (size_t t = 0; t < steps; ++t) {
    for (int i = 0; i < vocab; ++i) {
      p[i] = full.log_probs[t * vocab + i];
      q[i] = test.log_probs[t * vocab + i];
    }
    const double kl = KlDivergence(p, q);
    r.kl.push_back(kl);
    r.agree.push_back(full.argmax[t] == test.argmax[t]);
    agree += r.agree.back();
    nll_full += full.nll[t];
    nll_test += test.nll[t];
  }
  if (steps > 0) {
    std::vector<double> sorted = r.kl;
    std::sort(sorted.begin(), sorted.end());
    double sum = 0;
    for (double k : sorted) sum += k;
    r.mean_kl = sum / steps;
    r.max_kl = sorted.back();
    r.p95_kl = sorted[std::min(steps - 1, static_cast<size_t>(0.95 * steps))];
    r.top1_agreement = static_cast<double>(agree) / steps;
    r.ppl_full = std::exp(nll_full / steps);
    r.ppl_mode = std::exp(nll_test / steps);
  }
  r.kv_bytes = test.kv_bytes;
  r.seconds = test.seconds;
  return r;
}

nlohmann::json ToJson(const KldResult& r, bool per_step) {
  nlohmann::json j = {{"mode", r.mode},           {"prefix_tokens", r.prefix_tokens}, {"eval_tokens", r.eval_tokens},
                      {"mean_kl", r.mean_kl},     {"p95_kl", r.p95_kl},               {"max_kl", r.max_kl},
                      {"top1_agreement", r.top1_agreement}, {"ppl_full", r.ppl_full}, {"ppl_mode", r.ppl_mode},
                      {"kv_bytes", r.kv_bytes},   {"full_kv_bytes", r.full_kv_bytes}, {"reduction", r.reduction},
                      {"seconds", r.seconds}};
  if (per_step) {
    j["kl"] = r.kl;
    j["agree"] = r.agree;
  }
  return j;
}

}  // namespace razor::eval
