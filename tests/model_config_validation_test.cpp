// Config fields that divide or size something are checked before any arithmetic, for config.json and GGUF:
// zero or wrapped head counts, odd / huge dimensions, non-finite eps and RoPE scaling. Before these checks a
// config.json with num_attention_heads 0 died of SIGFPE (hidden_size / heads) and a count of 2^32 + 4 was
// read as 4.
#include <gtest/gtest.h>

#include <cmath>
#include <optional>
#include <string>

#include "gguf_writer_for_tests.h"
#include "io/gguf.h"
#include "model/model_config.h"

namespace razor {
namespace {

// A valid tiny llama config; `extra` members replace or add fields (a JSON object body without braces).
std::string Llama(const std::string& extra, const std::string& type = "llama") {
  std::string base = R"("num_hidden_layers": 2, "hidden_size": 64, "intermediate_size": 96, "vocab_size": 256,
                        "max_position_embeddings": 128, "rms_norm_eps": 1e-6)";
  return "{\"model_type\": \"" + type + "\", " + base + (extra.empty() ? "" : ", " + extra) + "}";
}

void ExpectRejected(const std::string& json, const std::string& must_contain) {
  SCOPED_TRACE(json);
  auto c = ConfigFromHfJsonText(json, "cfg.json");
  ASSERT_FALSE(c.ok());
  EXPECT_NE(c.error().find(must_contain), std::string::npos) << c.error();
  EXPECT_EQ(c.error().find('\n'), std::string::npos) << c.error();
}

TEST(ModelConfigValidationTest, AcceptsAValidConfig) {
  auto c = ConfigFromHfJsonText(Llama(R"("num_attention_heads": 4, "num_key_value_heads": 2)"), "cfg.json");
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->n_heads, 4);
  EXPECT_EQ(c->n_kv_heads, 2);
  EXPECT_EQ(c->head_dim, 16);
  // Integral floats are integers too (some exporters write 4096.0).
  EXPECT_TRUE(ConfigFromHfJsonText(Llama(R"("num_attention_heads": 4.0)"), "cfg.json").ok());
}

TEST(ModelConfigValidationTest, ZeroAttentionHeadsIsAnErrorNotSigfpe) {
  for (const char* type : {"llama", "qwen2", "mistral", "qwen3"}) {
    ExpectRejected(Llama(R"("num_attention_heads": 0)", type), "num_attention_heads");
    ExpectRejected(Llama(R"("num_attention_heads": 0, "num_key_value_heads": 0)", type), "num_attention_heads");
    ExpectRejected(Llama(R"("num_attention_heads": 0, "num_key_value_heads": 2)", type), "num_attention_heads");
  }
  ExpectRejected(Llama(R"("num_attention_heads": 4, "num_key_value_heads": 0)"), "num_key_value_heads");
  ExpectRejected(R"({"model_type": "bloom", "n_layer": 2, "hidden_size": 64, "n_head": 0, "vocab_size": 256})", "n_head");
}

TEST(ModelConfigValidationTest, CountsThatWouldWrapAreRejected) {
  // 2^32 + 4 became 4 through get<int>; 2^63 + 1 is an unsigned above int64.
  ExpectRejected(Llama(R"("num_attention_heads": 4294967300)"), "num_attention_heads");
  ExpectRejected(Llama(R"("num_attention_heads": 4, "num_key_value_heads": 9223372036854775809)"), "num_key_value_heads");
  ExpectRejected(Llama(R"("num_attention_heads": -4)"), "num_attention_heads");
  ExpectRejected(Llama(R"("num_attention_heads": 1e30)"), "num_attention_heads");
  ExpectRejected(Llama(R"("num_attention_heads": 4.5)"), "num_attention_heads");
  ExpectRejected(Llama(R"("num_attention_heads": "4")"), "num_attention_heads");
  ExpectRejected(Llama(R"("num_attention_heads": 4, "max_position_embeddings": 0)"), "max_position_embeddings");
  ExpectRejected(R"({"model_type": "bloom", "n_layer": 2, "hidden_size": 2000000000, "n_head": 1, "vocab_size": 8})",
                 "hidden_size");
}

TEST(ModelConfigValidationTest, ShapesAndScalarsAreChecked) {
  ExpectRejected(Llama(R"("num_attention_heads": 4, "head_dim": 15)"), "odd head_dim");
  ExpectRejected(Llama(R"("num_attention_heads": 4, "num_key_value_heads": 3)"), "not divisible");
  ExpectRejected(Llama(R"("num_attention_heads": 4, "rms_norm_eps": -1)"), "rms_norm_eps");
  ExpectRejected(Llama(R"("num_attention_heads": 4, "rope_theta": 0)"), "rope base");
  // llama3 scaling divides by (high - low): equal factors would make every frequency NaN.
  ExpectRejected(Llama(R"("num_attention_heads": 4, "rope_scaling": {"rope_type": "llama3", "factor": 8,
                            "low_freq_factor": 2, "high_freq_factor": 2, "original_max_position_embeddings": 64})"),
                 "high > low");
  ExpectRejected(Llama(R"("num_attention_heads": 4, "rope_scaling": {"rope_type": "llama3", "factor": 8})"),
                 "low_freq_factor");
}

// GGUF metadata: optional counts were cast to int unchecked (2^32 + 2 KV heads read as 2).
std::vector<uint8_t> GgufWith(uint64_t head_count_kv, GgufValueType type = GgufValueType::UINT64) {
  GgufWriterForTests w;
  w.AddString("general.architecture", "llama");
  w.AddUint("llama.block_count", GgufValueType::UINT32, 1);
  w.AddUint("llama.embedding_length", GgufValueType::UINT32, 32);
  w.AddUint("llama.feed_forward_length", GgufValueType::UINT32, 64);
  w.AddUint("llama.attention.head_count", GgufValueType::UINT32, 2);
  w.AddUint("llama.attention.head_count_kv", type, head_count_kv);
  w.AddUint("llama.context_length", GgufValueType::UINT32, 128);
  w.AddUint("llama.vocab_size", GgufValueType::UINT32, 16);
  return w.Build();
}

TEST(ModelConfigValidationTest, GgufCountsAreChecked) {
  for (uint64_t kv : {uint64_t{0}, (uint64_t{1} << 32) + 2, uint64_t{3}}) {
    SCOPED_TRACE(kv);
    const auto bytes = GgufWith(kv);
    auto g = GgufFile::ParseBytes(bytes.data(), bytes.size(), "t.gguf");
    ASSERT_TRUE(g.ok()) << g.error();
    auto c = ConfigFromGguf(*g);
    EXPECT_FALSE(c.ok());
  }
  const auto good = GgufWith(1);
  auto g = GgufFile::ParseBytes(good.data(), good.size(), "t.gguf");
  ASSERT_TRUE(g.ok()) << g.error();
  auto c = ConfigFromGguf(*g);
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->n_kv_heads, 1);
}

// Gemma 3 as llama.cpp writes it: every 6th layer global (RoPE base from the file), the others local with
// the file's sliding window and RoPE base 10000; the Gemma block flags on. No sliding window: an error.
std::vector<uint8_t> Gemma3Gguf(int layers, std::optional<uint64_t> window) {
  GgufWriterForTests w;
  w.AddString("general.architecture", "gemma3");
  w.AddUint("gemma3.block_count", GgufValueType::UINT32, layers);
  w.AddUint("gemma3.embedding_length", GgufValueType::UINT32, 64);
  w.AddUint("gemma3.feed_forward_length", GgufValueType::UINT32, 96);
  w.AddUint("gemma3.attention.head_count", GgufValueType::UINT32, 4);
  w.AddUint("gemma3.attention.head_count_kv", GgufValueType::UINT32, 1);
  w.AddUint("gemma3.attention.key_length", GgufValueType::UINT32, 32);
  w.AddUint("gemma3.context_length", GgufValueType::UINT32, 4096);
  w.AddUint("gemma3.vocab_size", GgufValueType::UINT32, 16);
  w.AddFloat("gemma3.rope.freq_base", GgufValueType::FLOAT32, 1e6);
  if (window) w.AddUint("gemma3.attention.sliding_window", GgufValueType::UINT32, *window);
  return w.Build();
}

TEST(ModelConfigValidationTest, Gemma3LocalAndGlobalLayers) {
  const auto bytes = Gemma3Gguf(13, 512);
  auto g = GgufFile::ParseBytes(bytes.data(), bytes.size(), "g.gguf");
  ASSERT_TRUE(g.ok()) << g.error();
  auto c = ConfigFromGguf(*g);
  ASSERT_TRUE(c.ok()) << c.error();
  EXPECT_EQ(c->arch, Architecture::kGemma3);
  EXPECT_EQ(c->sliding_window, 512);
  for (int l = 0; l < 13; ++l) EXPECT_EQ(c->is_local_layer(l), l != 5 && l != 11) << "layer " << l;
  EXPECT_DOUBLE_EQ(c->rope_theta, 1e6);
  EXPECT_DOUBLE_EQ(c->rope_local().theta, 10000.0);
  EXPECT_EQ(c->rope_layout, RopeLayout::kHalfSplit);
  EXPECT_TRUE(c->qk_norm && c->post_norms && c->gelu_gated_mlp && c->scale_embeddings && c->tied_embeddings);
  EXPECT_FALSE(c->gelu_mlp);
  EXPECT_FLOAT_EQ(c->query_scale(), 1.0f / std::sqrt(32.0f));
  for (std::optional<uint64_t> bad : {std::optional<uint64_t>{}, std::optional<uint64_t>{0}}) {
    const auto b = Gemma3Gguf(6, bad);
    auto gb = GgufFile::ParseBytes(b.data(), b.size(), "g.gguf");
    ASSERT_TRUE(gb.ok()) << gb.error();
    auto cb = ConfigFromGguf(*gb);
    ASSERT_FALSE(cb.ok());
    EXPECT_NE(cb.error().find("sliding_window"), std::string::npos) << cb.error();
  }
}

// A model_type with control characters (the fuzzer's find: "qw\n2") is quoted escaped, so the error stays one line.
TEST(ModelConfigValidationTest, UnsupportedModelTypeIsQuotedOnOneLine) {
  auto c = ConfigFromHfJsonText(
      R"({"model_type": "qw\n2", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 6})", "config.json");
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.error().find('\n'), std::string::npos) << c.error();
  EXPECT_NE(c.error().find("unsupported model_type 'qw\\x0a2'"), std::string::npos) << c.error();
  EXPECT_EQ(ForMessage(std::string(200, 'a')).size(), 83u);  // 80 bytes and "..."
}

}  // namespace
}  // namespace razor
