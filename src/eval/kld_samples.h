// `razor eval kld --samples K`: K disjoint windows of the essays per run (sample 0 from the first sentence, as
// with one sample; sample k > 0 from a seed-drawn sentence of the k-th K-th of the text), each compared with
// the full cache on the same tokens, and the K results summarised as a mean with a 95 % Student-t interval
// over the samples (separate stretches of real text, so the per-sample means are close to independent; the
// steps inside one window are not, which is why the interval is not taken over steps).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"
#include "eval/kld.h"

namespace razor::eval {

// The two-sided 95 % quantile of Student's t with `df` degrees of freedom (t_{0.975, df}): tabulated for
// df 1..30, then 40 / 60 / 120 (interpolated in 1/df between them), 1.959964 beyond. df < 1: infinity.
double StudentT975(int df);

struct MeanInterval {
  double mean = 0, lo = 0, hi = 0;  // lo == hi == mean for one value
};

// Mean of `values` with its 95 % t interval (mean +- t_{0.975, n-1} * s / sqrt(n)). Empty: all zero.
MeanInterval MeanWithInterval(const std::vector<double>& values);

// First sentence of each of K windows over `sentences` sentences when one window uses `needed` consecutive
// ones: K strata of sentences / K each; window 0 starts at 0 (the one window of --samples 1), window k > 0 at
// a seed-drawn sentence of stratum k that leaves `needed` sentences inside it, so windows do not overlap.
// Err (one line) when a stratum is shorter than `needed`: the text does not hold K disjoint windows.
Result<std::vector<size_t>> KldWindowStarts(uint64_t seed, int samples, size_t sentences, size_t needed);

// Sentences from the end of `sentences` that hold `chars` characters (joined by spaces): the span of one
// window for KldWindowStarts when a window uses at most `chars` characters.
size_t SentencesForChars(const std::vector<std::string>& sentences, size_t chars);
// The window of sample text: sentences from `first`, joined by single spaces, until more than `chars`
// characters (or the end).
std::string JoinWindow(const std::vector<std::string>& sentences, size_t first, size_t chars);

// One mode over K samples: the per-sample results (in sample order) and their summary.
struct KldSummary {
  std::string mode;
  int samples = 0;
  MeanInterval mean_kl, top1_agreement, reduction;
  double p95_kl = 0, max_kl = 0;    // over the steps of every sample pooled
  double ppl_full = 0, ppl_mode = 0;  // geometric over the pooled steps: exp(mean NLL)
  double kv_bytes = 0;              // mean over the samples
};

// Summary of `runs` (K >= 1 results of one mode). ppl from each run's ppl and eval_tokens.
KldSummary SummariseKld(const std::vector<KldResult>& runs);
nlohmann::json ToJson(const KldSummary& s);

}  // namespace razor::eval
