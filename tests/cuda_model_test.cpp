// The whole model on the GPU (--device cuda) against transformers' goldens and the CPU engine: the tiny random
// checkpoints of every architecture, SmolLM2-135M teacher-forced over > 1,000 positions (top-1 agreement with
// the CPU engine >= 99 %) and its greedy continuations (equal except at stated near-ties), and a batched step
// equal to each sequence run alone. This file is the CUDA-vs-CPU comparison tool of the suite; it skips
// without a GPU (CI) and runs on the GPU machine (bench/gpu_check.sh).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cuda/cuda_backend.h"
#include "golden_reader.h"
#include "model_test_support.h"
#include "runtime/engine.h"

namespace razor {
namespace {

using testing::FixturePath;

bool HaveGpu() { return CudaDeviceAvailable(nullptr); }

std::unique_ptr<Engine> Open(std::shared_ptr<LoadedModel> m, EngineDevice device, KvType type = KvType::kBF16) {
  EngineOptions o;
  o.device = device;
  o.threads = 2;
  o.kv_type = type;
  o.kv_pool_bytes = size_t{256} << 20;
  auto e = Engine::Open(std::move(m), o);
  EXPECT_TRUE(e.ok()) << e.error();
  return e.ok() ? std::move(e).value() : nullptr;
}

// Logits [n, vocab] of ids as one prompt (in chunks of `chunk` tokens, so later chunks attend to cached KV).
std::vector<float> AllLogits(Engine& e, const std::vector<int32_t>& ids, size_t chunk = 1 << 30) {
  auto seq = e.NewSequence({});
  EXPECT_TRUE(seq.ok()) << seq.error();
  if (!seq.ok()) return {};
  std::vector<float> all;
  for (size_t b = 0; b < ids.size(); b += chunk) {
    std::vector<SequenceInput> in(1);
    in[0].sequence = seq->get();
    in[0].tokens.assign(ids.begin() + b, ids.begin() + std::min(ids.size(), b + chunk));
    in[0].all_logits = true;
    Status st = e.Step(in);
    EXPECT_TRUE(st.ok()) << st.message();
    if (!st.ok()) return {};
    all.insert(all.end(), (*seq)->logits().begin(), (*seq)->logits().end());
  }
  return all;
}

int32_t ArgMax(const float* l, int n) { return static_cast<int32_t>(std::max_element(l, l + n) - l); }

// Worst |a - b| / max(1, max|b|) per position, over all positions.
float WorstScaled(const std::vector<float>& a, const std::vector<float>& b, int vocab) {
  float worst = 0;
  for (size_t p = 0; p * vocab < b.size(); ++p) {
    float mx = 1.0f;
    for (int v = 0; v < vocab; ++v) mx = std::max(mx, std::fabs(b[p * vocab + v]));
    for (int v = 0; v < vocab; ++v) worst = std::max(worst, std::fabs(a[p * vocab + v] - b[p * vocab + v]) / mx);
  }
  return worst;
}

// bf16 weights and activations against transformers' fp32: each logit within 1.5e-2 of the position's largest
// (measured on the H200, 2026-12-02: worst 6.2e-3 over the nine fixtures, qwen2; bf16 KV), and the GPU's top-1 equal to
// transformers' wherever transformers' top two are more than 5 % of that scale apart.
TEST(CudaModelTest, TinyCheckpointsOfEveryArchitectureMatchTransformersAndTheCpu) {
  if (!HaveGpu()) GTEST_SKIP() << "no GPU";
  for (const std::string name : {"llama", "llama3_rope", "llama_tied_f16", "llama_bf16_sharded", "qwen2", "qwen3",
                                 "bloom", "llama_gguf", "bloom_gguf"}) {
    const std::string dir = FixturePath("hf/tiny_" + name);
    const std::string path = name == "llama_gguf" ? dir + "/tiny_llama.gguf"
                             : name == "bloom_gguf" ? dir + "/tiny_bloom.gguf"
                                                    : dir;
    auto m = LoadModel(path, false);
    ASSERT_TRUE(m.ok()) << name << ": " << m.error();
    auto golden = golden::read_logits_golden(dir + "/logits.rzgl");
    auto gpu = Open(*m, EngineDevice::kCuda);
    auto cpu = Open(*m, EngineDevice::kCpu);
    ASSERT_TRUE(gpu && cpu);
    const auto g = AllLogits(*gpu, golden.token_ids, 5);  // chunks of 5: prefill + cached-KV attention
    const auto c = AllLogits(*cpu, golden.token_ids);
    ASSERT_EQ(g.size(), golden.n_positions() * golden.vocab) << name;
    std::vector<float> want;
    for (size_t p = 0; p < golden.n_positions(); ++p) {
      const auto row = golden.full_logits(p);
      want.insert(want.end(), row.begin(), row.end());
    }
    const float vs_hf = WorstScaled(g, want, golden.vocab), vs_cpu = WorstScaled(g, c, golden.vocab);
    std::printf("[cuda %s] worst |gpu - hf| / scale %.2e, |gpu - cpu| / scale %.2e\n", name.c_str(), vs_hf, vs_cpu);
    EXPECT_LE(vs_hf, 1.5e-2f) << name;
    EXPECT_LE(vs_cpu, 1.5e-2f) << name;
    for (size_t p = 0; p < golden.n_positions(); ++p) {
      const auto& r = golden.positions[p];
      if (r.gap > 0.05f * std::max(1.0f, r.max_abs)) {
        EXPECT_EQ(ArgMax(&g[p * golden.vocab], golden.vocab), r.top[0].id) << name << " position " << p;
      }
    }
  }
}

TEST(CudaModelTest, ABatchedStepEqualsEachSequenceAlone) {
  if (!HaveGpu()) GTEST_SKIP() << "no GPU";
  auto m = LoadModel(FixturePath("hf/tiny_qwen2"), false);
  ASSERT_TRUE(m.ok()) << m.error();
  auto e = Open(*m, EngineDevice::kCuda, KvType::kF16);
  ASSERT_TRUE(e);
  // Three sequences with prompts of different lengths, then a step holding one's decode, another's second
  // prompt chunk and a new prompt — against each run alone.
  const std::vector<std::vector<int32_t>> prompts = {{1, 5, 9, 2, 7, 7, 3}, {4, 4, 8}, {11, 2, 6, 6, 1, 9, 12, 3, 5}};
  std::vector<std::vector<float>> alone;
  for (const auto& p : prompts) {
    auto l = AllLogits(*e, p);
    alone.emplace_back(l.end() - (*m)->config.vocab_size, l.end());
  }
  std::vector<std::unique_ptr<Sequence>> seqs;
  for (int i = 0; i < 3; ++i) seqs.push_back(std::move(e->NewSequence({})).value());
  std::vector<SequenceInput> first(2);
  first[0].sequence = seqs[0].get();
  first[0].tokens.assign(prompts[0].begin(), prompts[0].end() - 1);
  first[1].sequence = seqs[1].get();
  first[1].tokens.assign(prompts[1].begin(), prompts[1].begin() + 1);
  ASSERT_TRUE(e->Step(first).ok());
  std::vector<SequenceInput> mixed(3);
  mixed[0].sequence = seqs[0].get();
  mixed[0].tokens = {prompts[0].back()};
  mixed[1].sequence = seqs[1].get();
  mixed[1].tokens.assign(prompts[1].begin() + 1, prompts[1].end());
  mixed[1].begins_prompt = false;
  mixed[2].sequence = seqs[2].get();
  mixed[2].tokens = prompts[2];
  ASSERT_TRUE(e->Step(mixed).ok());
  for (int i = 0; i < 3; ++i) {
    const auto& got = seqs[i]->logits();
    ASSERT_EQ(got.size(), alone[i].size());
    EXPECT_LE(WorstScaled(got, alone[i], (*m)->config.vocab_size), 1e-5f) << "sequence " << i;
  }
}

class CudaSmolLM2Test : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!HaveGpu()) GTEST_SKIP() << "no GPU";
    const std::string path = testing::DefaultModelPath();
    if (path.empty()) GTEST_SKIP() << "RAZOR_TEST_MODEL not set";
    auto m = LoadModel(path, false);
    ASSERT_TRUE(m.ok()) << m.error();
    model_ = *m;
    std::ifstream in(FixturePath("hf/smollm2_greedy.json"));
    greedy_ = nlohmann::json::parse(in);
  }
  std::shared_ptr<LoadedModel> model_;
  nlohmann::json greedy_;
};

// Teacher-forced over the 600-token golden text and the five greedy cases (1,065 positions): the GPU's top-1
// equals the CPU engine's at >= 99 % of them.
TEST_F(CudaSmolLM2Test, TeacherForcedTopOneAgreesWithTheCpuEngine) {
  auto gpu = Open(model_, EngineDevice::kCuda);
  auto cpu = Open(model_, EngineDevice::kCpu, KvType::kF16);
  ASSERT_TRUE(gpu && cpu);
  std::vector<std::vector<int32_t>> texts = {golden::read_logits_golden(FixturePath("hf/smollm2_logits.rzgl")).token_ids};
  for (const auto& c : greedy_["cases"]) {
    auto ids = c["prompt_ids"].get<std::vector<int32_t>>();
    const auto out = c["output_ids"].get<std::vector<int32_t>>();
    ids.insert(ids.end(), out.begin(), out.end());
    texts.push_back(ids);
  }
  const int V = model_->config.vocab_size;
  int64_t positions = 0, agree = 0;
  for (const auto& ids : texts) {
    const auto g = AllLogits(*gpu, ids, 128);
    const auto c = AllLogits(*cpu, ids);
    ASSERT_EQ(g.size(), c.size());
    for (size_t p = 0; p < ids.size(); ++p, ++positions) agree += ArgMax(&g[p * V], V) == ArgMax(&c[p * V], V);
  }
  std::printf("[cuda smollm2] teacher-forced top-1 agreement with the CPU engine: %lld / %lld = %.2f %%\n",
              static_cast<long long>(agree), static_cast<long long>(positions), 100.0 * agree / positions);
  EXPECT_GE(positions, 1000);
  EXPECT_GE(agree, positions * 99 / 100);
}

// Greedy 64-token continuations on the GPU equal the CPU engine's; a divergence is excused only where the CPU's
// top two logits are within 0.25 (bf16 weights and activations move logits by about that much; measured).
TEST_F(CudaSmolLM2Test, GreedyContinuationsEqualTheCpuExceptAtNearTies) {
  auto gpu = Open(model_, EngineDevice::kCuda);
  auto cpu = Open(model_, EngineDevice::kCpu, KvType::kF16);
  ASSERT_TRUE(gpu && cpu);
  const int V = model_->config.vocab_size;
  int identical = 0, cases = 0;
  for (const auto& c : greedy_["cases"]) {
    ++cases;
    const auto prompt = c["prompt_ids"].get<std::vector<int32_t>>();
    auto sg = std::move(gpu->NewSequence({})).value();
    auto sc = std::move(cpu->NewSequence({})).value();
    std::vector<int32_t> next = prompt;
    bool same = true;
    for (int step = 0; step < 64; ++step) {
      std::vector<SequenceInput> a(1), b(1);
      a[0].sequence = sg.get();
      a[0].tokens = next;
      b[0].sequence = sc.get();
      b[0].tokens = next;
      ASSERT_TRUE(gpu->Step(a).ok());
      ASSERT_TRUE(cpu->Step(b).ok());
      const float* lg = sg->logits().data();
      const float* lc = sc->logits().data();
      const int32_t tg = ArgMax(lg, V), tc = ArgMax(lc, V);
      if (tg != tc) {
        EXPECT_LT(lc[tc] - lc[tg], 0.25f) << "case " << cases << " step " << step << ": gpu " << tg << ", cpu " << tc;
        same = false;
        break;
      }
      next = {tc};
    }
    identical += same;
  }
  std::printf("[cuda smollm2] %d / %d greedy continuations identical to the CPU engine's\n", identical, cases);
}

// RazorAttention on the GPU against the CPU engine: a 448-token prompt compressed (every non-retrieval head cut
// to 4 sinks + a 64-token window + the compensation token, summed on the device), then the rest of the golden
// text teacher-forced one decode step at a time, with and without decode folding. The caches' bookkeeping is
// identical (the same code cut the same heads) and the GPU's top-1 equals the CPU's at >= 97 % of the steps
// (bf16 weights against the CPU's: the full cache agrees at 99.3 %).
TEST_F(CudaSmolLM2Test, RazorDecodeAfterACompressedPromptAgreesWithTheCpuEngine) {
  auto gpu = Open(model_, EngineDevice::kCuda, KvType::kBF16);
  auto cpu = Open(model_, EngineDevice::kCpu, KvType::kF16);
  ASSERT_TRUE(gpu && cpu);
  KvCacheOptions kv;
  kv.mode = KvMode::kRazor;
  kv.razor.sinks = 4;
  kv.razor.window_min = 64;
  kv.razor.window_frac = 0.1;
  ASSERT_TRUE(cpu->EnsureProfile(kv).ok());
  ASSERT_TRUE(gpu->SetProfile(*cpu->profile()).ok());
  const auto ids = golden::read_logits_golden(FixturePath("hf/smollm2_logits.rzgl")).token_ids;
  ASSERT_GE(ids.size(), 600u);
  const size_t prompt = 448;
  const int V = model_->config.vocab_size;
  for (bool fold : {false, true}) {
    kv.razor.decode_fold = fold;
    SequenceOptions so;
    so.kv = kv;
    auto sg = std::move(gpu->NewSequence(so)).value();
    auto sc = std::move(cpu->NewSequence(so)).value();
    int64_t steps = 0, agree = 0;
    for (size_t at = 0; at < ids.size(); at = at == 0 ? prompt : at + 1) {
      std::vector<SequenceInput> a(1), b(1);
      a[0].sequence = sg.get();
      b[0].sequence = sc.get();
      a[0].tokens.assign(ids.begin() + at, ids.begin() + (at == 0 ? prompt : at + 1));
      b[0].tokens = a[0].tokens;
      ASSERT_TRUE(gpu->Step(a).ok());
      ASSERT_TRUE(cpu->Step(b).ok());
      ++steps;
      agree += ArgMax(sg->logits().data(), V) == ArgMax(sc->logits().data(), V);
    }
    const RazorKvStats g = sg->kv_stats(), c = sc->kv_stats();
    EXPECT_GT(c.heads_compressed, 0);
    EXPECT_EQ(g.heads_compressed, c.heads_compressed);
    EXPECT_EQ(g.tokens_dropped, c.tokens_dropped);
    EXPECT_EQ(g.tokens_folded, c.tokens_folded);
    EXPECT_EQ(g.tokens_kept, c.tokens_kept);
    EXPECT_EQ(g.kv_block_bytes, c.kv_block_bytes);  // bf16 and f16 rows are both 2 bytes
    if (fold) EXPECT_GT(c.tokens_folded, 0);
    std::printf("[cuda smollm2 razor%s] %lld heads compressed, %lld tokens dropped; top-1 agreement with the CPU "
                "engine: %lld / %lld = %.2f %%\n",
                fold ? " + fold" : "", static_cast<long long>(g.heads_compressed),
                static_cast<long long>(g.tokens_dropped), static_cast<long long>(agree),
                static_cast<long long>(steps), 100.0 * agree / steps);
    EXPECT_GE(agree, steps * 97 / 100) << (fold ? "fold" : "no fold");
  }
}

}  // namespace
}  // namespace razor
