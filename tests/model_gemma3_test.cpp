// Gemma 3 270M (Q4_K_M GGUF): the sliding-window architecture.
//  * against transformers, which loads the same GGUF dequantized and runs it in fp32 (goldens:
//    tests/fixtures/hf/gemma3_*, script: tests/golden_scripts/make_gemma3_goldens.py): the tokenizer's ids of
//    a 1,159-token text, the logits at every position of it (past the 512-token window, where the golden
//    shows that ignoring the window changes the argmax at 479 of 647 positions), greedy continuations;
//  * RazorAttention on it: a local layer's head is cut to its window (what its attention sees anyway), so
//    with every global head kept whole the razor cache gives the full cache's logits while holding a
//    fraction of its bytes; retrieval heads come only from the global layers.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "golden_reader.h"
#include "kv/razor_kv_cache.h"
#include "model_test_support.h"
#include "runtime/engine.h"
#include "runtime/kv_cache_factory.h"
#include "runtime/sampler.h"

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
  // A razor cache (options o; a profile that keeps every global head whole) beside a full cache, both
  // filled with the same prompt by one transformer: the window tests compare their logits step by step.
  struct RazorBesideFull {
    ThreadPool pool{2};
    Transformer tf{model_->config, model_->weights, pool, MathMode::kFast};
    FullKvCache full{model_->config.n_layers, model_->config.n_kv_heads, model_->config.head_dim, 4096};
    std::unique_ptr<RazorKvCache> razor;
    std::vector<float> want, got;  // the full / razor cache's logits of the last step
    // Decodes `steps` tokens into both caches: the worst |logit difference| over the prompt's last token
    // and every step.
    double Decode(int steps) {
      double worst = 0;
      for (int step = 0;; ++step) {
        EXPECT_EQ(got.size(), want.size());
        for (size_t i = 0; i < want.size() && i < got.size(); ++i)
          worst = std::max(worst, double(std::fabs(got[i] - want[i])));
        if (step == steps) return worst;
        const int32_t next = static_cast<int32_t>(1000 + 37 * step);
        EXPECT_TRUE(tf.Forward(&next, 1, full, false, &want).ok());
        EXPECT_TRUE(tf.Forward(&next, 1, *razor, false, &got).ok());
      }
    }
  };
  static void PrefillRazorBesideFull(const std::vector<int32_t>& prompt, KvCacheOptions o, RazorBesideFull* s) {
    const ModelConfig& c = model_->config;
    HeadProfile profile;
    profile.kv_induction.assign(c.n_layers * c.n_kv_heads, 1.0f);
    profile.kv_echo.assign(c.n_layers * c.n_kv_heads, 0.0f);
    profile.params.induction_ratio = 1.0;  // every global head kept whole
    o.mode = KvMode::kRazor;
    o.kv_type = KvType::kF32;
    auto policy = MakeKvPolicy(*model_, o, 4096, static_cast<int64_t>(prompt.size()), &profile);
    ASSERT_TRUE(policy.ok()) << policy.error();
    s->razor = std::make_unique<RazorKvCache>(std::move(*policy), c.head_dim, 4096, KvType::kF32);
    s->full.BeginPrefill(static_cast<int64_t>(prompt.size()));
    s->razor->BeginPrefill(static_cast<int64_t>(prompt.size()));
    ASSERT_TRUE(s->tf.Forward(prompt.data(), prompt.size(), s->full, false, &s->want).ok());
    ASSERT_TRUE(s->tf.Forward(prompt.data(), prompt.size(), *s->razor, false, &s->got).ok());
  }
  static inline std::shared_ptr<LoadedModel> model_;
};

// ------------------------------------------------------------------------------- against transformers

nlohmann::json ReadJson(const std::string& rel) {
  std::ifstream in(FixturePath(rel));
  return nlohmann::json::parse(in);
}

double LogSumExp(const float* l, int n) {
  double m = l[0];
  for (int i = 1; i < n; ++i) m = std::max(m, double(l[i]));
  double s = 0;
  for (int i = 0; i < n; ++i) s += std::exp(double(l[i]) - m);
  return m + std::log(s);
}

// Runs ids from position 0 in batches of `batch` tokens and hands each position's logits [vocab] to
// check(p, logits) as soon as its batch is done (all 1,159 x 262,144 logits at once would be 1.2 GB).
template <typename Check>
void ForEachPositionLogits(const LoadedModel& m, MathMode mode, const std::vector<int32_t>& ids, int64_t batch,
                           Check check) {
  ThreadPool pool(2);
  Transformer tf(m.config, m.weights, pool, mode);
  FullKvCache cache(m.config.n_layers, m.config.n_kv_heads, m.config.head_dim, 4096);
  std::vector<float> part;
  const int V = m.config.vocab_size;
  for (size_t b = 0; b < ids.size(); b += batch) {
    const int64_t n = std::min<int64_t>(batch, ids.size() - b);
    Status st = tf.Forward(ids.data() + b, n, cache, true, &part);
    ASSERT_TRUE(st.ok()) << st.message();
    ASSERT_EQ(part.size(), size_t(n) * V);
    for (int64_t i = 0; i < n; ++i) check(b + i, &part[i * V]);
  }
}

TEST_F(Gemma3Test, TokenizerGivesTransformersIds) {
  const nlohmann::json g = ReadJson("hf/gemma3_text.json");
  const auto want = g["ids"].get<std::vector<int32_t>>();
  const auto got = model_->tokenizer->Encode(g["text"].get<std::string>(), true, false);
  ASSERT_EQ(got.size(), want.size());
  EXPECT_EQ(got, want);
}

class Gemma3LogitsTest : public Gemma3Test {
 protected:
  void SetUp() override {
    Gemma3Test::SetUp();
    if (IsSkipped()) return;
    golden_ = golden::read_logits_golden(FixturePath("hf/gemma3_logits.rzgl"));
    ids_ = golden_.token_ids;
    // Under the sanitizer a prefix: the window is then not reached (the attention tests cover it there).
    if (testing::UnderSanitizer()) ids_.resize(std::min<size_t>(ids_.size(), 64));
  }
  golden::LogitsGolden golden_;
  std::vector<int32_t> ids_;
};

// Exact path: every one of HF's top-16 logits within 1e-3 x max|logit| at every position, and the
// log-sum-exp over the whole 262,144-token vocabulary as close.
TEST_F(Gemma3LogitsTest, ExactPathMatchesTransformersAtEveryPosition) {
  ASSERT_EQ(golden_.vocab, uint32_t(model_->config.vocab_size));
  const int V = model_->config.vocab_size;
  double worst = 0, worst_past_window = 0;
  ForEachPositionLogits(*model_, MathMode::kExact, ids_, 128, [&](size_t p, const float* ours) {
    const auto& r = golden_.positions[p];
    for (const auto& e : r.top) {
      const double rel = std::fabs(ours[e.id] - e.logit) / r.max_abs;
      worst = std::max(worst, rel);
      if (p >= 512) worst_past_window = std::max(worst_past_window, rel);
      EXPECT_LE(rel, 1e-3) << "position " << p << " id " << e.id;
    }
    EXPECT_NEAR(LogSumExp(ours, V), r.lse, 1e-3 * r.max_abs) << "position " << p;
  });
  std::printf("[gemma3 exact] %zu positions, worst |diff| / max|logit| = %.2e (past the window: %.2e)\n",
              ids_.size(), worst, worst_past_window);
}

// Fast path: top-1 agreement >= 99 % of positions (a miss excused where HF's top two are within 1e-2: the
// golden has 6 such positions) and mean KL(HF || razor) <= 1e-3 nats over HF's top-16 + the rest as one bucket.
TEST_F(Gemma3LogitsTest, FastPathAgreesOnTop1AndKl) {
  const int V = model_->config.vocab_size;
  int agree = 0, excused = 0;
  double kl_sum = 0;
  ForEachPositionLogits(*model_, MathMode::kFast, ids_, 128, [&](size_t p, const float* ours) {
    const auto& r = golden_.positions[p];
    if (ArgMax(ours, V) == r.top[0].id) {
      ++agree;
    } else if (r.top[0].logit - r.top[1].logit < 1e-2) {
      ++excused;
    }
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
  });
  const double top1 = double(agree + excused) / ids_.size(), mean_kl = kl_sum / ids_.size();
  std::printf("[gemma3 fast] %zu positions: top-1 agreement %d (+%d near-ties), mean KL %.3e nats\n", ids_.size(),
              agree, excused, mean_kl);
  EXPECT_GE(top1, 0.99);
  EXPECT_LE(mean_kl, 1e-3);
}

// Greedy 24-token continuations of 3 prompts equal transformers'; a step may differ only where HF's top two
// logits are within 1e-3 (then the rest is not compared).
void CheckGreedy(const LoadedModel& m, MathMode mode) {
  const nlohmann::json g = ReadJson("hf/gemma3_greedy.json");
  ThreadPool pool(2);
  Transformer tf(m.config, m.weights, pool, mode);
  int cases = 0, identical = 0;
  for (const auto& c : g["cases"]) {
    if (testing::UnderSanitizer() && cases >= 1) break;
    ++cases;
    const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    const auto want = c["output_ids"].get<std::vector<int32_t>>();
    const auto gaps = c["gaps"].get<std::vector<double>>();
    EXPECT_EQ(m.tokenizer->Encode(c["prompt_text"].get<std::string>(), true, false), prompt);
    FullKvCache cache(m.config.n_layers, m.config.n_kv_heads, m.config.head_dim, 1024);
    std::vector<float> logits;
    ASSERT_TRUE(tf.Forward(prompt.data(), prompt.size(), cache, false, &logits).ok());
    const size_t steps = testing::UnderSanitizer() ? 4 : want.size();
    bool all_equal = true;
    for (size_t i = 0; i < steps; ++i) {
      const int32_t id = ArgMax(logits.data(), m.config.vocab_size);
      if (id != want[i]) {
        EXPECT_LT(gaps[i], 1e-3) << "case " << cases << " step " << i << ": razor " << id << ", HF " << want[i]
                                 << " with a top-2 gap of " << gaps[i];
        all_equal = false;
        break;
      }
      ASSERT_TRUE(tf.Forward(&id, 1, cache, false, &logits).ok());
    }
    identical += all_equal;
  }
  std::printf("[gemma3 greedy %s] %d/%d continuations identical to transformers\n",
              mode == MathMode::kExact ? "exact" : "fast", identical, cases);
}

TEST_F(Gemma3Test, GreedyExactPathIdenticalToTransformers) { CheckGreedy(*model_, MathMode::kExact); }
TEST_F(Gemma3Test, GreedyFastPathIdenticalToTransformers) { CheckGreedy(*model_, MathMode::kFast); }

// The CUDA attention kernels have no sliding window: --device auto runs the model on the CPU (on a GPU host
// too), --device cuda is refused with the reason, before any device is touched.
TEST_F(Gemma3Test, AutoDeviceRunsOnTheCpuAndCudaIsRefused) {
  const ModelConfig& c = model_->config;
  EXPECT_EQ(ResolveEngineDevice(EngineDevice::kAuto, MathMode::kFast, c), EngineDevice::kCpu);
  EXPECT_EQ(ResolveEngineDevice(EngineDevice::kCuda, MathMode::kFast, c), EngineDevice::kCuda);
  EngineOptions eo;
  eo.device = EngineDevice::kAuto;
  eo.threads = 1;
  eo.kv_pool_bytes = size_t{64} << 20;
  eo.context = 256;
  auto e = Engine::Open(model_, eo);
  ASSERT_TRUE(e.ok()) << e.error();
  auto seq = (*e)->NewSequence({});
  ASSERT_TRUE(seq.ok()) << seq.error();
  std::vector<SequenceInput> in(1);
  in[0].sequence = seq->get();
  in[0].tokens = {2, 818, 5279};
  ASSERT_TRUE((*e)->Step(in).ok());
  EXPECT_EQ((*seq)->logits().size(), static_cast<size_t>(c.vocab_size));
  eo.device = EngineDevice::kCuda;
  auto refused = Engine::Open(model_, eo);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.error().find(BuiltWithCuda() ? "sliding-window" : "without CUDA"), std::string::npos)
      << refused.error();
}

// ------------------------------------------------------------------------------- RazorAttention

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
    if (c.is_local_layer(l)) {
      EXPECT_EQ(policy->HeadWindow(l, 0, 2000), 512);
    }
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
  const auto prompt = LongPrompt(testing::UnderSanitizer() ? 600 : 1100);
  KvCacheOptions o;
  o.razor.window_min = 64;  // a compressed head would keep only 64: none is, but local heads keep 512
  RazorBesideFull s;
  ASSERT_NO_FATAL_FAILURE(PrefillRazorBesideFull(prompt, o, &s));
  const RazorKvStats stats = s.razor->stats();
  EXPECT_EQ(stats.heads_compressed, 15);
  // 15 of 18 heads keep ~517 tokens: 0.44 of the full cache's bytes after 1,100 tokens (measured 24.8 of 56.6 MB,
  // f32), 0.57 after the sanitizer build's 600 (21.7 of 37.7 MB: the full cache's blocks hold 1,024 tokens).
  EXPECT_LT(s.razor->bytes_allocated(), s.full.bytes_allocated() * (testing::UnderSanitizer() ? 0.6 : 0.5));
  const double worst = s.Decode(16);
  EXPECT_LE(worst, 1e-3);
  std::printf("[gemma3 razor window] %zu-token prompt + 16 steps: worst |logit diff| %.2e, KV %zu of %zu bytes\n",
              prompt.size(), worst, s.razor->bytes_allocated(), s.full.bytes_allocated());
}

// decode_fold on a prompt shorter than the window (no head is cut at the prompt's end): once decode takes the
// local heads past sinks + 512 they are cut and fold, holding a fixed number of rows, and every logit stays
// the full cache's (the compensation token is as hidden from a local query as the tokens it stands for).
TEST_F(Gemma3Test, DecodeFoldBoundsLocalHeadsAfterAShortPromptWithTheFullCachesLogits) {
  const ModelConfig& c = model_->config;
  const auto prompt = LongPrompt(500);
  KvCacheOptions o;
  o.razor.decode_fold = true;
  RazorBesideFull s;
  ASSERT_NO_FATAL_FAILURE(PrefillRazorBesideFull(prompt, o, &s));
  EXPECT_EQ(s.razor->stats().heads_compressed, 0);
  EXPECT_EQ(s.razor->stats().heads_too_short, 15);
  const int64_t sinks = s.razor->policy().params().sinks;
  const double worst = s.Decode(40);
  EXPECT_LE(worst, 1e-3);
  EXPECT_EQ(s.razor->stats().heads_compressed, 15);
  EXPECT_EQ(s.razor->stats().heads_too_short, 0);
  for (int l = 0; l < c.n_layers; ++l)
    EXPECT_EQ(s.razor->View(l, 0).len, c.is_local_layer(l) ? sinks + 512 : 540) << l;
  std::printf("[gemma3 razor fold] 500-token prompt + 40 steps: worst |logit diff| %.2e\n", worst);
}

}  // namespace
}  // namespace razor
