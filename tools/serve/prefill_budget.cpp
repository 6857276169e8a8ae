#include "serve/prefill_budget.h"

#include <algorithm>

namespace razor::serve {

namespace {
constexpr double kKeep = 0.8;      // weight of the past in the moving averages
constexpr double kMostShrink = 0.125;  // a step cuts the budget to no less than 1/8 of what it was
constexpr double kMostGrowth = 1.5;    // and grows it to no more than 1.5x

double Average(double past, double sample) { return past > 0 ? kKeep * past + (1 - kKeep) * sample : sample; }
}  // namespace

PrefillBudget::PrefillBudget(int64_t n_layers, int64_t initial_tokens, double share)
    : n_layers_(std::max<int64_t>(1, n_layers)), initial_tokens_(std::max<int64_t>(1, initial_tokens)),
      share_(share > 0 ? share : 1.0) {}

int64_t PrefillBudget::Next(bool decoding) {
  if (!decoding) return 0;
  if (!steered_) {  // the seed, re-made from the latest measurements until the feedback has taken over
    budget_ = decode_step_seconds_ > 0 && prompt_rate_ > 0 ? prompt_rate_ * decode_step_seconds_ * share_
                                                           : static_cast<double>(initial_tokens_ * n_layers_);
  }
  budget_ = std::max(budget_, static_cast<double>(floor()));
  return static_cast<int64_t>(budget_);
}

void PrefillBudget::Observe(double seconds, int64_t prompt_work, int64_t decodes, bool budget_bound) {
  if (seconds <= 0) return;
  if (prompt_work == 0) {
    if (decodes > 0) decode_step_seconds_ = Average(decode_step_seconds_, seconds);
    return;
  }
  if (decodes == 0) {
    prompt_rate_ = Average(prompt_rate_, static_cast<double>(prompt_work) / seconds);
    return;
  }
  if (decode_step_seconds_ <= 0 || budget_ <= 0) return;  // no target yet: the seed stays
  const double ratio = decode_step_seconds_ * (1 + share_) / seconds;
  // A step that carried less than half the budget (its prompt was ending) says little about the budget: kept.
  if (!budget_bound && static_cast<double>(prompt_work) * 2 < budget_) return;
  const double base = budget_bound ? budget_ : static_cast<double>(prompt_work);
  if (ratio < 1) {
    budget_ = base * std::max(kMostShrink, ratio);
  } else if (budget_bound) {
    budget_ = base * std::min(kMostGrowth, ratio);
  }
  steered_ = true;
  budget_ = std::max(budget_, static_cast<double>(floor()));
}

}  // namespace razor::serve
