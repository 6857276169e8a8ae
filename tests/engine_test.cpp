// The Engine: sequences share one KV pool (bytes add up, blocks come back on destruction), generation through
// it equals the one-sequence path, f16 / bf16 KV stay within a stated bound of transformers' logits, razor
// sequences need the profile step first, and an exhausted pool fails only the decode that cannot get blocks.
#include <gtest/gtest.h>

#include <cmath>

#include "golden_reader.h"
#include "model_test_support.h"
#include "runtime/engine.h"
#include "runtime/generator.h"
#include "runtime/synthetic_model.h"

namespace razor {
namespace {

using testing::FixturePath;

std::shared_ptr<LoadedModel> Load(const std::string& name) {
  auto m = LoadModel(FixturePath("hf/tiny_" + name), false);
  EXPECT_TRUE(m.ok()) << m.error();
  return m.ok() ? *m : nullptr;
}

std::unique_ptr<Engine> Open(std::shared_ptr<LoadedModel> m, EngineOptions o) {
  auto e = Engine::Open(std::move(m), o);
  EXPECT_TRUE(e.ok()) << e.error();
  return e.ok() ? std::move(e).value() : nullptr;
}

std::unique_ptr<Sequence> NewSeq(Engine& e, KvMode mode = KvMode::kFull) {
  SequenceOptions so;
  so.kv.mode = mode;
  auto s = e.NewSequence(so);
  EXPECT_TRUE(s.ok()) << s.error();
  return s.ok() ? std::move(s).value() : nullptr;
}

// A lone sequence of `engine`: a prompt of n copies of `fill`, then one decode of `next`; that decode's logits.
std::vector<float> SoloLogits(Engine& engine, size_t n, int32_t fill, int32_t next) {
  auto seq = NewSeq(engine);
  std::vector<SequenceInput> in(1);
  in[0].sequence = seq.get();
  in[0].tokens.assign(n, fill);
  EXPECT_TRUE(engine.Step(in).ok());
  in[0].tokens = {next};
  EXPECT_TRUE(engine.Step(in).ok());
  return seq->logits();
}

// Teacher-forced logits of every position through a sequence of the engine.
std::vector<float> AllLogits(Engine& e, const std::vector<int32_t>& ids) {
  auto seq = NewSeq(e);
  std::vector<SequenceInput> in(1);
  in[0].sequence = seq.get();
  in[0].tokens = ids;
  in[0].all_logits = true;
  EXPECT_TRUE(e.Step(in).ok());
  return seq->logits();
}

// KV storage against transformers' fp32 logits: f32 keeps the HF tests' bound (1e-4 of the largest logit);
// f16 and bf16 round every key and value once, so their bounds are wider: measured on these fixtures (worst
// |diff| / max(1, max |logit|) over the four architectures) f16 2.1e-4, bf16 2.2e-3; bounds 1e-3 and 1e-2.
TEST(EngineTest, KvTypesAgreeWithTransformersWithinStatedBounds) {
  for (const std::string name : {"llama", "qwen2", "qwen3", "bloom"}) {
    auto m = Load(name);
    ASSERT_TRUE(m);
    auto golden = golden::read_logits_golden(FixturePath("hf/tiny_" + name) + "/logits.rzgl");
    for (auto [type, bound] : {std::pair{KvType::kF32, 1e-4f}, {KvType::kF16, 1e-3f}, {KvType::kBF16, 1e-2f}}) {
      auto e = Open(m, {.threads = 2, .math = MathMode::kExact, .kv_type = type});
      ASSERT_TRUE(e);
      const std::vector<float> logits = AllLogits(*e, golden.token_ids);
      ASSERT_EQ(logits.size(), golden.n_positions() * golden.vocab);
      float worst = 0;
      for (size_t p = 0; p < golden.n_positions(); ++p) {
        const auto want = golden.full_logits(p);
        const float scale = std::max(1.0f, golden.positions[p].max_abs);
        for (uint32_t v = 0; v < golden.vocab; ++v)
          worst = std::max(worst, std::fabs(logits[p * golden.vocab + v] - want[v]) / scale);
      }
      EXPECT_LE(worst, bound) << name << " " << KvTypeName(type);
      RecordProperty(name + "_" + KvTypeName(type), std::to_string(worst));
    }
  }
}

TEST(EngineTest, GenerationEqualsTheOneSequencePath) {
  auto m = Load("qwen2");
  ASSERT_TRUE(m);
  auto e = Open(m, {.threads = 2, .kv_type = KvType::kF32});
  ASSERT_TRUE(e);
  std::vector<int32_t> prompt;
  for (int i = 0; i < 37; ++i) prompt.push_back((i * 7919) % m->config.vocab_size);
  GenerationOptions g;
  g.max_new_tokens = 12;
  g.prefill_batch = 10;
  auto seq = NewSeq(*e);
  auto via_engine = Generate(*e, *seq, prompt, g);
  ASSERT_TRUE(via_engine.ok()) << via_engine.error();
  ThreadPool pool(2);
  Transformer tf(m->config, m->weights, pool, MathMode::kFast);
  KvCacheOptions kvo;
  kvo.kv_type = KvType::kF32;
  auto cache = MakeKvCache(*m, kvo, m->config.context_length, 37, pool);
  ASSERT_TRUE(cache.ok());
  auto alone = Generate(tf, **cache, nullptr, prompt, g);
  ASSERT_TRUE(alone.ok());
  EXPECT_EQ(via_engine->output_ids, alone->output_ids);
  EXPECT_EQ(seq->length(), 37 + 11);
}

TEST(EngineTest, SequencesShareOnePoolAndGiveBlocksBack) {
  auto m = Load("llama");
  ASSERT_TRUE(m);
  auto e = Open(m, {.threads = 1, .kv_type = KvType::kF16, .kv_block_tokens = 16});
  ASSERT_TRUE(e);
  auto a = NewSeq(*e), b = NewSeq(*e);
  std::vector<SequenceInput> in(2);
  in[0].sequence = a.get();
  in[0].tokens.assign(40, 3);
  in[1].sequence = b.get();
  in[1].tokens.assign(17, 5);
  ASSERT_TRUE(e->Step(in).ok());
  const size_t heads = size_t(m->config.n_layers) * m->config.n_kv_heads;
  EXPECT_EQ(a->kv().kv_block_bytes(), heads * 3 * e->kv_pool().block_bytes());  // 40 tokens: 3 blocks of 16
  EXPECT_EQ(b->kv().kv_block_bytes(), heads * 2 * e->kv_pool().block_bytes());
  EXPECT_EQ(e->kv_pool().bytes_in_use(), a->kv().kv_block_bytes() + b->kv().kv_block_bytes());
  a.reset();
  EXPECT_EQ(e->kv_pool().bytes_in_use(), b->kv().kv_block_bytes());
  b->Reset();
  EXPECT_EQ(e->kv_pool().bytes_in_use(), 0u);
}

TEST(EngineTest, RazorNeedsTheProfileStep) {
  auto m = Load("llama");
  ASSERT_TRUE(m);
  auto e = Open(m, {.threads = 1});
  ASSERT_TRUE(e);
  SequenceOptions so;
  so.kv.mode = KvMode::kRazor;
  auto s = e->NewSequence(so);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("EnsureProfile"), std::string::npos);
}

// Pool of 2 sequences x 4 heads x 2 blocks: both prompts fit; the next decode of the second needs a third
// block per head (32 tokens per 2 blocks of 16 are full), which the pool cannot give: that input alone gets
// the error and sits out; the first sequence decodes and its logits equal a lone run's.
TEST(EngineTest, ExhaustedPoolFailsOnlyTheDecodeThatCannotGetBlocks) {
  auto m = Load("llama");
  ASSERT_TRUE(m);
  const ModelConfig& c = m->config;
  const size_t heads = size_t(c.n_layers) * c.n_kv_heads;
  const size_t block = RazorKvCache::block_bytes(16, c.head_dim, KvType::kF16);
  auto e = Open(m, {.threads = 1, .math = MathMode::kExact, .kv_type = KvType::kF16,
                    .kv_pool_bytes = (2 * 2 * heads + heads) * block, .kv_block_tokens = 16});
  ASSERT_TRUE(e);
  auto a = NewSeq(*e), b = NewSeq(*e);
  std::vector<SequenceInput> in(2);
  in[0].sequence = a.get();
  in[0].tokens.assign(20, 3);  // 2 blocks per head; its next decode fits in them
  in[1].sequence = b.get();
  in[1].tokens.assign(32, 5);  // 2 full blocks per head
  ASSERT_TRUE(e->Step(in).ok());
  auto c2 = NewSeq(*e);  // takes the spare blocks
  std::vector<SequenceInput> fill(1);
  fill[0].sequence = c2.get();
  fill[0].tokens.assign(16, 7);
  ASSERT_TRUE(e->Step(fill).ok());
  EXPECT_EQ(e->kv_pool().blocks_free(), 0u);

  std::vector<SequenceInput> decode(2);
  decode[0].sequence = a.get();
  decode[0].tokens = {9};
  decode[1].sequence = b.get();
  decode[1].tokens = {9};
  ASSERT_TRUE(e->Step(decode).ok());
  EXPECT_TRUE(decode[0].status.ok());
  ASSERT_FALSE(decode[1].status.ok());
  EXPECT_NE(decode[1].status.message().find("KV pool exhausted"), std::string::npos);
  EXPECT_EQ(b->length(), 32);
  EXPECT_FALSE(b->failed());
  EXPECT_EQ(a->length(), 21);

  auto solo_engine = Open(m, {.threads = 1, .math = MathMode::kExact, .kv_type = KvType::kF16,
                              .kv_block_tokens = 16});
  EXPECT_EQ(a->logits(), SoloLogits(*solo_engine, 20, 3, 9));

  c2.reset();  // blocks come back: b can go on
  std::vector<SequenceInput> again(1);
  again[0].sequence = b.get();
  again[0].tokens = {9};
  EXPECT_TRUE(e->Step(again).ok());
  EXPECT_TRUE(again[0].status.ok());
  EXPECT_EQ(b->length(), 33);
}

// A compressing prompt cannot take its blocks up front: it runs after the step's decodes, so when it exhausts the
// pool part-way only it fails; the decode beside it keeps its context and gets a lone run's logits.
TEST(EngineTest, APromptThatExhaustsThePoolFailsOnlyItself) {
  auto m = Load("llama");
  ASSERT_TRUE(m);
  const ModelConfig& c = m->config;
  const size_t heads = size_t(c.n_layers) * c.n_kv_heads;
  const size_t block = RazorKvCache::block_bytes(16, c.head_dim, KvType::kF16);
  EngineOptions eo{.threads = 1, .math = MathMode::kExact, .kv_type = KvType::kF16, .kv_block_tokens = 16};
  eo.kv_pool_bytes = (2 * heads + 6) * block;
  auto e = Open(m, eo);
  ASSERT_TRUE(e);
  auto a = NewSeq(*e);
  SequenceOptions so;
  so.kv.mode = KvMode::kStreaming;
  so.kv.streaming_window = 8;  // a window of its own: no head profile needed
  auto b = e->NewSequence(so);
  ASSERT_TRUE(b.ok()) << b.error();
  std::vector<SequenceInput> in(1);
  in[0].sequence = a.get();
  in[0].tokens.assign(20, 3);
  ASSERT_TRUE(e->Step(in).ok());
  std::vector<SequenceInput> mixed(2);
  mixed[0].sequence = b->get();
  mixed[0].tokens.assign(100, 5);  // 7 blocks per head: layer 0 alone needs more than the 6 left
  mixed[1].sequence = a.get();
  mixed[1].tokens = {9};
  ASSERT_TRUE(e->Step(mixed).ok());
  EXPECT_TRUE(mixed[1].status.ok());
  ASSERT_FALSE(mixed[0].status.ok());
  EXPECT_NE(mixed[0].status.message().find("KV pool exhausted"), std::string::npos);
  EXPECT_TRUE((*b)->failed());
  EXPECT_FALSE(a->failed());
  EXPECT_EQ(a->length(), 21);

  EngineOptions solo_o = eo;
  solo_o.kv_pool_bytes = 0;
  auto solo_engine = Open(m, solo_o);
  EXPECT_EQ(a->logits(), SoloLogits(*solo_engine, 20, 3, 9));
  (*b)->Reset();  // the failed sequence gives its blocks back
  EXPECT_EQ(e->kv_pool().bytes_in_use(), a->kv().kv_block_bytes());
}

// SetProfile takes a profile made elsewhere for this model (razor sequences then open), and refuses one made
// for another model, naming both.
TEST(EngineTest, SetProfileTakesOnlyAProfileOfThisModel) {
  auto llama = Load("llama"), qwen = Load("qwen2");
  ASSERT_TRUE(llama && qwen);
  auto e = Open(llama, {.threads = 1});
  ASSERT_TRUE(e);
  HeadProfile p;
  p.model = ModelIdentityOf(*llama);
  p.params.induction_ratio = 0.5;
  p.params.echo_ratio = 0;
  p.q_induction.assign(static_cast<size_t>(llama->config.n_layers) * llama->config.n_heads, 0.0f);
  p.q_induction[0] = 1.0f;
  p.q_echo.assign(p.q_induction.size(), 0.0f);
  p.SelectRetrievalHeads();
  HeadProfile foreign = p;
  foreign.model = ModelIdentityOf(*qwen);
  Status st = e->SetProfile(foreign);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("head profile is for"), std::string::npos) << st.message();
  EXPECT_EQ(e->profile(), nullptr);
  ASSERT_TRUE(e->SetProfile(p).ok());
  ASSERT_NE(e->profile(), nullptr);
  EXPECT_TRUE(e->profile()->IsRetrieval(0, 0));
  EXPECT_NE(NewSeq(*e, KvMode::kRazor), nullptr);
}

// Two compressing prompts and a decode in one step give each sequence the logits it gets alone, on the CPU (one
// forward for both prompts) and, where there is a GPU, on it (one forward each: the device reserves the residual
// of one prompt) — and their caches are compressed the same way.
TEST(EngineTest, CompressingPromptsInOneStepEqualEachAlone) {
  auto m = Load("qwen2");
  ASSERT_TRUE(m);
  std::vector<EngineDevice> devices = {EngineDevice::kCpu};
  if (ResolveEngineDevice(EngineDevice::kAuto, MathMode::kFast) == EngineDevice::kCuda)
    devices.push_back(EngineDevice::kCuda);
  auto profile = MakeSyntheticProfile(*m, 0.5, 3);
  ASSERT_TRUE(profile.ok()) << profile.error();
  const std::vector<std::vector<int32_t>> prompts = {{1, 5, 9, 2, 7, 7, 3, 8, 4, 6, 2}, {4, 4, 8, 1, 2, 9, 9, 5}};
  const int V = m->config.vocab_size;
  for (EngineDevice d : devices) {
    auto e = Open(m, {.device = d, .threads = 1, .kv_type = KvType::kF16, .kv_pool_bytes = size_t{64} << 20});
    ASSERT_TRUE(e);
    ASSERT_TRUE(e->SetProfile(*profile).ok());
    SequenceOptions so;
    so.kv.mode = KvMode::kRazor;
    so.kv.razor.sinks = 1;
    so.kv.razor.window_min = 2;
    so.kv.razor.window_frac = 0.1;
    std::vector<std::vector<float>> alone;
    std::vector<RazorKvStats> alone_stats;
    for (const auto& p : prompts) {
      auto s = std::move(e->NewSequence(so)).value();
      std::vector<SequenceInput> in(1);
      in[0].sequence = s.get();
      in[0].tokens = p;
      ASSERT_TRUE(e->Step(in).ok());
      alone.push_back(s->logits());
      alone_stats.push_back(s->kv_stats());
    }
    auto decoding = NewSeq(*e);
    std::vector<SequenceInput> first(1);
    first[0].sequence = decoding.get();
    first[0].tokens = {3, 3, 1};
    ASSERT_TRUE(e->Step(first).ok());
    std::vector<std::unique_ptr<Sequence>> seqs;
    std::vector<SequenceInput> step(3);
    for (size_t i = 0; i < 2; ++i) {
      seqs.push_back(std::move(e->NewSequence(so)).value());
      step[i].sequence = seqs[i].get();
      step[i].tokens = prompts[i];
    }
    step[2].sequence = decoding.get();
    step[2].tokens = {5};
    ASSERT_TRUE(e->Step(step).ok());
    for (size_t i = 0; i < 2; ++i) {
      const auto& got = seqs[i]->logits();
      ASSERT_EQ(got.size(), alone[i].size());
      float worst = 0, scale = 1;
      for (int v = 0; v < V; ++v) {
        worst = std::max(worst, std::fabs(got[v] - alone[i][v]));
        scale = std::max(scale, std::fabs(alone[i][v]));
      }
      EXPECT_LE(worst / scale, 1e-5f) << DeviceKindName(e->backend().device()) << " prompt " << i;
      const RazorKvStats st = seqs[i]->kv_stats();
      EXPECT_GT(st.heads_compressed, 0) << "prompt " << i;
      EXPECT_EQ(st.heads_compressed, alone_stats[i].heads_compressed);
      EXPECT_EQ(st.tokens_dropped, alone_stats[i].tokens_dropped);
    }
    EXPECT_EQ(decoding->logits().size(), static_cast<size_t>(V));
  }
}

}  // namespace
}  // namespace razor
