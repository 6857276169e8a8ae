// RazorAttention through the whole model (tiny HF llama checkpoint): with W >= N the output equals the full
// cache's exactly; with a small window heads really are compressed and the output is still a distribution.
#include <gtest/gtest.h>

#include <cmath>

#include "golden_reader.h"
#include "kv/razor_kv_cache.h"
#include "model_test_support.h"

namespace razor {
namespace {

std::vector<float> RunWith(const LoadedModel& m, KvCache& cache, const std::vector<int32_t>& ids, int64_t decode) {
  ThreadPool pool(2);
  Transformer tf(m.config, m.weights, pool, MathMode::kFast);
  std::vector<float> logits, all;
  cache.BeginPrefill(static_cast<int64_t>(ids.size()));
  EXPECT_TRUE(tf.Forward(ids.data(), ids.size(), cache, false, &logits).ok());
  all = logits;
  for (int64_t i = 0; i < decode; ++i) {
    const int32_t next = static_cast<int32_t>(i * 7 % m.config.vocab_size);
    EXPECT_TRUE(tf.Forward(&next, 1, cache, false, &logits).ok());
    all.insert(all.end(), logits.begin(), logits.end());
  }
  return all;
}

std::unique_ptr<RazorKvCache> MakeRazor(const ModelConfig& c, KvMode mode, int64_t window_min, int64_t sinks,
                                        bool decode_fold = false) {
  RazorParams p;
  p.decode_fold = decode_fold;
  p.mode = mode;
  p.window_min = window_min;
  p.sinks = sinks;
  p.block_tokens = 8;
  std::vector<bool> retrieval(c.n_layers * c.n_kv_heads, false);
  retrieval[0] = true;  // one retrieval head
  auto policy = KvHeadPolicy::Make(p, c.n_layers, c.n_kv_heads, mode == KvMode::kRazor ? retrieval : std::vector<bool>{});
  EXPECT_TRUE(policy.ok()) << policy.error();
  return std::make_unique<RazorKvCache>(std::move(*policy), c.head_dim, 256);
}

TEST(RazorModelTest, WindowCoveringThePromptEqualsFullCacheExactly) {
  auto m = LoadModel(testing::FixturePath("hf/tiny_llama"), false);
  ASSERT_TRUE(m.ok()) << m.error();
  const auto ids = golden::read_logits_golden(testing::FixturePath("hf/tiny_llama/logits.rzgl")).token_ids;
  const ModelConfig& c = (*m)->config;
  FullKvCache full(c.n_layers, c.n_kv_heads, c.head_dim, 256);
  auto want = RunWith(**m, full, ids, 8);
  for (KvMode mode : {KvMode::kFull, KvMode::kRazor, KvMode::kStreaming}) {
    auto razor = MakeRazor(c, mode, /*window_min=*/1000, /*sinks=*/4);
    auto got = RunWith(**m, *razor, ids, 8);
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], want[i]) << KvModeName(mode) << " at " << i;
  }
}

TEST(RazorModelTest, SmallWindowCompressesAndStaysFinite) {
  auto m = LoadModel(testing::FixturePath("hf/tiny_llama"), false);
  ASSERT_TRUE(m.ok()) << m.error();
  const auto ids = golden::read_logits_golden(testing::FixturePath("hf/tiny_llama/logits.rzgl")).token_ids;
  const ModelConfig& c = (*m)->config;
  FullKvCache full(c.n_layers, c.n_kv_heads, c.head_dim, 256);
  auto want = RunWith(**m, full, ids, 4);
  auto razor = MakeRazor(c, KvMode::kRazor, /*window_min=*/6, /*sinks=*/2);
  auto got = RunWith(**m, *razor, ids, 4);
  EXPECT_GT(razor->stats().heads_compressed, 0);
  EXPECT_EQ(razor->stats().heads_full, 1);
  double max_diff = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(std::isfinite(got[i]));
    max_diff = std::max(max_diff, double(std::fabs(got[i] - want[i])));
  }
  EXPECT_GT(max_diff, 0.0);  // tokens were really dropped
  // The compressed heads hold sinks + window (+ decode tokens); a head of the full cache holds them all.
  const KvHeadView v = razor->View(1, 1);
  EXPECT_EQ(v.len, 2 + 6 + 4);
  EXPECT_EQ(v.comp_count, static_cast<int64_t>(ids.size()) - 2 - 6);
}

// ALiBi (tiny BLOOM): kept keys carry absolute positions, so a window covering the prompt is exact; compressed
// heads (also with decode folding) keep the dropped range contiguous, which the kernel's ALiBi compensation
// bias relies on: (comp_max_position - comp_count, comp_max_position] == [sinks, first window position).
TEST(RazorModelTest, AlibiBloomExactWithFullWindowAndContiguousDroppedRange) {
  auto m = LoadModel(testing::FixturePath("hf/tiny_bloom"), false);
  ASSERT_TRUE(m.ok()) << m.error();
  const auto ids = golden::read_logits_golden(testing::FixturePath("hf/tiny_bloom/logits.rzgl")).token_ids;
  const ModelConfig& c = (*m)->config;
  ASSERT_TRUE(c.alibi);
  FullKvCache full(c.n_layers, c.n_kv_heads, c.head_dim, 256);
  auto want = RunWith(**m, full, ids, 8);
  auto wide = MakeRazor(c, KvMode::kRazor, /*window_min=*/1000, /*sinks=*/4);
  auto got = RunWith(**m, *wide, ids, 8);
  ASSERT_EQ(got, want);
  for (bool fold : {false, true}) {
    auto razor = MakeRazor(c, KvMode::kRazor, /*window_min=*/6, /*sinks=*/2, fold);
    auto out = RunWith(**m, *razor, ids, 5);
    EXPECT_GT(razor->stats().heads_compressed, 0);
    for (float x : out) ASSERT_TRUE(std::isfinite(x));
    const KvHeadView v = razor->View(1, 1);
    ASSERT_GT(v.comp_count, 0);
    EXPECT_EQ(v.comp_max_position - v.comp_count + 1, 2) << "fold=" << fold;  // first dropped = first after sinks
    EXPECT_EQ(v.positions[2], v.comp_max_position + 1) << "fold=" << fold;    // window starts right after
  }
}

}  // namespace
}  // namespace razor
