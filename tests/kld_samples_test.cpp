// `razor eval kld --samples K`: the t quantiles against the textbook table, the mean's interval against values
// computed independently (python3 statistics.stdev), the windows' first sentences, the summary of K runs, and
// through the real binary with RAZOR_TEST_MODEL: K windows with their own text, a summary per mode, and KL 0 for
// the full cache against itself.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_test_support.h"
#include "eval/haystack.h"
#include "eval/kld_samples.h"

namespace razor::eval {
namespace {

namespace fs = std::filesystem;

TEST(StudentT975Test, MatchesTheTable) {
  EXPECT_NEAR(StudentT975(1), 12.706, 1e-3);
  EXPECT_NEAR(StudentT975(2), 4.303, 1e-3);
  EXPECT_NEAR(StudentT975(4), 2.776, 1e-3);
  EXPECT_NEAR(StudentT975(9), 2.262, 1e-3);
  EXPECT_NEAR(StudentT975(30), 2.042, 1e-3);
  EXPECT_NEAR(StudentT975(40), 2.021, 1e-3);
  EXPECT_NEAR(StudentT975(50), 2.009, 3e-3);   // table: 2.009 (interpolated between 40 and 60)
  EXPECT_NEAR(StudentT975(100), 1.984, 3e-3);  // table: 1.984
  EXPECT_NEAR(StudentT975(120), 1.980, 1e-3);
  EXPECT_NEAR(StudentT975(1000000), 1.960, 1e-3);
  EXPECT_TRUE(std::isinf(StudentT975(0)));
  for (int df = 1; df < 200; ++df) EXPECT_GE(StudentT975(df), StudentT975(df + 1)) << df;  // falls with df
}

// Expected: python3, m = statistics.mean(v), h = t * statistics.stdev(v) / sqrt(len(v)).
TEST(MeanWithIntervalTest, MatchesIndependentlyComputedValues) {
  const MeanInterval a = MeanWithInterval({0.01, 0.03, 0.02, 0.05, 0.04});
  EXPECT_NEAR(a.mean, 0.03, 1e-12);
  EXPECT_NEAR(a.lo, 0.0103707, 1e-6);
  EXPECT_NEAR(a.hi, 0.0496293, 1e-6);
  const MeanInterval b = MeanWithInterval({0.5, 0.7});
  EXPECT_NEAR(b.lo, -0.6706, 1e-4);
  EXPECT_NEAR(b.hi, 1.8706, 1e-4);
  const MeanInterval one = MeanWithInterval({0.25});
  EXPECT_EQ(one.lo, 0.25);
  EXPECT_EQ(one.hi, 0.25);
  const MeanInterval same = MeanWithInterval({0.1, 0.1, 0.1});
  EXPECT_NEAR(same.hi - same.lo, 0.0, 1e-15);
}

TEST(KldWindowStartsTest, DisjointWindowsOnePerStratumFirstFromTheStart) {
  auto one = KldWindowStarts(1, 1, 5000, 300);
  ASSERT_TRUE(one.ok()) << one.error();
  EXPECT_EQ(*one, std::vector<size_t>{0});
  auto w = KldWindowStarts(1, 10, 5000, 300);  // strata of 500 sentences, windows of 300
  ASSERT_TRUE(w.ok()) << w.error();
  ASSERT_EQ(w->size(), 10u);
  EXPECT_EQ((*w)[0], 0u);
  for (size_t k = 1; k < w->size(); ++k) {
    SCOPED_TRACE(k);
    EXPECT_GE((*w)[k], k * 500);            // inside stratum k ...
    EXPECT_LE((*w)[k] + 300, (k + 1) * 500);  // ... with its whole window
    EXPECT_GE((*w)[k], (*w)[k - 1] + 300);  // so no two windows overlap
  }
  auto again = KldWindowStarts(1, 10, 5000, 300);
  EXPECT_EQ(*w, *again);  // a fixed draw
  auto other = KldWindowStarts(2, 10, 5000, 300);
  EXPECT_NE(*w, *other);
  std::set<size_t> offsets;  // the draws are spread inside the strata, not all at one offset
  for (size_t k = 1; k < w->size(); ++k) offsets.insert((*w)[k] - k * 500);
  EXPECT_GE(offsets.size(), 8u);
}

TEST(KldWindowStartsTest, RefusesWhenTheTextDoesNotHoldKDisjointWindows) {
  auto w = KldWindowStarts(1, 10, 2999, 300);
  ASSERT_FALSE(w.ok());
  EXPECT_NE(w.error().find("--samples 10"), std::string::npos) << w.error();
  EXPECT_TRUE(KldWindowStarts(1, 10, 3000, 300).ok());  // exactly ten strata of 300
  EXPECT_FALSE(KldWindowStarts(1, 0, 3000, 300).ok());
}

TEST(SummariseKldTest, MeansIntervalsPooledTailAndPerplexity) {
  KldResult a, b;
  a.mode = b.mode = "razor";
  a.mean_kl = 0.02, b.mean_kl = 0.04;
  a.top1_agreement = 0.9, b.top1_agreement = 0.8;
  a.reduction = 0.66, b.reduction = 0.68;
  a.kv_bytes = 100, b.kv_bytes = 300;
  a.max_kl = 0.5, b.max_kl = 0.3;
  a.kl.assign(10, 0.01);
  b.kl.assign(10, 0.03);
  b.kl[9] = 0.3;
  a.eval_tokens = 10, b.eval_tokens = 30;
  a.ppl_full = 10, a.ppl_mode = 11, b.ppl_full = 20, b.ppl_mode = 20;
  const KldSummary s = SummariseKld({a, b});
  EXPECT_EQ(s.mode, "razor");
  EXPECT_EQ(s.samples, 2);
  EXPECT_NEAR(s.mean_kl.mean, 0.03, 1e-12);
  EXPECT_NEAR(s.mean_kl.hi - s.mean_kl.mean, 12.706 * 0.01414214 / std::sqrt(2.0), 1e-5);
  EXPECT_NEAR(s.top1_agreement.mean, 0.85, 1e-12);
  EXPECT_NEAR(s.reduction.mean, 0.67, 1e-12);
  EXPECT_EQ(s.kv_bytes, 200);
  EXPECT_EQ(s.max_kl, 0.5);
  EXPECT_NEAR(s.p95_kl, 0.3, 1e-12);  // 20 pooled steps: index 19 is the one 0.3
  // exp((10 ln 10 + 30 ln 20) / 40) and exp((10 ln 11 + 30 ln 20) / 40)
  EXPECT_NEAR(s.ppl_full, std::exp((10 * std::log(10.0) + 30 * std::log(20.0)) / 40), 1e-9);
  EXPECT_NEAR(s.ppl_mode, std::exp((10 * std::log(11.0) + 30 * std::log(20.0)) / 40), 1e-9);
  const nlohmann::json j = ToJson(s);
  EXPECT_EQ(j.at("samples"), 2);
  EXPECT_NEAR(j.at("mean_kl").at("lo").get<double>(), s.mean_kl.lo, 1e-15);
}

TEST(SummariseKldTest, IntervalsStayInsideTheQuantitiesRanges) {
  KldResult a, b;
  a.mode = b.mode = "razor";
  a.mean_kl = 0.001, b.mean_kl = 0.2;        // t interval of 2 values reaches below 0
  a.top1_agreement = 1.0, b.top1_agreement = 0.7;  // ... and above 1
  const KldSummary s = SummariseKld({a, b});
  EXPECT_EQ(s.mean_kl.lo, 0.0);
  EXPECT_EQ(s.top1_agreement.hi, 1.0);
  EXPECT_GT(s.mean_kl.hi, 0.2);
}

TEST(EvalKldSamplesTest, BadSamplesValuesAreOneLineErrors) {
  for (const std::string v : {"0", "-2", "abc", "1001"}) {
    SCOPED_TRACE(v);
    const auto o = testing_cli::RunRazor("eval kld -m /nonexistent.gguf --samples " + v);
    testing_cli::ExpectCleanError(o, "--samples");
  }
}

// Through the binary with the real model: 3 windows of 256 tokens, 12 steps each, the full cache against
// itself (no profile needed): KL 0 and full agreement in every window (one engine, the same tokens), three
// different texts, and a summary with its interval.
TEST(EvalKldSamplesTest, WindowsHaveTheirOwnTextAndASummaryPerMode) {
  const char* env = std::getenv("RAZOR_TEST_MODEL");
  if (env == nullptr || !fs::exists(env)) GTEST_SKIP() << "RAZOR_TEST_MODEL not set";
  if (std::getenv("RAZOR_TEST_SANITIZER") != nullptr) GTEST_SKIP() << "skipped under the sanitizer run";
  if (!LoadHaystackText(DefaultHaystackDir()).ok()) GTEST_SKIP() << "no essays (scripts/fetch_eval_data.sh)";
  const std::string dir = testing_cli::ScratchDir() + "/eval_kld_samples";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto o = testing_cli::RunRazor(fmt::format(
      "eval kld -m '{}' --kv full --length 256 --steps 12 --samples 3 -t 2 --out '{}'", env, dir));
  ASSERT_EQ(o.exit_code, 0) << o.err;
  std::ifstream in(dir + "/kld.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j.at("samples"), 3);
  const auto& starts = j.at("sample_first_sentences");
  ASSERT_EQ(starts.size(), 3u);
  EXPECT_EQ(starts.at(0), 0);
  EXPECT_EQ(std::set<size_t>(starts.begin(), starts.end()).size(), 3u);
  ASSERT_EQ(j.at("results").size(), 3u);  // 3 windows
  std::set<double> ppl_full;
  for (const auto& r : j.at("results")) {
    ppl_full.insert(r.at("ppl_full").get<double>());
    if (r.at("mode") == "full") {
      EXPECT_EQ(r.at("mean_kl").get<double>(), 0.0);
      EXPECT_EQ(r.at("top1_agreement").get<double>(), 1.0);
    }
  }
  EXPECT_EQ(ppl_full.size(), 3u);  // three different texts
  const auto& sums = j.at("summaries");
  ASSERT_EQ(sums.size(), 1u);
  for (const auto& s : sums) {
    EXPECT_EQ(s.at("samples"), 3);
    const double lo = s.at("mean_kl").at("lo"), mean = s.at("mean_kl").at("mean"), hi = s.at("mean_kl").at("hi");
    EXPECT_LE(lo, mean);
    EXPECT_LE(mean, hi);
  }
  std::ifstream md_in(dir + "/kld.md");
  const std::string md((std::istreambuf_iterator<char>(md_in)), std::istreambuf_iterator<char>());
  EXPECT_NE(md.find("95 % t interval"), std::string::npos) << md;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace razor::eval
