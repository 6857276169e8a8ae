// `razor eval --samples K`: the Wilson interval against values computed independently (python3, the textbook
// formula), the aggregation of K runs into one cell, the seeds of the samples, the report text, the flag's
// validation through the real binary, and (with RAZOR_TEST_MODEL) that every mode of a cell sees the same K
// different samples.
#include <fmt/format.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>

#include <nlohmann/json.hpp>

#include "cli_test_support.h"
#include "core/thread_pool.h"
#include "eval/eval_report.h"
#include "eval_word_count.h"
#include "eval/eval_samples.h"
#include "eval/tasks.h"
#include "eval/wilson_interval.h"
#include "runtime/head_profiler.h"
#include "scratch_profile.h"
#include "runtime/loaded_model.h"

namespace razor::eval {
namespace {

namespace fs = std::filesystem;

// Expected values: python3, p = s/n, c = (p + z^2/2n) / (1 + z^2/n), h = z sqrt(p(1-p)/n + z^2/4n^2) / (1 + z^2/n).
TEST(WilsonIntervalTest, MatchesIndependentlyComputedValues) {
  struct Case {
    int64_t s, n;
    double lo, hi;
  };
  for (const Case& c : {Case{8, 10, 0.49016, 0.94332}, Case{0, 5, 0.0, 0.43448}, Case{5, 5, 0.56552, 1.0},
                        Case{50, 100, 0.40383, 0.59617}, Case{2, 3, 0.20766, 0.93851}}) {
    SCOPED_TRACE(fmt::format("{} of {}", c.s, c.n));
    const Interval ci = WilsonInterval(c.s, c.n);
    EXPECT_NEAR(ci.lo, c.lo, 5e-5);
    EXPECT_NEAR(ci.hi, c.hi, 5e-5);
  }
  const Interval none = WilsonInterval(0, 0);
  EXPECT_EQ(none.lo, 0.0);
  EXPECT_EQ(none.hi, 1.0);
  // z = 1 (68 %) is narrower than the 95 % default: 8 of 10 -> [0.6491, 0.8964] (python3, same formula).
  const Interval narrow = WilsonInterval(8, 10, 1.0);
  EXPECT_NEAR(narrow.lo, 0.64908, 5e-5);
  EXPECT_NEAR(narrow.hi, 0.89638, 5e-5);
}

CellResult OneRun(double score, double kv_bytes, const std::string& answer, const std::string& value) {
  CellResult c;
  c.task = "needle", c.mode = "razor", c.length = 1024, c.depth = 50, c.prompt_tokens = 1020;
  c.score = score, c.kv_bytes = kv_bytes, c.full_kv_bytes = 100, c.reduction = 1 - kv_bytes / 100;
  c.answer = answer, c.expected = {value}, c.prefill_tok_s = 10, c.decode_tok_s = 2, c.seconds = 1;
  return c;
}

// Ten hand-made runs: 8 right (score 1), one half right, one wrong.
std::vector<CellResult> TenRuns() {
  std::vector<CellResult> runs;
  for (int i = 0; i < 8; ++i) runs.push_back(OneRun(1, 40, fmt::format("a{}", i), fmt::format("{}", 1000 + i)));
  runs.push_back(OneRun(0.5, 40, "half", "2000"));
  runs.push_back(OneRun(0, 60, "wrong", "3000"));
  return runs;
}

TEST(EvalSamplesTest, AggregatesCorrectCountAccuracyAndInterval) {
  const std::vector<uint64_t> seeds = {11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
  const CellResult c = AggregateSamples(TenRuns(), seeds);
  EXPECT_EQ(c.samples, 10);
  EXPECT_EQ(c.correct, 8);  // 0.5 is not correct
  EXPECT_DOUBLE_EQ(c.accuracy, 0.8);
  EXPECT_NEAR(c.wilson_lo, 0.49016, 5e-5);
  EXPECT_NEAR(c.wilson_hi, 0.94332, 5e-5);
  EXPECT_NEAR(c.score, 0.85, 1e-12);      // (8 + 0.5) / 10
  EXPECT_NEAR(c.kv_bytes, 42.0, 1e-12);   // (9 * 40 + 60) / 10
  EXPECT_NEAR(c.reduction, 0.58, 1e-12);  // (9 * 0.6 + 0.4) / 10
  ASSERT_EQ(c.per_sample.size(), 10u);
  EXPECT_EQ(c.per_sample[0].seed, 11u);
  EXPECT_EQ(c.per_sample[8].answer, "half");
  EXPECT_EQ(c.per_sample[9].expected, std::vector<std::string>{"3000"});
  EXPECT_EQ(c.per_sample[8].score, 0.5);

  // One run is the run itself.
  const CellResult one = AggregateSamples({OneRun(1, 40, "x", "1")}, {5});
  EXPECT_EQ(one.samples, 1);
  EXPECT_TRUE(one.per_sample.empty());
  EXPECT_EQ(one.answer, "x");
}

TEST(EvalSamplesTest, ReportShowsTheIntervalAndJsonKeepsEverySample) {
  EvalReport r;
  r.eval = "needle";
  r.cells = {AggregateSamples(TenRuns(), {1, 2, 3, 4, 5, 6, 7, 8, 9, 10})};
  const std::string md = MarkdownReport(r);
  EXPECT_NE(md.find("| 0.80 [0.49, 0.94] (8/10) |"), std::string::npos) << md;
  EXPECT_NE(md.find("mean score 0.85"), std::string::npos) << md;
  EXPECT_NE(md.find("a0 / a1"), std::string::npos) << md;
  const nlohmann::json j = ToJson(r);
  const auto& cell = j.at("cells").at(0);
  EXPECT_EQ(cell.at("samples"), 10);
  EXPECT_EQ(cell.at("correct"), 8);
  ASSERT_EQ(cell.at("per_sample").size(), 10u);
  EXPECT_EQ(cell.at("per_sample").at(9).at("answer"), "wrong");
  auto back = ReportFromJson(j);
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->cells[0].correct, 8);
  EXPECT_NEAR(back->cells[0].wilson_lo, 0.49016, 5e-5);
  ASSERT_EQ(back->cells[0].per_sample.size(), 10u);
  EXPECT_EQ(back->cells[0].per_sample[3].seed, 4u);
  // The picture grows a second line per cell: taller cells than a one-sample grid.
  EvalReport single;
  single.eval = "needle";
  single.cells = {OneRun(1, 40, "x", "1")};
  EXPECT_GT(RenderScoreGrid(r, "razor").height, RenderScoreGrid(single, "razor").height);

  // One sample: today's score text and JSON (no sample fields).
  const std::string md1 = MarkdownReport(single);
  EXPECT_NE(md1.find("| 50 | 1.00 |"), std::string::npos) << md1;
  EXPECT_EQ(md1.find("(1/1)"), std::string::npos) << md1;
  EXPECT_FALSE(ToJson(single.cells[0]).contains("samples"));
}

using test_support::WordCount;

TEST(EvalSamplesTest, SamplesOfACellHaveTheirOwnSeedsAndNeedles) {
  EXPECT_EQ(SampleSeed(1, "needle", 1024, 50, 1), SampleSeed(2, "needle", 1024, 50, 0));  // documented: --seed + k
  std::vector<std::string> sentences;
  for (int i = 0; i < 100; ++i)
    sentences.push_back(fmt::format("Sentence {} has exactly ten words in it, no more.", i));
  const Filler filler = Filler::Make(sentences, WordCount);
  TaskInputs in;
  in.essays = &filler, in.noise = &filler, in.count = WordCount;
  for (const std::string task : {"needle", "passkey"}) {
    std::set<uint64_t> seeds;
    std::set<std::string> values;
    for (int k = 0; k < 10; ++k) {
      const uint64_t seed = SampleSeed(1, task, 1024, 50, k);
      seeds.insert(seed);
      auto s = MakeSample(task, in, 300, 50, seed);
      ASSERT_TRUE(s.ok()) << s.error();
      values.insert(s->expected.at(0));
    }
    EXPECT_EQ(seeds.size(), 10u) << task;
    EXPECT_GE(values.size(), 9u) << task;  // random 5- / 7-digit values: a repeat is possible, not likely
  }
}

TEST(EvalSamplesTest, BadSamplesValuesAreOneLineErrors) {
  for (const std::string v : {"0", "abc", "1001", "1.5", "-3", "''"}) {
    SCOPED_TRACE("--samples " + v);
    const auto o = testing_cli::RunRazor("eval needle -m /nonexistent.gguf --samples " + v);
    testing_cli::ExpectCleanError(o, "--samples");
    EXPECT_EQ(o.exit_code, 2);
  }
}

// Through the binary with the real model: K = 3 samples at 256 tokens, full and razor (a short scratch
// profile, so that nothing profiles the whole model or touches the cached profile).
TEST(EvalSamplesTest, EveryModeOfACellSeesTheSameKDifferentSamples) {
  const char* env = std::getenv("RAZOR_TEST_MODEL");
  if (env == nullptr || !fs::exists(env)) GTEST_SKIP() << "RAZOR_TEST_MODEL not set";
  if (std::getenv("RAZOR_TEST_SANITIZER") != nullptr) GTEST_SKIP() << "skipped under the sanitizer run";
  auto model = LoadModel(env);
  ASSERT_TRUE(model.ok()) << model.error();
  if (!(*model)->tokenizer) GTEST_SKIP() << "model has no tokenizer";
  const std::string dir = testing_cli::ScratchDir() + "/eval_samples";
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string profile_path = dir + "/profile.json";
  auto profile = testing::SaveScratchProfile(**model, profile_path);
  ASSERT_TRUE(profile.ok()) << profile.error();
  const auto o = testing_cli::RunRazor(fmt::format(
      "eval passkey -m '{}' --profile '{}' --lengths 256 --depths 50 --samples 3 --modes full,razor -t 2 "
      "--out '{}/out'", env, profile_path, dir));
  ASSERT_EQ(o.exit_code, 0) << o.err;
  std::ifstream in(dir + "/out/passkey.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  const auto& cells = j.at("cells");
  ASSERT_EQ(cells.size(), 2u);
  EXPECT_EQ(j.at("settings").at("samples"), 3);
  for (const auto& c : cells) {
    SCOPED_TRACE(c.at("mode").get<std::string>());
    EXPECT_EQ(c.at("samples"), 3);
    ASSERT_EQ(c.at("per_sample").size(), 3u);
    std::set<std::string> keys;
    std::set<uint64_t> seeds;
    int correct = 0;
    for (const auto& s : c.at("per_sample")) {
      keys.insert(s.at("expected").at(0).get<std::string>());
      seeds.insert(s.at("seed").get<uint64_t>());
      correct += s.at("score").get<double>() == 1.0;
    }
    EXPECT_EQ(keys.size(), 3u);
    EXPECT_EQ(seeds.size(), 3u);
    EXPECT_EQ(c.at("correct"), correct);
    EXPECT_EQ(c.at("per_sample").at(0).at("seed").get<uint64_t>(), SampleSeed(1, "passkey", 256, 50, 0));
  }
  for (size_t k = 0; k < 3; ++k) {  // paired: the same prompt in both modes
    const auto& a = cells.at(0).at("per_sample").at(k);
    const auto& b = cells.at(1).at("per_sample").at(k);
    EXPECT_EQ(a.at("seed"), b.at("seed"));
    EXPECT_EQ(a.at("expected"), b.at("expected"));
    EXPECT_EQ(a.at("prompt_tokens"), b.at("prompt_tokens"));
  }
  std::ifstream md_in(dir + "/out/passkey.md");
  const std::string md((std::istreambuf_iterator<char>(md_in)), std::istreambuf_iterator<char>());
  EXPECT_NE(md.find("/3) |"), std::string::npos) << md;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace razor::eval
