#include "eval/kld_samples.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include <fmt/format.h>

namespace razor::eval {

double StudentT975(int df) {
  // t_{0.975} for df = 1..30 (standard tables).
  static constexpr double kTable[30] = {12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                        2.201,  2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
                                        2.080,  2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
  if (df < 1) return std::numeric_limits<double>::infinity();
  if (df <= 30) return kTable[df - 1];
  // Beyond the table: linear in 1/df between 30, 40, 60, 120 and infinity (t_{0.975} is close to linear in 1/df).
  static constexpr int kDf[5] = {30, 40, 60, 120, 0};
  static constexpr double kT[5] = {2.042, 2.021, 2.000, 1.980, 1.959964};
  const double x = 1.0 / df;
  for (int i = 0; i < 4; ++i) {
    const double x0 = 1.0 / kDf[i], x1 = kDf[i + 1] > 0 ? 1.0 / kDf[i + 1] : 0.0;
    if (x <= x0 && x >= x1) return kT[i + 1] + (kT[i] - kT[i + 1]) * (x - x1) / (x0 - x1);
  }
  return 1.959964;
}

MeanInterval MeanWithInterval(const std::vector<double>& values) {
  MeanInterval r;
  const size_t n = values.size();
  if (n == 0) return r;
  double sum = 0;
  for (double v : values) sum += v;
  r.mean = sum / n;
  r.lo = r.hi = r.mean;
  if (n == 1) return r;
  double ss = 0;
  for (double v : values) ss += (v - r.mean) * (v - r.mean);
  const double half = StudentT975(static_cast<int>(n) - 1) * std::sqrt(ss / (n - 1) / n);
  r.lo = r.mean - half, r.hi = r.mean + half;
  return r;
}

Result<std::vector<size_t>> KldWindowStarts(uint64_t seed, int samples, size_t sentences, size_t needed) {
  if (samples < 1) return Err("--samples must be at least 1");
  std::vector<size_t> starts = {0};
  if (samples == 1) return starts;
  const size_t stratum = sentences / static_cast<size_t>(samples);
  if (stratum < needed)
    return Err(fmt::format("--samples {}: {} disjoint windows need about {} sentences of essays, the text has {} "
                           "(fewer samples or a shorter --length)",
                           samples, samples, needed * static_cast<size_t>(samples), sentences));
  for (int k = 1; k < samples; ++k) {
    // splitmix64 of (seed, k): a fixed draw per sample, independent of the platform's std:: distributions.
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * static_cast<uint64_t>(k + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    starts.push_back(static_cast<size_t>(k) * stratum + static_cast<size_t>(z % (stratum - needed + 1)));
  }
  return starts;
}

size_t SentencesForChars(const std::vector<std::string>& sentences, size_t chars) {
  size_t needed = 0;
  for (size_t sum = 0; needed < sentences.size() && sum <= chars; ++needed)
    sum += sentences[sentences.size() - 1 - needed].size() + 1;
  return needed;
}

std::string JoinWindow(const std::vector<std::string>& sentences, size_t first, size_t chars) {
  std::string doc;
  for (size_t i = first; i < sentences.size() && doc.size() <= chars; ++i) {
    if (!doc.empty()) doc += ' ';
    doc += sentences[i];
  }
  return doc;
}

KldSummary SummariseKld(const std::vector<KldResult>& runs) {
  KldSummary s;
  s.samples = static_cast<int>(runs.size());
  if (runs.empty()) return s;
  s.mode = runs.front().mode;
  std::vector<double> kl, agree, red, pooled;
  double nll_full = 0, nll_mode = 0, steps = 0;
  for (const KldResult& r : runs) {
    kl.push_back(r.mean_kl);
    agree.push_back(r.top1_agreement);
    red.push_back(r.reduction);
    pooled.insert(pooled.end(), r.kl.begin(), r.kl.end());
    s.max_kl = std::max(s.max_kl, r.max_kl);
    s.kv_bytes += r.kv_bytes / runs.size();
    if (r.eval_tokens > 0 && r.ppl_full > 0 && r.ppl_mode > 0) {
      nll_full += std::log(r.ppl_full) * r.eval_tokens;
      nll_mode += std::log(r.ppl_mode) * r.eval_tokens;
      steps += r.eval_tokens;
    }
  }
  s.mean_kl = MeanWithInterval(kl);
  s.mean_kl.lo = std::max(0.0, s.mean_kl.lo);  // KL >= 0, agreement in [0, 1]: the t interval clipped to them
  s.top1_agreement = MeanWithInterval(agree);
  s.top1_agreement.lo = std::max(0.0, s.top1_agreement.lo);
  s.top1_agreement.hi = std::min(1.0, s.top1_agreement.hi);
  s.reduction = MeanWithInterval(red);
  if (!pooled.empty()) {
    std::sort(pooled.begin(), pooled.end());
    s.p95_kl = pooled[std::min(pooled.size() - 1, static_cast<size_t>(0.95 * pooled.size()))];
  }
  if (steps > 0) s.ppl_full = std::exp(nll_full / steps), s.ppl_mode = std::exp(nll_mode / steps);
  return s;
}

nlohmann::json ToJson(const KldSummary& s) {
  auto mi = [](const MeanInterval& m) { return nlohmann::json{{"mean", m.mean}, {"lo", m.lo}, {"hi", m.hi}}; };
  return {{"mode", s.mode},         {"samples", s.samples},   {"mean_kl", mi(s.mean_kl)},
          {"top1_agreement", mi(s.top1_agreement)},           {"reduction", mi(s.reduction)},
          {"p95_kl", s.p95_kl},     {"max_kl", s.max_kl},     {"ppl_full", s.ppl_full},
          {"ppl_mode", s.ppl_mode}, {"kv_bytes", s.kv_bytes}};
}

}  // namespace razor::eval
