// razor serve's prompt-work budget beside running decodes (tools/serve/prefill_budget.h), driven by a
// simulated step cost: decode steps of d seconds with +-15 % noise, prompt work whose cost per (token, layer)
// pair grows with the prompt position (attention over more keys: 9x at 8K tokens) and, in one test, triples
// mid-prompt (a shared machine). The budget must keep steps near its target of 2 d (share 1) and never starve
// the prompt.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

#include "serve/prefill_budget.h"

namespace {

using razor::serve::PrefillBudget;

constexpr int64_t kLayers = 30;
constexpr double kDecode = 0.020;     // s, a decode-only step of 4 streams
constexpr double kPairCost = 2.0e-6;  // s per (token, layer) pair at position 0

struct Noise {  // deterministic +-15 %
  uint32_t state = 12345;
  double operator()() {
    state = state * 1664525u + 1013904223u;
    return 0.85 + 0.30 * static_cast<double>(state >> 8) / static_cast<double>(1u << 24);
  }
};

struct PromptRun {
  std::vector<double> step_seconds;  // the steps that carried prompt work beside the decodes
  double prompt_seconds = 0;         // the prompt's own share of them, summed
};

// Warms `budget` as a server would (decode-only steps, one short prompt-only step), then feeds a
// `prompt_tokens` prompt in budgeted chunks beside 4 decodes; from step `slow_from` every pair costs 3x.
PromptRun FeedPrompt(PrefillBudget& budget, int64_t prompt_tokens, int slow_from = 1 << 30) {
  Noise noise;
  budget.Observe(64 * kLayers * kPairCost * 1.3, 64 * kLayers, 0, false);  // a 64-token prompt alone
  for (int i = 0; i < 8; ++i) {
    EXPECT_GT(budget.Next(true), 0);
    budget.Observe(kDecode * noise(), 0, 4, false);
  }
  PromptRun run;
  int64_t done = 0;
  for (int step = 0; done < prompt_tokens; ++step) {
    const int64_t allowed = budget.Next(true);
    EXPECT_GE(allowed, budget.floor());
    const int64_t tokens = std::min(prompt_tokens - done, std::max<int64_t>(16, allowed / kLayers));
    const double per_pair = kPairCost * (1.0 + static_cast<double>(done + tokens / 2) / 1000.0) *
                            (step >= slow_from ? 3.0 : 1.0);
    const double prompt = static_cast<double>(tokens * kLayers) * per_pair;
    const double seconds = kDecode * noise() + prompt;
    done += tokens;
    budget.Observe(seconds, tokens * kLayers, 4, done < prompt_tokens);
    run.step_seconds.push_back(seconds);
    run.prompt_seconds += prompt;
  }
  return run;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

TEST(ServePrefillBudget, NothingDecodingMeansNoLimit) {
  PrefillBudget budget(kLayers, 256, 1.0);
  EXPECT_EQ(budget.Next(false), 0);
  EXPECT_EQ(budget.Next(true), 256 * kLayers);  // nothing measured yet: the initial chunk through every layer
}

TEST(ServePrefillBudget, StepsStayNearTwiceADecodeStepAsThePromptGetsDearer) {
  PrefillBudget budget(kLayers, 256, 1.0);
  const PromptRun run = FeedPrompt(budget, 8000);
  ASSERT_GT(run.step_seconds.size(), 10u);
  // Every step after the first few within 1.5x of the 2 d target (the fairness bound is 3x the median).
  for (size_t i = 3; i < run.step_seconds.size(); ++i)
    EXPECT_LE(run.step_seconds[i], 3.0 * kDecode) << "step " << i << " of " << run.step_seconds.size();
  const double median = Median(run.step_seconds);
  EXPECT_GT(median, 1.5 * kDecode);  // the prompt is not starved: steps carry about their share of it
  EXPECT_LT(median, 2.5 * kDecode);
  // Progress: no more steps than the prompt's cost in decode steps' worth of work, plus a quarter.
  EXPECT_LE(static_cast<double>(run.step_seconds.size()), 1.25 * run.prompt_seconds / kDecode + 3);
}

TEST(ServePrefillBudget, AMachineThatSlowsDownMidPromptIsCaughtWithinTwoSteps) {
  PrefillBudget budget(kLayers, 256, 1.0);
  const int slow_from = 20;
  const PromptRun run = FeedPrompt(budget, 8000, slow_from);
  ASSERT_GT(run.step_seconds.size(), static_cast<size_t>(slow_from + 10));
  EXPECT_GT(run.step_seconds[slow_from], 3.0 * kDecode);  // the slowdown is felt once (else the test is void)
  for (size_t i = slow_from + 2; i < run.step_seconds.size(); ++i)
    EXPECT_LE(run.step_seconds[i], 3.0 * kDecode) << "step " << i;
}

TEST(ServePrefillBudget, AStepThatCarriedLittleLeavesTheBudgetAndTheFloorHolds) {
  PrefillBudget budget(kLayers, 256, 1.0);
  budget.Observe(kDecode, 0, 4, false);
  const int64_t before = budget.Next(true);
  budget.Observe(10 * kDecode, 16 * kLayers, 4, false);  // slow, but a prompt's last 16 rows: no evidence
  EXPECT_EQ(budget.Next(true), before);
  for (int i = 0; i < 20; ++i) budget.Observe(50 * kDecode, budget.Next(true), 4, true);  // far too slow
  EXPECT_EQ(budget.Next(true), budget.floor());
  EXPECT_EQ(budget.floor(), 16 * kLayers);
}

}  // namespace
