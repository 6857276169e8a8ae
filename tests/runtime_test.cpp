// Sampler, UTF-8 streaming and the full KV cache.
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <random>
#include <vector>

#include "kv/full_kv_cache.h"
#include "runtime/generator.h"
#include "runtime/sampler.h"

namespace razor {
namespace {

TEST(SamplerTest, GreedyPicksArgmaxAndPenaltyCanChangeIt) {
  std::vector<float> logits = {0.1f, 2.0f, 1.9f, -1.0f};
  SamplerParams p;
  p.temperature = 0;
  Sampler s(p);
  EXPECT_EQ(s.Sample(logits.data(), 4, {}), 1);
  p.repeat_penalty = 1.2f;
  Sampler pen(p);
  EXPECT_EQ(pen.Sample(logits.data(), 4, {1}), 2);  // 2.0/1.2 < 1.9
}

// The two-pass ArgMax against the plain scan ("first index above every earlier one") at lengths around its
// 16-wide lanes, with ties (few distinct values), a repeated maximum, signed zeros and NaNs.
TEST(SamplerTest, ArgMaxEqualsTheFirstIndexOfTheLargestAsAScanFindsIt) {
  auto scan = [](const std::vector<float>& x) {
    int32_t best = 0;
    for (int32_t i = 1; i < static_cast<int32_t>(x.size()); ++i)
      if (x[i] > x[best]) best = i;
    return best;
  };
  std::mt19937 rng(7);
  const float nan = std::nanf("");
  for (int n : {1, 2, 15, 16, 17, 31, 33, 1000, 128256}) {
    for (int kind = 0; kind < 5; ++kind) {
      std::vector<float> x(n);
      std::uniform_int_distribution<int> small(-3, 3);
      std::normal_distribution<float> normal(0.0f, 4.0f);
      for (float& v : x) v = kind == 1 ? static_cast<float>(small(rng)) : normal(rng);
      if (kind == 2) for (float& v : x) v = (rng() % 2) ? 0.0f : -0.0f;
      if (kind == 3) for (int i = 0; i < n; i += 3) x[i] = nan;  // NaN at 0: the scan keeps 0
      if (kind == 4 && n > 1) x[rng() % n] = nan;
      EXPECT_EQ(ArgMax(x.data(), n), scan(x)) << "n " << n << " kind " << kind;
    }
  }
  std::vector<float> twice = {1.0f, 5.0f, 2.0f, 5.0f};
  EXPECT_EQ(ArgMax(twice.data(), 4), 1);
}

TEST(SamplerTest, SameSeedSameDrawsAndTopKLimitsChoices) {
  std::vector<float> logits = {1.0f, 1.1f, 1.2f, 1.3f, 0.9f, 1.05f};
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 2;
  p.top_p = 1.0f;
  p.min_p = 0.0f;
  p.seed = 42;
  Sampler a(p), b(p);
  std::map<int, int> counts;
  for (int i = 0; i < 400; ++i) {
    int x = a.Sample(logits.data(), 6, {});
    EXPECT_EQ(x, b.Sample(logits.data(), 6, {}));
    counts[x]++;
  }
  EXPECT_EQ(counts.size(), 2u);
  EXPECT_GT(counts[3], counts[2]);  // higher logit drawn more often
}

TEST(SamplerTest, MinPAndTopPPruneTheTail) {
  std::vector<float> logits = {5.0f, 0.0f, 0.0f, 0.0f};
  SamplerParams p;
  p.temperature = 1.0f;
  p.top_k = 0;
  p.top_p = 1.0f;
  p.min_p = 0.1f;  // e^-5 < 0.1: only token 0 survives
  Sampler s(p);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(s.Sample(logits.data(), 4, {}), 0);
  p.min_p = 0.0f;
  p.top_p = 0.5f;
  Sampler t(p);
  for (int i = 0; i < 50; ++i) EXPECT_EQ(t.Sample(logits.data(), 4, {}), 0);
}

TEST(Utf8Test, HoldsBackIncompleteSequences) {
  const std::string euro = "\xE2\x82\xAC";
  EXPECT_EQ(CompleteUtf8Prefix("ab"), 2u);
  EXPECT_EQ(CompleteUtf8Prefix("a" + euro), 4u);
  EXPECT_EQ(CompleteUtf8Prefix("a" + euro.substr(0, 2)), 1u);
  EXPECT_EQ(CompleteUtf8Prefix("a" + euro.substr(0, 1)), 1u);
  EXPECT_EQ(CompleteUtf8Prefix("\xF0\x9F\x98"), 0u);
}

TEST(FullKvCacheTest, AppendsPerHeadAndCountsBytes) {
  const int layers = 2, heads = 3, d = 4;
  FullKvCache cache(layers, heads, d, 1000);
  std::vector<float> k(2 * heads * d), v(k.size());
  for (size_t i = 0; i < k.size(); ++i) {
    k[i] = float(i);
    v[i] = -float(i);
  }
  for (int l = 0; l < layers; ++l) ASSERT_TRUE(cache.Append(l, 0, 2, k.data(), v.data()).ok());
  cache.CommitTokens(2);
  EXPECT_EQ(cache.sequence_length(), 2);
  KvHeadView view = cache.View(1, 2);
  ASSERT_EQ(view.len, 2);
  EXPECT_FLOAT_EQ(view.k[0], float(2 * d));            // token 0, head 2
  EXPECT_FLOAT_EQ(view.k[d], float(heads * d + 2 * d));  // token 1, head 2
  EXPECT_FLOAT_EQ(view.v[d + 1], -float(heads * d + 2 * d + 1));
  EXPECT_GE(cache.bytes_allocated(), size_t(layers * heads * 2 * 2 * d * sizeof(float)));
  EXPECT_FALSE(cache.Append(0, 5, 1, k.data(), v.data()).ok());  // gap in positions
  FullKvCache small(1, 1, d, 3);
  EXPECT_FALSE(small.Append(0, 0, 4, k.data(), v.data()).ok());  // over capacity
}

}  // namespace
}  // namespace razor
