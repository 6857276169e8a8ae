// Tiny random-weight checkpoints of each architecture, written by transformers' save_pretrained, against
// the logits transformers computed (tests/golden_scripts/make_hf_goldens.py).
#include <gtest/gtest.h>

#include <cmath>

#include "golden_reader.h"
#include "model_test_support.h"

namespace razor {
namespace {

using testing::FixturePath;

class TinyHfModelTest : public ::testing::TestWithParam<std::string> {};

TEST_P(TinyHfModelTest, LogitsMatchTransformers) {
  const std::string dir = FixturePath("hf/tiny_" + GetParam());
  auto golden = golden::read_logits_golden(dir + "/logits.rzgl");
  ASSERT_TRUE(golden.has_full_logits());
  // tiny_llama_gguf is a GGUF written with the gguf package (Q/K permuted as llama.cpp does, mixed types).
  // tiny_bloom_gguf: the tiny_bloom weights as llama.cpp converts BLOOM (QKV regrouped, F16 + Q8_0).
  const std::string model_path = GetParam() == "llama_gguf"   ? dir + "/tiny_llama.gguf"
                                 : GetParam() == "bloom_gguf" ? dir + "/tiny_bloom.gguf"
                                                              : dir;
  auto m = LoadModel(model_path, false);
  ASSERT_TRUE(m.ok()) << m.error();
  ASSERT_EQ(static_cast<uint32_t>((*m)->config.vocab_size), golden.vocab);
  for (MathMode mode : {MathMode::kExact, MathMode::kFast}) {
    // Whole sequence at once, and prefill 7 + one token at a time: the cache must carry state exactly.
    // Chunks of 5 inside one Forward call must not change anything either.
    for (auto [batch, chunk] : {std::pair<int64_t, int64_t>{1000, 256}, {1000, 5}, {7, 256}, {1, 256}}) {
      auto logits = testing::RunAllLogits(**m, mode, golden.token_ids, batch, 2, chunk);
      ASSERT_EQ(logits.size(), golden.n_positions() * golden.vocab);
      for (size_t p = 0; p < golden.n_positions(); ++p) {
        const auto want = golden.full_logits(p);
        const float tol = 1e-4f * std::max(1.0f, golden.positions[p].max_abs);
        for (uint32_t v = 0; v < golden.vocab; ++v)
          ASSERT_NEAR(logits[p * golden.vocab + v], want[v], tol)
              << GetParam() << " mode=" << int(mode) << " batch=" << batch << " pos=" << p << " id=" << v;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Architectures, TinyHfModelTest,
                         ::testing::Values("llama", "llama3_rope", "qwen2", "qwen3", "llama_bf16_sharded",
                                           "llama_tied_f16", "llama_gguf", "bloom", "bloom_gguf"));

}  // namespace
}  // namespace razor
