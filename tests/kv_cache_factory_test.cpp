// The KV cache factory on a tiny checkpoint: a profile given by path is used (and a missing one refused), and
// the --induction-ratio ablation re-selects retrieval heads from the profile's scores.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "golden_reader.h"
#include "kv/razor_kv_cache.h"
#include "model_test_support.h"
#include "runtime/head_profiler.h"
#include "runtime/kv_cache_factory.h"

namespace razor {
namespace {

class KvCacheFactoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto m = LoadModel(testing::FixturePath("hf/tiny_llama"), false);
    ASSERT_TRUE(m.ok()) << m.error();
    model_ = *m;
    ids_ = golden::read_logits_golden(testing::FixturePath("hf/tiny_llama/logits.rzgl")).token_ids;
    HeadProfilerOptions po;
    po.block = 16;
    po.repeats = 2;
    po.bos_id = 0;
    auto profile = ProfileHeads(*model_, pool_, MathMode::kFast, po);
    ASSERT_TRUE(profile.ok()) << profile.error();
    profile_ = *profile;
    path_ = (std::filesystem::temp_directory_path() / ("razor_factory_test_" + std::to_string(::getpid()) + ".json"))
                .string();
    ASSERT_TRUE(profile_.Save(path_, /*overwrite=*/true).ok());
  }
  void TearDown() override { std::filesystem::remove(path_); }

  // Prefills the golden ids into a razor cache made by the factory; returns its stats.
  RazorKvStats Prefill(const KvCacheOptions& o) {
    auto cache = MakeKvCache(*model_, o, 256, static_cast<int64_t>(ids_.size()), pool_);
    EXPECT_TRUE(cache.ok()) << cache.error();
    if (!cache.ok()) return {};
    Transformer tf(model_->config, model_->weights, pool_, MathMode::kFast);
    std::vector<float> logits;
    (*cache)->BeginPrefill(static_cast<int64_t>(ids_.size()));
    EXPECT_TRUE(tf.Forward(ids_.data(), ids_.size(), **cache, false, &logits).ok());
    auto* razor = dynamic_cast<RazorKvCache*>(cache->get());
    EXPECT_NE(razor, nullptr);
    return razor ? razor->stats() : RazorKvStats{};
  }

  ThreadPool pool_{2};
  std::shared_ptr<LoadedModel> model_;
  std::vector<int32_t> ids_;
  HeadProfile profile_;
  std::string path_;
};

TEST_F(KvCacheFactoryTest, InductionRatioReselectsRetrievalHeadsFromTheScores) {
  const int total = model_->config.n_layers * model_->config.n_kv_heads;
  KvCacheOptions o;
  o.mode = KvMode::kRazor;
  o.profile_path = path_;
  o.razor.window_min = 2;
  o.razor.window_frac = 0;
  o.razor.sinks = 1;
  o.razor.block_tokens = 8;
  ASSERT_GT(static_cast<int64_t>(ids_.size()), 1 + 2 + 1) << "the golden prompt must be long enough to compress";

  const RazorKvStats base = Prefill(o);
  EXPECT_EQ(base.heads_full, static_cast<int64_t>(profile_.retrieval.size()));
  EXPECT_EQ(base.heads_compressed, total - base.heads_full);

  o.induction_ratio = 1.0;  // every head ranks in the top 100%: nothing is compressed
  const RazorKvStats all = Prefill(o);
  EXPECT_EQ(all.heads_full, total);
  EXPECT_EQ(all.heads_compressed, 0);

  o.induction_ratio = 0.01;  // ceil(0.01 * total) = one induction head on this tiny model
  o.use_echo_heads = false;
  const RazorKvStats one = Prefill(o);
  EXPECT_EQ(one.heads_full, 1);
}

TEST_F(KvCacheFactoryTest, MissingExplicitProfileIsAnError) {
  KvCacheOptions o;
  o.mode = KvMode::kRazor;
  o.profile_path = path_ + ".missing";
  auto cache = MakeKvCache(*model_, o, 256, 16, pool_);
  ASSERT_FALSE(cache.ok());
  EXPECT_NE(cache.error().find("no such profile"), std::string::npos) << cache.error();
}

}  // namespace
}  // namespace razor

namespace razor {
namespace {

// ALiBi spans in a profile (RazorAttention §2): a KV head whose span covers the cache's context keeps every
// token; the others keep sinks + their own span L_h (not the policy's W). The spans are planted in the
// tiny model's profile, so the expected lengths are known.
TEST_F(KvCacheFactoryTest, AlibiSpansPickRetrievalHeadsAndPerHeadWindows) {
  const ModelConfig& c = model_->config;
  const int64_t n = static_cast<int64_t>(ids_.size());
  ASSERT_GT(n, 1 + 3 + c.n_kv_heads) << "the golden prompt must be longer than sinks + the largest planted span";
  HeadProfile p = profile_;
  p.alibi_spans.context = 256;
  for (int h = 0; h < c.n_heads; ++h) {
    AlibiHeadSpan s;
    s.head = h;
    s.slope = 0.5;
    // KV head 0's group covers the context; KV head k > 0 gets span 2.5 + k (window ceil = 3 + k)
    // from its first query head and a smaller one from the others (the group takes the max).
    const int kv = h / c.group_size();
    const bool first = h % c.group_size() == 0;
    s.span = kv == 0 ? 1e9 : (first ? 2.5 + kv : 1.0);
    p.alibi_spans.heads.push_back(s);
  }
  ASSERT_TRUE(p.Save(path_, /*overwrite=*/true).ok());

  KvCacheOptions o;
  o.mode = KvMode::kRazor;
  o.profile_path = path_;
  o.razor.window_min = 2;
  o.razor.window_frac = 0;
  o.razor.sinks = 1;
  o.razor.block_tokens = 8;
  o.induction_ratio = 0.01;  // one induction head
  o.use_echo_heads = false;
  auto cache = MakeKvCache(*model_, o, 256, n, pool_);
  ASSERT_TRUE(cache.ok()) << cache.error();
  Transformer tf(c, model_->weights, pool_, MathMode::kFast);
  std::vector<float> logits;
  (*cache)->BeginPrefill(n);
  ASSERT_TRUE(tf.Forward(ids_.data(), ids_.size(), **cache, false, &logits).ok());

  HeadProfile sel = profile_;
  sel.params.induction_ratio = 0.01;
  sel.SelectRetrievalHeads();
  ASSERT_EQ(sel.by_induction.size(), 1u);
  const KvHeadId ind = sel.by_induction[0];
  for (int l = 0; l < c.n_layers; ++l)
    for (int kh = 0; kh < c.n_kv_heads; ++kh) {
      const bool keeps_all = kh == 0 || (l == ind.layer && kh == ind.kv_head);
      const int64_t want = keeps_all ? n : std::min<int64_t>(n, 1 + 3 + kh);
      EXPECT_EQ((*cache)->View(l, kh).len, want) << "layer " << l << " kv head " << kh;
    }
}

}  // namespace
}  // namespace razor
