#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#if defined(__SSE2__)
#include <immintrin.h>
#endif

namespace razor {

int32_t ArgMax(const float* logits, int32_t vocab) {
  // Two passes on SSE registers (a 128K vocabulary in ~13 us, not the ~45 us of one dependent
  // scan, which a batched decode step pays per sequence before its next launch): the largest value, then its
  // first index. The same answer as the scan "first i with logits[i] above every earlier one", NaN included:
  // max(x, m) is `x > m ? x : m` (maxps), which never takes a NaN; a NaN logits[0] stays the maximum, no index
  // compares equal to it, and 0 is returned.
  if (vocab <= 0) return 0;
  float m = logits[0];
  int32_t i = 0;
#if defined(__SSE2__)
  __m128 acc[4];
  for (__m128& a : acc) a = _mm_set1_ps(m);
  for (; i + 16 <= vocab; i += 16)
    for (int j = 0; j < 4; ++j) acc[j] = _mm_max_ps(_mm_loadu_ps(logits + i + 4 * j), acc[j]);
  alignas(16) float lanes[16];
  for (int j = 0; j < 4; ++j) _mm_store_ps(lanes + 4 * j, acc[j]);
  for (float l : lanes) m = l > m ? l : m;
#endif
  for (; i < vocab; ++i) m = logits[i] > m ? logits[i] : m;
  int32_t k = 0;
#if defined(__SSE2__)
  const __m128 want = _mm_set1_ps(m);
  for (; k + 16 <= vocab; k += 16) {
    int hit = 0;
    for (int j = 0; j < 4; ++j) hit |= _mm_movemask_ps(_mm_cmpeq_ps(_mm_loadu_ps(logits + k + 4 * j), want)) << 4 * j;
    if (hit) return k + __builtin_ctz(static_cast<unsigned>(hit));
  }
#endif
  for (; k < vocab; ++k)
    if (logits[k] == m) return k;
  return 0;
}

Sampler::Sampler(const SamplerParams& params) : p_(params), rng_(params.seed) {}

int32_t Sampler::Sample(const float* logits, int32_t vocab, const std::vector<int32_t>& history) {
  // Greedy without a penalty: the argmax of the logits as given (the same as the path below takes).
  if (p_.temperature <= 0.0f && (p_.repeat_penalty == 1.0f || p_.repeat_last_n == 0)) return ArgMax(logits, vocab);
  cand_.resize(vocab);
  for (int32_t i = 0; i < vocab; ++i) cand_[i] = {logits[i], i};
  if (p_.repeat_penalty != 1.0f && p_.repeat_last_n != 0) {
    const size_t n = p_.repeat_last_n < 0 ? history.size() : std::min<size_t>(history.size(), p_.repeat_last_n);
    std::unordered_set<int32_t> seen(history.end() - n, history.end());
    for (int32_t id : seen) {
      if (id < 0 || id >= vocab) continue;
      float& l = cand_[id].first;
      l = l > 0 ? l / p_.repeat_penalty : l * p_.repeat_penalty;
    }
  }
  if (p_.temperature <= 0.0f) {
    int32_t best = 0;
    for (int32_t i = 1; i < vocab; ++i)
      if (cand_[i].first > cand_[best].first) best = i;
    return best;
  }
  auto by_logit = [](const auto& a, const auto& b) { return a.first > b.first || (a.first == b.first && a.second < b.second); };
  size_t keep = cand_.size();
  if (p_.top_k > 0 && static_cast<size_t>(p_.top_k) < keep) {
    keep = p_.top_k;
    std::partial_sort(cand_.begin(), cand_.begin() + keep, cand_.end(), by_logit);
  } else {
    std::sort(cand_.begin(), cand_.end(), by_logit);
  }
  cand_.resize(keep);
  // Probabilities at temperature 1 decide top-p / min-p, as llama.cpp's default chain does.
  std::vector<double> prob(keep);
  const double m = cand_[0].first;
  double sum = 0;
  for (size_t i = 0; i < keep; ++i) sum += (prob[i] = std::exp(cand_[i].first - m));
  if (p_.top_p < 1.0f) {
    double cum = 0;
    size_t n = 0;
    while (n < keep) {
      cum += prob[n] / sum;
      ++n;
      if (cum >= p_.top_p) break;
    }
    keep = std::max<size_t>(1, n);
  }
  if (p_.min_p > 0.0f) {
    size_t n = 1;
    while (n < keep && prob[n] >= p_.min_p * prob[0]) ++n;
    keep = n;
  }
  std::vector<double> w(keep);
  for (size_t i = 0; i < keep; ++i) w[i] = std::exp((cand_[i].first - m) / p_.temperature);
  std::discrete_distribution<size_t> dist(w.begin(), w.end());
  return cand_[dist(rng_)].second;
}

}  // namespace razor
