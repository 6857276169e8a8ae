// Transformer::Step over many sequences: a sequence's logits equal what it gets when run alone, for every KV
// policy and storage type, with razor sequences (heads of different lengths) beside full-cache ones, and a
// prefill sharing a step with the decodes of others. Exact math: bit-identical (the reference matmul and
// attention do the same operations per row whatever the batch). Fast math: within fp32 rounding (a batch
// takes the GEMM kernels where a lone decode takes mat-vec ones).
#include <gtest/gtest.h>

#include <cmath>
#include <memory>
#include <random>
#include <vector>

#include "kv/head_policy.h"
#include "kv/razor_kv_cache.h"
#include "model_test_support.h"

namespace razor {
namespace {

using testing::FixturePath;

struct SeqSpec {
  KvMode mode;
  KvType type;
  bool decode_fold;
  int64_t prompt_len;
};

std::unique_ptr<RazorKvCache> MakeCache(const ModelConfig& c, const SeqSpec& s) {
  RazorParams p;
  p.mode = s.mode;
  p.sinks = 2;
  p.window_min = 6;  // small: every compressed head drops tokens from these short prompts
  p.window_frac = 0.0;
  p.decode_fold = s.decode_fold;
  p.block_tokens = 8;
  std::vector<bool> retrieval;
  if (s.mode == KvMode::kRazor)
    for (int i = 0; i < c.n_layers * c.n_kv_heads; ++i) retrieval.push_back(i % 3 == 0);
  auto policy = KvHeadPolicy::Make(p, c.n_layers, c.n_kv_heads, retrieval);
  EXPECT_TRUE(policy.ok()) << policy.error();
  return std::make_unique<RazorKvCache>(std::move(policy).value(), c.head_dim, c.context_length, s.type);
}

std::vector<int32_t> RandomIds(std::mt19937& rng, int vocab, int64_t n) {
  std::vector<int32_t> ids(n);
  for (auto& t : ids) t = static_cast<int32_t>(rng() % vocab);
  return ids;
}

const std::vector<SeqSpec> kSpecs = {
    {KvMode::kFull, KvType::kF32, false, 40},
    {KvMode::kRazor, KvType::kF16, false, 23},
    {KvMode::kStreaming, KvType::kF32, false, 57},
    {KvMode::kRazor, KvType::kBF16, true, 31},
};
constexpr int kDecodeSteps = 5;

class BatchedForwardTest : public ::testing::TestWithParam<std::string> {};

TEST_P(BatchedForwardTest, EachSequenceGetsItsLogitsAlone) {
  auto m = LoadModel(FixturePath("hf/tiny_" + GetParam()), false);
  ASSERT_TRUE(m.ok()) << m.error();
  const ModelConfig& c = (*m)->config;
  const size_t vocab = c.vocab_size;
  std::mt19937 rng(3);
  std::vector<std::vector<int32_t>> prompts, decodes;
  for (const SeqSpec& s : kSpecs) {
    prompts.push_back(RandomIds(rng, c.vocab_size, s.prompt_len));
    decodes.push_back(RandomIds(rng, c.vocab_size, kDecodeSteps));
  }
  ThreadPool pool(2);
  for (MathMode mode : {MathMode::kExact, MathMode::kFast}) {
    Transformer tf(c, (*m)->weights, pool, mode);
    tf.set_chunk_tokens(16);  // chunks cut across sequences
    // Alone: the prompt's last logits, then each decode step's.
    std::vector<std::vector<std::vector<float>>> alone(kSpecs.size());
    for (size_t s = 0; s < kSpecs.size(); ++s) {
      auto cache = MakeCache(c, kSpecs[s]);
      std::vector<float> logits;
      cache->BeginPrefill(kSpecs[s].prompt_len);
      ASSERT_TRUE(tf.Forward(prompts[s].data(), kSpecs[s].prompt_len, *cache, false, &logits).ok());
      alone[s].push_back(logits);
      for (int d = 0; d < kDecodeSteps; ++d) {
        ASSERT_TRUE(tf.Forward(&decodes[s][d], 1, *cache, false, &logits).ok());
        alone[s].push_back(logits);
      }
      if (kSpecs[s].mode != KvMode::kFull) {  // the razor / streaming heads really hold fewer tokens
        const RazorKvStats st = cache->stats();
        EXPECT_GT(st.heads_compressed, 0) << s;
      }
    }
    // Together: sequences 0 and 1 prefill in one step; then 2 prefills beside the decodes of 0 and 1; 3 joins
    // one step later; each sequence decodes its tokens in order until done.
    std::vector<std::unique_ptr<RazorKvCache>> caches;
    for (const SeqSpec& s : kSpecs) caches.push_back(MakeCache(c, s));
    std::vector<int> done(kSpecs.size(), -1);  // -1: prompt not in yet; else decode steps taken
    const std::vector<std::vector<size_t>> joins = {{0, 1}, {2}, {3}};
    for (int step = 0; step < 12; ++step) {
      std::vector<StepSequence> batch;
      std::vector<size_t> who;
      for (size_t s = 0; s < kSpecs.size(); ++s)
        if (done[s] >= 0 && done[s] < kDecodeSteps) {
          batch.push_back({caches[s].get(), &decodes[s][done[s]], 1, false});
          who.push_back(s);
        }
      if (step < static_cast<int>(joins.size()))
        for (size_t s : joins[step]) {
          caches[s]->BeginPrefill(kSpecs[s].prompt_len);
          batch.push_back({caches[s].get(), prompts[s].data(), kSpecs[s].prompt_len, false});
          who.push_back(s);
        }
      if (batch.empty()) break;
      std::vector<float> logits;
      Status st = tf.Step(batch, &logits);
      ASSERT_TRUE(st.ok()) << st.message();
      ASSERT_EQ(logits.size(), who.size() * vocab);
      for (size_t i = 0; i < who.size(); ++i) {
        const size_t s = who[i];
        const std::vector<float>& want = alone[s][done[s] + 1];
        for (size_t v = 0; v < vocab; ++v) {
          const float got = logits[i * vocab + v];
          if (mode == MathMode::kExact) ASSERT_EQ(got, want[v]) << GetParam() << " seq " << s << " step " << step;
          else ASSERT_NEAR(got, want[v], 1e-4f * std::max(1.0f, std::fabs(want[v]))) << GetParam() << " seq " << s;
        }
        ++done[s];
      }
    }
    for (size_t s = 0; s < kSpecs.size(); ++s) EXPECT_EQ(done[s], kDecodeSteps) << s;
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, BatchedForwardTest, ::testing::Values("llama", "qwen2", "qwen3", "bloom"));

TEST(BatchedForwardTest, RejectsASequenceTwiceAndBadTokens) {
  auto m = LoadModel(FixturePath("hf/tiny_llama"), false);
  ASSERT_TRUE(m.ok()) << m.error();
  const ModelConfig& c = (*m)->config;
  ThreadPool pool(1);
  Transformer tf(c, (*m)->weights, pool, MathMode::kExact);
  auto a = MakeCache(c, kSpecs[0]);
  const int32_t ok_tok = 1, bad_tok = c.vocab_size;
  std::vector<float> logits;
  EXPECT_FALSE(tf.Step({{a.get(), &ok_tok, 1, false}, {a.get(), &ok_tok, 1, false}}, &logits).ok());
  auto b = MakeCache(c, kSpecs[0]);
  const Status st = tf.Step({{a.get(), &ok_tok, 1, false}, {b.get(), &bad_tok, 1, false}}, &logits);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(a->sequence_length(), 0);  // validated before any work: nothing appended
  EXPECT_FALSE(tf.Step({}, &logits).ok());
}

}  // namespace
}  // namespace razor
