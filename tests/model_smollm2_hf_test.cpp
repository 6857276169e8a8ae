// SmolLM2-135M-Instruct (the default model, Q4_1 GGUF) against transformers, which loads the same GGUF
// dequantized and runs it in fp32 (goldens: tests/fixtures/hf, script: tests/golden_scripts/make_hf_goldens.py).
//   exact path: every checked logit within 1e-3 x max|logit| at every position
//   fast path (fp32 activations):  top-1 agreement >= 99% of positions, mean KL(HF || razor) <= 1e-3 nats
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <utility>
#include <nlohmann/json.hpp>

#include "golden_reader.h"
#include "model_test_support.h"
#include "runtime/sampler.h"

namespace razor {
namespace {

using testing::DefaultModelPath;
using testing::FixturePath;

class SmolLM2Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = DefaultModelPath();
    if (path.empty()) return;
    auto m = LoadModel(path, false);
    ASSERT_TRUE(m.ok()) << m.error();
    model_ = *m;
    golden_ = new golden::LogitsGolden(golden::read_logits_golden(FixturePath("hf/smollm2_logits.rzgl")));
  }
  static void TearDownTestSuite() {
    model_.reset();
    delete golden_;
    golden_ = nullptr;
  }
  void SetUp() override {
    if (!model_) GTEST_SKIP() << "RAZOR_TEST_MODEL not set (scripts/test.sh sets it)";
  }
  // Positions checked: all of them, or a prefix under the sanitizer build.
  static std::vector<int32_t> Ids() {
    std::vector<int32_t> ids = golden_->token_ids;
    if (testing::UnderSanitizer()) ids.resize(std::min<size_t>(ids.size(), 96));
    return ids;
  }
  static double LogSumExp(const float* l, int n) {
    double m = l[0];
    for (int i = 1; i < n; ++i) m = std::max(m, double(l[i]));
    double s = 0;
    for (int i = 0; i < n; ++i) s += std::exp(double(l[i]) - m);
    return m + std::log(s);
  }
  static inline std::shared_ptr<LoadedModel> model_;
  static inline golden::LogitsGolden* golden_ = nullptr;
};

TEST_F(SmolLM2Test, ExactPathMatchesTransformersAtEveryPosition) {
  const auto ids = Ids();
  ASSERT_GE(ids.size(), testing::UnderSanitizer() ? 96u : 512u);
  const int V = model_->config.vocab_size;
  auto logits = testing::RunAllLogits(*model_, MathMode::kExact, ids, 256);
  ASSERT_EQ(logits.size(), ids.size() * V);
  double worst = 0;
  for (size_t p = 0; p < ids.size(); ++p) {
    const auto& r = golden_->positions[p];
    const float* ours = &logits[p * V];
    const double tol = 1e-3 * r.max_abs;
    for (const auto& e : r.top) {
      const double err = std::fabs(ours[e.id] - e.logit);
      worst = std::max(worst, err / r.max_abs);
      ASSERT_LE(err, tol) << "position " << p << " id " << e.id;
    }
    for (size_t j = 0; j < r.fixed.size(); ++j) {
      const double err = std::fabs(ours[golden_->fixed_ids[j]] - r.fixed[j]);
      worst = std::max(worst, err / r.max_abs);
      ASSERT_LE(err, tol) << "position " << p << " fixed id " << golden_->fixed_ids[j];
    }
    EXPECT_NEAR(LogSumExp(ours, V), r.lse, 1e-3 * r.max_abs) << "position " << p;
  }
  std::printf("[exact] %zu positions, worst |diff| / max|logit| = %.2e\n", ids.size(), worst);
}

TEST_F(SmolLM2Test, FastPathAgreesOnTop1AndKl) {
  const auto ids = Ids();
  const int V = model_->config.vocab_size;
  auto logits = testing::RunAllLogits(*model_, MathMode::kFast, ids, 256);
  ASSERT_EQ(logits.size(), ids.size() * V);
  int agree = 0;
  double kl_sum = 0;
  for (size_t p = 0; p < ids.size(); ++p) {
    const auto& r = golden_->positions[p];
    const float* ours = &logits[p * V];
    if (ArgMax(ours, V) == r.top[0].id) ++agree;
    // KL(P_hf || P_ours) over the top-k of HF, plus the rest of the mass as one bucket (a lower bound on
    // the true KL by the log-sum inequality; the top-64 hold nearly all of the mass).
    const double lse = LogSumExp(ours, V);
    double kl = 0, mass_hf = 0, mass_ours = 0;
    for (const auto& e : r.top) {
      const double lp_hf = e.logit - r.lse, lp_ours = ours[e.id] - lse;
      kl += std::exp(lp_hf) * (lp_hf - lp_ours);
      mass_hf += std::exp(lp_hf);
      mass_ours += std::exp(lp_ours);
    }
    const double rest_hf = std::max(1e-12, 1 - mass_hf), rest_ours = std::max(1e-12, 1 - mass_ours);
    kl += rest_hf * std::log(rest_hf / rest_ours);
    kl_sum += kl;
  }
  const double top1 = double(agree) / ids.size(), mean_kl = kl_sum / ids.size();
  std::printf("[fast] %zu positions: top-1 agreement %.4f, mean KL %.3e nats\n", ids.size(), top1, mean_kl);
  EXPECT_GE(top1, 0.99);
  EXPECT_LE(mean_kl, 1e-3);
}

}  // namespace
}  // namespace razor

namespace razor {
namespace {

// Greedy 64-token continuations of 5 prompts equal transformers' greedy output. A step may differ only
// where transformers' top two logits are closer than the path's tolerance (then the rest is not compared).
void CheckGreedy(MathMode mode, double tie_tolerance) {
  const std::string path = testing::DefaultModelPath();
  if (path.empty()) GTEST_SKIP() << "RAZOR_TEST_MODEL not set";
  auto m = LoadModel(path, false);
  ASSERT_TRUE(m.ok()) << m.error();
  std::ifstream in(testing::FixturePath("hf/smollm2_greedy.json"));
  nlohmann::json g = nlohmann::json::parse(in);
  ThreadPool pool(2);
  Transformer tf((*m)->config, (*m)->weights, pool, mode);
  int cases = 0, exact_cases = 0;
  for (const auto& c : g["cases"]) {
    if (testing::UnderSanitizer() && cases >= 1) break;
    ++cases;
    const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    const auto want = c["output_ids"].get<std::vector<int32_t>>();
    const auto gaps = c["gaps"].get<std::vector<double>>();
    FullKvCache cache((*m)->config.n_layers, (*m)->config.n_kv_heads, (*m)->config.head_dim, 4096);
    std::vector<float> logits;
    ASSERT_TRUE(tf.Forward(prompt.data(), prompt.size(), cache, false, &logits).ok());
    size_t steps = testing::UnderSanitizer() ? 8 : want.size();
    bool all_equal = true;
    for (size_t i = 0; i < steps; ++i) {
      const int32_t id = ArgMax(logits.data(), (*m)->config.vocab_size);
      if (id != want[i]) {
        EXPECT_LT(gaps[i], tie_tolerance) << "case " << cases << " step " << i << ": razor " << id << ", HF "
                                          << want[i] << " with a top-2 gap of " << gaps[i];
        all_equal = false;
        break;
      }
      ASSERT_TRUE(tf.Forward(&id, 1, cache, false, &logits).ok());
    }
    exact_cases += all_equal;
  }
  std::printf("[greedy %s] %d/%d continuations identical to transformers\n",
              mode == MathMode::kExact ? "exact" : mode == MathMode::kInt8 ? "int8" : "fast", exact_cases, cases);
  if (mode == MathMode::kExact) {
    EXPECT_EQ(exact_cases, cases);
  }
}

// Teacher-forced along transformers' greedy continuations: at every step, how far our top-2 gap (logit of
// HF's pick minus logit of HF's runner-up) is from HF's own gap. Returns {mean, worst} over all steps.
std::pair<double, double> GapErrors(MathMode mode) {
  auto m = LoadModel(testing::DefaultModelPath(), false);
  EXPECT_TRUE(m.ok()) << m.error();
  if (!m.ok()) return {1e30, 1e30};
  std::ifstream in(testing::FixturePath("hf/smollm2_greedy.json"));
  nlohmann::json g = nlohmann::json::parse(in);
  ThreadPool pool(2);
  Transformer tf((*m)->config, (*m)->weights, pool, mode);
  double sum = 0, worst = 0;
  int n = 0;
  for (const auto& c : g["cases"]) {
    if (testing::UnderSanitizer() && n > 0) break;
    const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    const auto want = c["output_ids"].get<std::vector<int32_t>>();
    const auto second = c["top2_ids"].get<std::vector<int32_t>>();
    const auto gaps = c["gaps"].get<std::vector<double>>();
    FullKvCache cache((*m)->config.n_layers, (*m)->config.n_kv_heads, (*m)->config.head_dim, 4096);
    std::vector<float> logits;
    EXPECT_TRUE(tf.Forward(prompt.data(), prompt.size(), cache, false, &logits).ok());
    const size_t steps = testing::UnderSanitizer() ? 8 : want.size();
    for (size_t i = 0; i < steps; ++i) {
      const double err = std::fabs(logits[want[i]] - logits[second[i]] - gaps[i]);
      sum += err, worst = std::max(worst, err), ++n;
      EXPECT_TRUE(tf.Forward(&want[i], 1, cache, false, &logits).ok());
    }
  }
  std::printf("[gaps %s] %d steps: |our top-2 gap - HF's| mean %.2e, worst %.2e\n",
              mode == MathMode::kInt8 ? "int8" : "fast", n, sum / n, worst);
  return {sum / n, worst};
}

TEST(SmolLM2GreedyTest, ExactPathIdenticalToTransformers) { CheckGreedy(MathMode::kExact, 1e-3); }
// The fast path keeps activations in fp32: a divergence is excused only where HF's top two are within 1e-3.
TEST(SmolLM2GreedyTest, FastPathIdenticalExceptAtNearTies) { CheckGreedy(MathMode::kFast, 1e-3); }
// --int8 rounds every decode activation to 8 bits per 32-block (the Q4_1 tensors here). Teacher-forced over
// the 320 steps, its top-2 gaps are 0.09 from transformers' on average and 0.5 at worst (AVX2 and AVX-512
// kernels alike; the fast path: < 1e-4), so a greedy step may differ where HF's top two are within 0.6.
// A wrong kernel moves logits by whole units.
TEST(SmolLM2GreedyTest, Int8PathIdenticalExceptAtNearTies) { CheckGreedy(MathMode::kInt8, 0.6); }
TEST(SmolLM2GreedyTest, Int8GapsCloseToTransformers) {
  if (testing::DefaultModelPath().empty()) GTEST_SKIP() << "RAZOR_TEST_MODEL not set";
  const auto [mean, worst] = GapErrors(MathMode::kInt8);
  EXPECT_LE(mean, 0.15);
  EXPECT_LE(worst, 0.75);
}
TEST(SmolLM2GreedyTest, FastGapsEqualTransformers) {
  if (testing::DefaultModelPath().empty()) GTEST_SKIP() << "RAZOR_TEST_MODEL not set";
  const auto [mean, worst] = GapErrors(MathMode::kFast);
  EXPECT_LE(mean, 1e-3);
  EXPECT_LE(worst, 1e-2);
}

}  // namespace
}  // namespace razor
