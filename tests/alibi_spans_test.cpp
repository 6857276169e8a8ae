// ALiBi (BLOOM): slopes as transformers computes them, weight-derived attention spans on the tiny BLOOM
// fixture (RazorAttention §2), the bound holding on real activations, and spans in the profile JSON.
#include "runtime/alibi_spans.h"

#include <gtest/gtest.h>

#include <cmath>

#include "golden_reader.h"
#include "model_test_support.h"

namespace razor {
namespace {

using testing::FixturePath;

TEST(AlibiSlopesTest, MatchTransformersBloom) {
  // transformers.models.bloom.modeling_bloom._get_alibi_slopes (printed by make_alibi_goldens.py).
  const std::vector<float> want4 = {0.25f, 0.0625f, 0.015625f, 0.00390625f};
  const std::vector<float> want6 = {0.25f, 0.0625f, 0.015625f, 0.00390625f, 0.5f, 0.125f};
  const std::vector<float> want12 = {0.5f, 0.25f, 0.125f, 0.0625f, 0.03125f, 0.015625f, 0.0078125f, 0.00390625f,
                                     0.7071067690849304f, 0.3535533845424652f, 0.1767766773700714f,
                                     0.0883883386850357f};
  EXPECT_EQ(AlibiSlopes(4), want4);
  EXPECT_EQ(AlibiSlopes(6), want6);
  const auto s12 = AlibiSlopes(12);
  ASSERT_EQ(s12.size(), want12.size());
  for (size_t i = 0; i < s12.size(); ++i) EXPECT_NEAR(s12[i], want12[i], 1e-7f);
}

std::shared_ptr<LoadedModel> TinyBloom() {
  auto m = LoadModel(FixturePath("hf/tiny_bloom"), false);
  EXPECT_TRUE(m.ok()) << m.error();
  return m.ok() ? *m : nullptr;
}

TEST(AlibiSpansTest, FiniteMonotoneAndSmallSlopeIsRetrieval) {
  auto m = TinyBloom();
  ASSERT_TRUE(m);
  const ModelConfig& c = m->config;
  ASSERT_TRUE(c.alibi);
  AlibiSpanOptions o;
  o.context = 2048;
  auto s = ComputeAlibiSpans(c, m->weights, o);
  ASSERT_TRUE(s.ok()) << s.error();
  ASSERT_EQ(s->heads.size(), static_cast<size_t>(c.n_heads));
  for (const AlibiHeadSpan& h : s->heads) {
    EXPECT_TRUE(std::isfinite(h.bound) && h.bound > 0) << h.head;
    EXPECT_TRUE(std::isfinite(h.span) && h.span > 0) << h.head;
    EXPECT_NEAR(h.span, (2 * h.bound + std::log(1e5)) / h.slope, 1e-9 * h.span);
    EXPECT_EQ(h.retrieval, h.span >= 2048);
  }
  // Same weights, smaller slopes: every span grows, the bounds stay; slope -> 0 makes a retrieval head.
  for (double f : {0.5, 1e-3}) {
    std::vector<float> slopes = AlibiSlopes(c.n_heads);
    for (float& x : slopes) x = static_cast<float>(x * f);
    slopes[2] = 1e-9f;
    auto t = ComputeAlibiSpans(c, m->weights, o, &slopes);
    ASSERT_TRUE(t.ok());
    for (int h = 0; h < c.n_heads; ++h) {
      EXPECT_DOUBLE_EQ(t->heads[h].bound, s->heads[h].bound);
      if (h != 2 || s->heads[h].slope > 1e-9) {
        EXPECT_GT(t->heads[h].span, s->heads[h].span) << h;
      }
    }
    EXPECT_TRUE(t->heads[2].retrieval);
  }
  // A steep slope keeps a head local; a looser epsilon shortens every span.
  std::vector<float> steep(c.n_heads, 100.0f);
  auto u = ComputeAlibiSpans(c, m->weights, o, &steep);
  ASSERT_TRUE(u.ok());
  for (const AlibiHeadSpan& h : u->heads) EXPECT_FALSE(h.retrieval);
  o.epsilon = 1e-2;
  auto v = ComputeAlibiSpans(c, m->weights, o);
  for (int h = 0; h < c.n_heads; ++h) EXPECT_LT(v->heads[h].span, s->heads[h].span);
  o.epsilon = 0;
  EXPECT_FALSE(ComputeAlibiSpans(c, m->weights, o).ok());
}

// B_h bounds |q.k| / sqrt(d) on real activations: every (query, key) pair of the golden sequence, every layer.
class QkRecorder final : public AttentionObserver {
 public:
  QkRecorder(const ModelConfig& c) : c_(c), max_(c.n_heads, 0.0) {}
  void OnAttention(int layer, const float* q, const int32_t* positions, int64_t n, const float*,
                   const KvCache& cache) override {
    const int d = c_.head_dim;
    for (int h = 0; h < c_.n_heads; ++h) {
      const KvHeadView v = cache.View(layer, h / c_.group_size());
      for (int64_t t = 0; t < n; ++t)
        for (int64_t j = 0; j < v.len; ++j) {
          double s = 0;
          for (int i = 0; i < d; ++i) s += double(q[(t * c_.n_heads + h) * d + i]) * v.key(j, d)[i];
          max_[h] = std::max(max_[h], std::fabs(s) / std::sqrt(double(d)));
        }
    }
  }
  const std::vector<double>& max() const { return max_; }

 private:
  const ModelConfig& c_;
  std::vector<double> max_;
};

TEST(AlibiSpansTest, BoundHoldsOnTheGoldenSequence) {
  auto m = TinyBloom();
  ASSERT_TRUE(m);
  auto golden = golden::read_logits_golden(FixturePath("hf/tiny_bloom/logits.rzgl"));
  ThreadPool pool(1);
  Transformer tf(m->config, m->weights, pool, MathMode::kExact);
  QkRecorder rec(m->config);
  tf.set_observer(&rec);
  FullKvCache cache(m->config.n_layers, m->config.n_kv_heads, m->config.head_dim, m->config.context_length);
  std::vector<float> logits;
  ASSERT_TRUE(tf.Forward(golden.token_ids.data(), golden.token_ids.size(), cache, false, &logits).ok());
  auto s = ComputeAlibiSpans(m->config, m->weights, {});
  ASSERT_TRUE(s.ok());
  for (int h = 0; h < m->config.n_heads; ++h) {
    EXPECT_GT(rec.max()[h], 0.0);
    EXPECT_LE(rec.max()[h], s->heads[h].bound) << "head " << h;
  }
}

TEST(AlibiSpansTest, ProfileJsonRoundTripAndBackwardCompatible) {
  HeadProfile p;
  p.model.architecture = "bloom";
  p.model.name = "tiny";
  p.model.n_layers = 1;
  p.model.n_heads = p.model.n_kv_heads = 2;
  p.model.head_dim = 8;
  p.model.fingerprint = "fnv1a64:0000000000000000";
  p.kv_induction = p.kv_echo = p.q_induction = p.q_echo = {0.1f, 0.2f};
  const std::string plain = p.ToJson();
  EXPECT_EQ(plain.find("alibi_spans"), std::string::npos);
  auto back = HeadProfile::FromJson(plain, "plain");
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_TRUE(back->alibi_spans.heads.empty());
  p.alibi_spans.epsilon = 1e-5;
  p.alibi_spans.context = 4096;
  p.alibi_spans.heads = {{0, 0.5, 3.25, 29.5, false}, {1, 0.0, 2.0, INFINITY, true}};
  auto r = HeadProfile::FromJson(p.ToJson(), "spans");
  ASSERT_TRUE(r.ok()) << r.error();
  ASSERT_EQ(r->alibi_spans.heads.size(), 2u);
  EXPECT_EQ(r->alibi_spans.context, 4096);
  EXPECT_DOUBLE_EQ(r->alibi_spans.heads[0].span, 29.5);
  EXPECT_DOUBLE_EQ(r->alibi_spans.heads[0].bound, 3.25);
  EXPECT_TRUE(std::isinf(r->alibi_spans.heads[1].span));
  EXPECT_TRUE(r->alibi_spans.heads[1].retrieval);
  EXPECT_EQ(r->ToJson(), p.ToJson());
}

}  // namespace
}  // namespace razor
