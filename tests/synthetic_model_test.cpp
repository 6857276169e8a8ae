// Synthetic (random-weight) models of named shapes: the real models' sizes, every matrix without host data
// (the GPU fills it), a tied output counted once, and a clear error for an unknown shape; their synthetic head
// profiles pick the asked-for share of KV heads, reproducibly per seed.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "runtime/engine.h"
#include "runtime/synthetic_model.h"

namespace razor {
namespace {

TEST(SyntheticModelTest, NamedShapesHaveTheRealModelsSizes) {
  // Parameter counts the released checkpoints publish (8.03B, 7.62B, 135M; untied embeddings counted twice).
  const std::pair<const char*, int64_t> shapes[] = {
      {"llama-3.1-8b", 8030261248}, {"qwen2.5-7b", 7615616512}, {"smollm2-135m", 134515008}};
  for (auto [name, params] : shapes) {
    auto m = MakeSyntheticModel(name);
    ASSERT_TRUE(m.ok()) << m.error();
    const LoadedModel& lm = **m;
    EXPECT_TRUE(lm.config.Validate().ok()) << name;
    int64_t norms = 0;  // the norm gains (and qwen's q/k/v biases) are vectors, not matrices
    for (const LayerWeights& l : lm.weights.layers)
      norms += l.attn_norm.size() + l.ffn_norm.size() + l.bq.size() + l.bk.size() + l.bv.size();
    norms += lm.weights.output_norm.size();
    EXPECT_EQ(lm.weights.parameter_count + norms, params) << name;
    for (const TensorView* t : WeightMatrices(lm.weights)) {
      EXPECT_EQ(t->data, nullptr) << name << " " << t->name;
      EXPECT_EQ(t->type, TensorType::BF16) << name << " " << t->name;
    }
  }
}

TEST(SyntheticModelTest, UnknownShapeIsAClearError) {
  auto m = MakeSyntheticModel("gpt-5");
  ASSERT_FALSE(m.ok());
  EXPECT_NE(m.error().find("unknown synthetic shape 'gpt-5'"), std::string::npos) << m.error();
  EXPECT_NE(m.error().find("llama-3.1-8b"), std::string::npos) << m.error();
}

// 15 % of Llama-3.1-8B's 256 KV heads is ceil(38.4) = 39 heads, spread over the layers; the same seed picks the
// same heads, another seed others; the profile matches its model and not another shape.
TEST(SyntheticModelTest, SyntheticProfilePicksTheFractionOfHeadsPerSeed) {
  auto m = MakeSyntheticModel("llama-3.1-8b");
  ASSERT_TRUE(m.ok()) << m.error();
  auto a = MakeSyntheticProfile(**m, 0.15, 1), b = MakeSyntheticProfile(**m, 0.15, 1),
       c = MakeSyntheticProfile(**m, 0.15, 2);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->retrieval.size(), 39u);
  EXPECT_EQ(a->retrieval, b->retrieval);
  EXPECT_NE(a->retrieval, c->retrieval);
  std::set<int> layers;
  for (const KvHeadId& h : a->retrieval) layers.insert(h.layer);
  EXPECT_GT(layers.size(), 10u);
  const auto mask = a->RetrievalMask();
  EXPECT_EQ(std::count(mask.begin(), mask.end(), true), 39);
  EXPECT_TRUE(a->CheckMatches(ModelIdentityOf(**m)).ok());
  auto other = MakeSyntheticModel("qwen2.5-7b");
  ASSERT_TRUE(other.ok());
  EXPECT_FALSE(a->CheckMatches(ModelIdentityOf(**other)).ok());
  auto zero = MakeSyntheticProfile(**m, 0.0, 1);
  ASSERT_TRUE(zero.ok());
  EXPECT_TRUE(zero->retrieval.empty());
  auto bad = MakeSyntheticProfile(**m, 1.5, 1);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.error().find("fraction 1.5"), std::string::npos) << bad.error();
}

}  // namespace
}  // namespace razor
