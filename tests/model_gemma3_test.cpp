// Gemma 3 270M (Q4_K_M GGUF): the sliding-window architecture. RazorAttention on it: a local layer's head is
// cut to its window (what its attention sees anyway), so with every global head kept whole the razor cache
// gives the full cache's logits while holding a fraction of its bytes; retrieval heads come only from the
// global layers.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "kv/razor_kv_cache.h"
#include "model_test_support.h"
#include "runtime/kv_cache_factory.h"

namespace razor {
namespace {

using testing::FixturePath;
using testing::Gemma3ModelPath;

class Gemma3Test : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = Gemma3ModelPath();
    if (path.empty()) return;
    auto m = LoadModel(path, true);
    ASSERT_TRUE(m.ok()) << m.error();
    model_ = *m;
  }
  static void TearDownTestSuite() { model_.reset(); }
  void SetUp() override {
    if (!model_) GTEST_SKIP() << "RAZOR_TEST_GEMMA3 not set (scripts/test.sh sets it)";
  }
  // A prompt of real prose well past the 512-token window: the Python reference's execution-model chapter.
  static std::vector<int32_t> LongPrompt(size_t n) {
    std::ifstream in(FixturePath("hf/smollm2_text.json"));
    const auto j = nlohmann::json::parse(in);
    std::vector<int32_t> ids = model_->tokenizer->Encode(j["text"].get<std::string>(), true, false);
    EXPECT_GE(ids.size(), n);
    ids.resize(std::min(ids.size(), n));
    return ids;
  }
  static inline std::shared_ptr<LoadedModel> model_;
};

TEST_F(Gemma3Test, ConfigIsGemma3With3GlobalLayers) {
  const ModelConfig& c = model_->config;
  EXPECT_EQ(c.arch, Architecture::kGemma3);
  EXPECT_EQ(c.n_layers, 18);
  EXPECT_EQ(c.sliding_window, 512);
  int global = 0;
  for (int l = 0; l < c.n_layers; ++l) global += c.is_local_layer(l) ? 0 : 1;
  EXPECT_EQ(global, 3);
}

// The policy: local heads keep their 512-token window and are never retrieval heads, even when the profile
// scores them best; the retrieval ratio applies to the global heads.
TEST_F(Gemma3Test, RetrievalHeadsComeOnlyFromGlobalLayers) {
  const ModelConfig& c = model_->config;
  HeadProfile profile;
  profile.kv_induction.assign(c.n_layers * c.n_kv_heads, 0.0f);
  profile.kv_echo.assign(c.n_layers * c.n_kv_heads, 0.0f);
  for (int l = 0; l < c.n_layers; ++l) profile.kv_induction[l] = c.is_local_layer(l) ? 10.0f + l : 1.0f + l;
  profile.params.induction_ratio = 0.34;  // of 3 global heads: ceil(1.02) = 2
  profile.params.echo_ratio = 0.0;
  KvCacheOptions o;
  o.mode = KvMode::kRazor;
  auto policy = MakeKvPolicy(*model_, o, 4096, 2000, &profile);
  ASSERT_TRUE(policy.ok()) << policy.error();
  for (int l = 0; l < c.n_layers; ++l) {
    SCOPED_TRACE(l);
    EXPECT_EQ(policy->is_retrieval(l, 0), l == 11 || l == 17);  // the two best-scoring global heads
    if (c.is_local_layer(l)) EXPECT_EQ(policy->HeadWindow(l, 0, 2000), 512);
  }
  o.mode = KvMode::kStreaming;  // local heads keep their window in every compressing mode
  auto streaming = MakeKvPolicy(*model_, o, 4096, 2000, &profile);
  ASSERT_TRUE(streaming.ok()) << streaming.error();
  EXPECT_EQ(streaming->HeadWindow(0, 0, 2000), 512);
  EXPECT_FALSE(streaming->is_retrieval(5, 0));
}

// Every global head kept whole, every local head cut to sinks + 512 + compensation after a 1,100-token
// prompt: the logits of the prompt's last token and of 16 decode steps are the full cache's (the window's
// keys are the same keys), with a small fraction of the KV bytes.
TEST_F(Gemma3Test, LocalWindowCutGivesTheFullCachesLogits) {
  const ModelConfig& c = model_->config;
  const auto prompt = LongPrompt(testing::UnderSanitizer() ? 600 : 1100);
  HeadProfile profile;
  profile.kv_induction.assign(c.n_layers * c.n_kv_heads, 1.0f);
  profile.kv_echo.assign(c.n_layers * c.n_kv_heads, 0.0f);
  profile.params.induction_ratio = 1.0;
  KvCacheOptions o;
  o.mode = KvMode::kRazor;
  o.razor.window_min = 64;  // a compressed head would keep only 64: none is, but local heads keep 512
  o.kv_type = KvType::kF32;
  auto policy = MakeKvPolicy(*model_, o, 4096, static_cast<int64_t>(prompt.size()), &profile);
  ASSERT_TRUE(policy.ok()) << policy.error();
  RazorKvCache razor(std::move(*policy), c.head_dim, 4096, KvType::kF32);
  FullKvCache full(c.n_layers, c.n_kv_heads, c.head_dim, 4096);
  ThreadPool pool(2);
  Transformer tf(c, model_->weights, pool, MathMode::kFast);
  std::vector<float> want, got;
  full.BeginPrefill(static_cast<int64_t>(prompt.size()));
  razor.BeginPrefill(static_cast<int64_t>(prompt.size()));
  ASSERT_TRUE(tf.Forward(prompt.data(), prompt.size(), full, false, &want).ok());
  ASSERT_TRUE(tf.Forward(prompt.data(), prompt.size(), razor, false, &got).ok());
  const RazorKvStats stats = razor.stats();
  EXPECT_EQ(stats.heads_compressed, 15);
  EXPECT_LT(razor.bytes_allocated(), full.bytes_allocated() / 2);
  double worst = 0;
  for (int step = 0; step <= 16; ++step) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < want.size(); ++i) worst = std::max(worst, double(std::fabs(got[i] - want[i])));
    ASSERT_LE(worst, 1e-3) << "step " << step;
    const int32_t next = static_cast<int32_t>(1000 + 37 * step);
    ASSERT_TRUE(tf.Forward(&next, 1, full, false, &want).ok());
    ASSERT_TRUE(tf.Forward(&next, 1, razor, false, &got).ok());
  }
  std::printf("[gemma3 razor window] %zu-token prompt + 16 steps: worst |logit diff| %.2e, KV %zu of %zu bytes\n",
              prompt.size(), worst, razor.bytes_allocated(), full.bytes_allocated());
}

}  // namespace
}  // namespace razor
