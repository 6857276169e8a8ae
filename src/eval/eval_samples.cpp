#include "eval/eval_samples.h"

#include <functional>

#include "eval/wilson_interval.h"

namespace razor::eval {

uint64_t SampleSeed(uint64_t base_seed, const std::string& task, int64_t length, int depth, int k) {
  const uint64_t s = base_seed + static_cast<uint64_t>(k);
  return s * 1000003ull + static_cast<uint64_t>(length) * 131ull + depth * 7ull + std::hash<std::string>{}(task) % 1000;
}

bool IsCorrect(double score) { return score >= 1.0 - 1e-9; }

CellResult AggregateSamples(const std::vector<CellResult>& runs, const std::vector<uint64_t>& seeds) {
  if (runs.empty()) return {};
  if (runs.size() == 1) return runs.front();
  CellResult c = runs.front();
  const double k = static_cast<double>(runs.size());
  c.samples = static_cast<int64_t>(runs.size());
  c.correct = 0;
  c.score = c.kv_bytes = c.full_kv_bytes = c.reduction = c.needle_depth = 0;
  c.prefill_tok_s = c.decode_tok_s = c.seconds = 0;
  c.per_sample.clear();
  for (size_t i = 0; i < runs.size(); ++i) {
    const CellResult& r = runs[i];
    if (IsCorrect(r.score)) ++c.correct;
    c.score += r.score / k;
    c.kv_bytes += r.kv_bytes / k;
    c.full_kv_bytes += r.full_kv_bytes / k;
    c.reduction += r.reduction / k;
    c.needle_depth += r.needle_depth / k;
    c.prefill_tok_s += r.prefill_tok_s / k;
    c.decode_tok_s += r.decode_tok_s / k;
    c.seconds += r.seconds / k;
    c.per_sample.push_back({i < seeds.size() ? seeds[i] : 0, r.score, r.answer, r.expected, r.prompt_tokens});
  }
  c.accuracy = static_cast<double>(c.correct) / k;
  const Interval ci = WilsonInterval(c.correct, c.samples);
  c.wilson_lo = ci.lo, c.wilson_hi = ci.hi;
  return c;
}

}  // namespace razor::eval
