// Synthetic (random-weight) models of named shapes: the real models' sizes, every matrix without host data
// (the GPU fills it), a tied output counted once, and a clear error for an unknown shape.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace razor
