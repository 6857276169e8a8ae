// GGUF reader: round trips of every metadata type, layouts (v2/v3, alignment), and every kind of bad input.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <limits>

#include "gguf_writer_for_tests.h"
#include "io/gguf.h"

namespace razor {
namespace {

using Bytes = GgufWriterForTests::Bytes;
using VT = GgufValueType;

Result<GgufFile> ParseVec(const Bytes& b, const std::string& name = "test.gguf") {
  return GgufFile::ParseBytes(b.data(), b.size(), name);
}

// A small valid file: a few KVs of several kinds and two tensors (F32 and Q8_0).
GgufWriterForTests SmallModel() {
  GgufWriterForTests w;
  w.AddString("general.architecture", "llama");
  w.AddUint("llama.block_count", VT::UINT32, 2);
  w.AddFloat("llama.rope.freq_base", VT::FLOAT32, 10000.0);
  w.AddStringArray("tokenizer.ggml.tokens", {"<s>", "</s>", "a"});
  w.AddFloatArray("tokenizer.ggml.scores", VT::FLOAT32, {0.0, -1.0, -2.5});
  w.AddTensor("output_norm.weight", TensorType::F32, {4}, GgufWriterForTests::F32Bytes({1, 2, 3, 4}));
  Bytes q8(34 * 2, 0x11);  // 2 rows of one Q8_0 block each
  w.AddTensor("blk.0.attn_q.weight", TensorType::Q8_0, {32, 2}, q8);
  return w;
}

// Every error is one line that starts with the file name.
void ExpectCleanError(const Result<GgufFile>& r, const std::string& name, const std::string& needle) {
  ASSERT_FALSE(r.ok()) << "expected an error containing: " << needle;
  EXPECT_EQ(r.error().rfind(name + ": ", 0), 0u) << r.error();
  EXPECT_EQ(r.error().find('\n'), std::string::npos) << r.error();
  EXPECT_NE(r.error().find(needle), std::string::npos) << r.error();
}

TEST(Gguf, RoundTripsEveryScalarType) {
  GgufWriterForTests w;
  w.AddUint("u8", VT::UINT8, 200).AddInt("i8", VT::INT8, -100);
  w.AddUint("u16", VT::UINT16, 60000).AddInt("i16", VT::INT16, -30000);
  w.AddUint("u32", VT::UINT32, 4000000000u).AddInt("i32", VT::INT32, -2000000000);
  w.AddUint("u64", VT::UINT64, std::numeric_limits<uint64_t>::max()).AddInt("i64", VT::INT64, INT64_MIN);
  w.AddFloat("f32", VT::FLOAT32, 1.5).AddFloat("f64", VT::FLOAT64, -2.25e300);
  w.AddBool("yes", true).AddBool("no", false);
  w.AddString("s", "héllo").AddString("empty", "");
  auto g = ParseVec(w.Build());
  ASSERT_TRUE(g.ok()) << g.error();
  EXPECT_EQ(g->GetInt("u8").value(), 200);
  EXPECT_EQ(g->GetInt("i8").value(), -100);
  EXPECT_EQ(g->GetInt("u16").value(), 60000);
  EXPECT_EQ(g->GetInt("i16").value(), -30000);
  EXPECT_EQ(g->GetInt("u32").value(), 4000000000LL);
  EXPECT_EQ(g->GetInt("i32").value(), -2000000000);
  EXPECT_EQ(std::get<uint64_t>(g->Find("u64")->scalar), std::numeric_limits<uint64_t>::max());
  EXPECT_FALSE(g->GetInt("u64").ok());  // does not fit in int64
  EXPECT_EQ(g->GetInt("i64").value(), INT64_MIN);
  EXPECT_EQ(g->GetFloat("f32").value(), 1.5);
  EXPECT_EQ(g->GetFloat("f64").value(), -2.25e300);
  EXPECT_EQ(g->GetFloat("u32").value(), 4e9);  // integers are accepted as floats
  EXPECT_TRUE(g->GetBool("yes").value());
  EXPECT_FALSE(g->GetBool("no").value());
  EXPECT_EQ(g->GetString("s").value(), "héllo");
  EXPECT_EQ(g->GetString("empty").value(), "");
  EXPECT_EQ(g->Find("i16")->type, VT::INT16);
  const std::vector<std::string> order = {"u8", "i8", "u16", "i16", "u32", "i32", "u64", "i64",
                                          "f32", "f64", "yes", "no", "s", "empty"};
  EXPECT_EQ(g->keys(), order);
  EXPECT_TRUE(g->tensors().empty());
}

TEST(Gguf, RoundTripsEveryArrayType) {
  GgufWriterForTests w;
  w.AddIntArray("a_u8", VT::UINT8, {0, 255}).AddIntArray("a_i8", VT::INT8, {-128, 127});
  w.AddIntArray("a_u16", VT::UINT16, {65535}).AddIntArray("a_i16", VT::INT16, {-32768});
  w.AddIntArray("a_u32", VT::UINT32, {4294967295LL}).AddIntArray("a_i32", VT::INT32, {-7, 8, 9});
  w.AddIntArray("a_u64", VT::UINT64, {INT64_MAX}).AddIntArray("a_i64", VT::INT64, {INT64_MIN, 0});
  w.AddFloatArray("a_f32", VT::FLOAT32, {0.5, -1.0}).AddFloatArray("a_f64", VT::FLOAT64, {1e-300});
  w.AddBoolArray("a_bool", {true, false, true});
  w.AddStringArray("a_str", {"x", "", "yz"});
  w.AddIntArray("a_empty", VT::INT32, {});
  auto g = ParseVec(w.Build());
  ASSERT_TRUE(g.ok()) << g.error();
  EXPECT_EQ(*g->GetIntArray("a_u8").value(), (std::vector<int64_t>{0, 255}));
  EXPECT_EQ(*g->GetIntArray("a_i8").value(), (std::vector<int64_t>{-128, 127}));
  EXPECT_EQ(*g->GetIntArray("a_u16").value(), (std::vector<int64_t>{65535}));
  EXPECT_EQ(*g->GetIntArray("a_i16").value(), (std::vector<int64_t>{-32768}));
  EXPECT_EQ(*g->GetIntArray("a_u32").value(), (std::vector<int64_t>{4294967295LL}));
  EXPECT_EQ(*g->GetIntArray("a_i32").value(), (std::vector<int64_t>{-7, 8, 9}));
  EXPECT_EQ(*g->GetIntArray("a_u64").value(), (std::vector<int64_t>{INT64_MAX}));
  EXPECT_EQ(*g->GetIntArray("a_i64").value(), (std::vector<int64_t>{INT64_MIN, 0}));
  EXPECT_EQ(*g->GetFloatArray("a_f32").value(), (std::vector<double>{0.5, -1.0}));
  EXPECT_EQ(*g->GetFloatArray("a_f64").value(), (std::vector<double>{1e-300}));
  EXPECT_EQ(g->Find("a_bool")->bools, (std::vector<bool>{true, false, true}));
  EXPECT_EQ(*g->GetStringArray("a_str").value(), (std::vector<std::string>{"x", "", "yz"}));
  EXPECT_EQ(g->Find("a_empty")->array_size(), 0u);
  EXPECT_EQ(g->Find("a_i32")->array_type, VT::INT32);
  EXPECT_EQ(g->Find("a_str")->array_size(), 3u);
  EXPECT_EQ(g->Find("a_i32")->ToShortString(), "[INT32 x 3: -7, 8, 9]");
}

TEST(Gguf, TypedGettersNameKeyAndFoundType) {
  GgufWriterForTests w;
  w.AddString("name", "x").AddIntArray("ids", VT::INT32, {1});
  auto g = ParseVec(w.Build());
  ASSERT_TRUE(g.ok()) << g.error();
  auto missing = g->GetInt("nope");
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().find("'nope' is missing"), std::string::npos) << missing.error();
  auto wrong = g->GetInt("name");
  ASSERT_FALSE(wrong.ok());
  EXPECT_NE(wrong.error().find("'name' has type STRING"), std::string::npos) << wrong.error();
  EXPECT_FALSE(g->GetStringArray("ids").ok());
  EXPECT_FALSE(g->GetFloatArray("ids").ok());
  EXPECT_FALSE(g->GetBool("name").ok());
  EXPECT_FALSE(g->GetString("ids").ok());
  EXPECT_EQ(g->GetIntOr("name"), std::nullopt);
  EXPECT_EQ(g->GetStringOr("name"), "x");
  EXPECT_EQ(g->GetFloatOr("missing"), std::nullopt);
}

TEST(Gguf, ShortStringAbbreviatesArrays) {
  GgufWriterForTests w;
  w.AddStringArray("t", {"a", "b", "c", "d", "e", "f"}).AddBool("b", true).AddString("s", "hi");
  w.AddFloat("eps", VT::FLOAT32, 1e-5).AddString("nl", "a\nb\"").AddString("long", std::string(100, 'x'));
  auto g = ParseVec(w.Build());
  ASSERT_TRUE(g.ok()) << g.error();
  EXPECT_EQ(g->Find("t")->ToShortString(), "[STRING x 6: \"a\", \"b\", \"c\", \"d\", ...]");
  EXPECT_EQ(g->Find("b")->ToShortString(), "true");
  EXPECT_EQ(g->Find("s")->ToShortString(), "\"hi\"");
  EXPECT_EQ(g->Find("eps")->ToShortString(), "1e-05");
  EXPECT_EQ(g->Find("nl")->ToShortString(), "\"a\\x0ab\\\"\"");
  EXPECT_EQ(g->Find("long")->ToShortString(), "\"" + std::string(60, 'x') + "...\"");
}

class GgufVersion : public ::testing::TestWithParam<uint32_t> {};

TEST_P(GgufVersion, ReadsTensorsAndMetadata) {
  auto w = SmallModel();
  w.SetVersion(GetParam());
  auto g = ParseVec(w.Build());
  ASSERT_TRUE(g.ok()) << g.error();
  EXPECT_EQ(g->version(), GetParam());
  EXPECT_EQ(g->alignment(), 32u);
  EXPECT_EQ(g->data_offset() % 32, 0u);
  EXPECT_EQ(g->GetString("general.architecture").value(), "llama");
  EXPECT_EQ(g->GetInt("llama.block_count").value(), 2);
  EXPECT_EQ(*g->GetStringArray("tokenizer.ggml.tokens").value(), (std::vector<std::string>{"<s>", "</s>", "a"}));
  ASSERT_EQ(g->tensors().size(), 2u);

  const TensorView* norm = g->FindTensor("output_norm.weight");
  ASSERT_NE(norm, nullptr);
  EXPECT_EQ(norm->type, TensorType::F32);
  EXPECT_EQ(norm->shape, (std::vector<int64_t>{4}));
  EXPECT_EQ(norm->nbytes, 16u);
  float vals[4];
  std::memcpy(vals, norm->data, sizeof(vals));
  EXPECT_EQ(vals[0], 1.0f);
  EXPECT_EQ(vals[3], 4.0f);

  const TensorView* q = g->FindTensor("blk.0.attn_q.weight");
  ASSERT_NE(q, nullptr);
  EXPECT_EQ(q->type, TensorType::Q8_0);
  EXPECT_EQ(q->shape, (std::vector<int64_t>{32, 2}));
  EXPECT_EQ(q->rows(), 2);
  EXPECT_EQ(q->nbytes, 68u);
  EXPECT_EQ(q->data[0], 0x11);
  EXPECT_EQ(q->data[67], 0x11);
  EXPECT_EQ(g->FindTensor("missing"), nullptr);
  EXPECT_EQ(&g->tensors()[0], norm);  // tensors() keeps file order
}

INSTANTIATE_TEST_SUITE_P(GgufV2AndV3, GgufVersion, ::testing::Values(2u, 3u));

TEST(Gguf, HonoursCustomAlignment) {
  for (uint32_t align : {1u, 8u, 64u, 4096u}) {
    auto w = SmallModel();
    w.SetAlignment(align);
    const Bytes b = w.Build();
    auto g = ParseVec(b);
    ASSERT_TRUE(g.ok()) << "align " << align << ": " << g.error();
    EXPECT_EQ(g->alignment(), align);
    EXPECT_EQ(g->data_offset(), w.data_offset());
    EXPECT_EQ(g->data_offset() % align, 0u);
    const TensorView* q = g->FindTensor("blk.0.attn_q.weight");
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(static_cast<size_t>(q->data - g->FindTensor("output_norm.weight")->data) % align, 0u);
    EXPECT_EQ(q->data[0], 0x11);
  }
}

TEST(Gguf, AcceptsKnownButUnsupportedTensorType) {
  GgufWriterForTests w;
  w.AddTensor("x", TensorType::Q8_1, {32}, Bytes(36, 0));
  auto g = ParseVec(w.Build());
  ASSERT_TRUE(g.ok()) << g.error();
  EXPECT_EQ(g->FindTensor("x")->type, TensorType::Q8_1);
}

TEST(Gguf, OpensFromDisk) {
  const std::string path = ::testing::TempDir() + "/razor_gguf_open_test.gguf";
  ASSERT_TRUE(SmallModel().WriteTo(path));
  auto g = GgufFile::Open(path);
  ASSERT_TRUE(g.ok()) << g.error();
  EXPECT_EQ(g->path(), path);
  ASSERT_NE(g->FindTensor("output_norm.weight"), nullptr);
  float v0;
  std::memcpy(&v0, g->FindTensor("output_norm.weight")->data, 4);
  EXPECT_EQ(v0, 1.0f);
  // Moving the file keeps the mapping and the views valid.
  GgufFile moved = std::move(*g);
  std::memcpy(&v0, moved.FindTensor("output_norm.weight")->data, 4);
  EXPECT_EQ(v0, 1.0f);
  std::filesystem::remove(path);

  auto missing = GgufFile::Open(path);
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error().rfind(path, 0), 0u) << missing.error();
}

// ---------------------------------------------------------------- bad input

TEST(GgufBadInput, EveryTruncationFailsCleanly) {
  auto w = SmallModel();
  w.SetAlignment(16);
  const Bytes full = w.Build();
  ASSERT_TRUE(ParseVec(full).ok());
  // The last tensor's data ends exactly at the end of the file, so every shorter prefix is invalid.
  for (size_t n = 0; n < full.size(); ++n) {
    Bytes prefix(full.begin(), full.begin() + static_cast<std::ptrdiff_t>(n));
    auto r = ParseVec(prefix, "cut.gguf");
    ASSERT_FALSE(r.ok()) << "prefix of " << n << " bytes parsed";
    EXPECT_EQ(r.error().rfind("cut.gguf: ", 0), 0u) << r.error();
  }
}

TEST(GgufBadInput, HugeTensorCountFailsFast) {
  auto w = SmallModel();
  w.ClaimTensorCount(uint64_t{1} << 60);
  ExpectCleanError(ParseVec(w.Build()), "test.gguf", "claims 1152921504606846976 tensors");
}

TEST(GgufBadInput, HugeKvCountFailsFast) {
  auto w = SmallModel();
  w.ClaimKvCount(~uint64_t{0});
  ExpectCleanError(ParseVec(w.Build()), "test.gguf", "metadata entries");
}

TEST(GgufBadInput, OneTensorMoreThanPresent) {
  auto w = SmallModel();
  w.ClaimTensorCount(3);
  EXPECT_FALSE(ParseVec(w.Build()).ok());
}

TEST(GgufBadInput, OneKvMoreThanPresent) {
  GgufWriterForTests w;  // metadata only: the missing KV must not be read from past the end
  w.AddString("a", "b").AddUint("c", VT::UINT32, 1);
  w.ClaimKvCount(3);
  ExpectCleanError(ParseVec(w.Build()), "test.gguf", "truncated");
}

TEST(GgufBadInput, TensorDataOutOfBounds) {
  auto w = SmallModel();
  w.SetTensorOffset(1, 1024);
  ExpectCleanError(ParseVec(w.Build()), "test.gguf", "tensor 'blk.0.attn_q.weight' data (68 bytes at data offset 1024)");
  auto w2 = SmallModel();
  w2.SetTensorOffset(1, ~uint64_t{0} & ~uint64_t{31});  // aligned, and offset + size overflows
  ExpectCleanError(ParseVec(w2.Build()), "test.gguf", "extends past the end");
}

TEST(GgufBadInput, UnknownTensorTypeNamesIdAndTensor) {
  GgufWriterForTests w;
  w.AddTensor("blk.0.attn_q.weight", 99u, {32}, Bytes(128, 0));
  ExpectCleanError(ParseVec(w.Build()), "test.gguf", "unknown tensor type 99 for tensor 'blk.0.attn_q.weight' at offset");
}

TEST(GgufBadInput, MisalignedTensorOffset) {
  auto w = SmallModel();
  w.SetTensorOffset(1, 20);
  ExpectCleanError(ParseVec(w.Build()), "test.gguf", "data offset 20 is not a multiple of the alignment 32");
}

TEST(GgufBadInput, UnsupportedVersions) {
  auto w = SmallModel();
  w.SetVersion(1);
  ExpectCleanError(ParseVec(w.Build()), "test.gguf", "version 1 is not supported");
  w.SetVersion(4);
  ExpectCleanError(ParseVec(w.Build()), "test.gguf", "unsupported GGUF version 4");
  w.SetVersion(0x03000000);
  ExpectCleanError(ParseVec(w.Build()), "test.gguf", "big-endian");
}

TEST(GgufBadInput, BadMagic) {
  auto w = SmallModel();
  w.SetMagic("GGML");
  ExpectCleanError(ParseVec(w.Build()), "test.gguf", "not a GGUF file");
  ExpectCleanError(ParseVec(Bytes{}), "test.gguf", "truncated");
}

TEST(GgufBadInput, BadAlignment) {
  for (uint32_t a : {0u, 3u, 48u}) {
    auto w = SmallModel();
    w.SetAlignment(a);
    ExpectCleanError(ParseVec(w.Build()), "test.gguf", "general.alignment");
  }
  GgufWriterForTests w;
  w.AddString("general.alignment", "32");
  ExpectCleanError(ParseVec(w.Build()), "test.gguf", "general.alignment");
}

TEST(GgufBadInput, NestedArrayIsRejected) {
  Bytes inner = GgufWriterForTests::ArrayHeader(VT::UINT8, 1);
  inner.push_back(7);
  Bytes payload = GgufWriterForTests::ArrayHeader(VT::ARRAY, 1);
  payload.insert(payload.end(), inner.begin(), inner.end());
  GgufWriterForTests w;
  w.AddRawKv("nested", static_cast<uint32_t>(VT::ARRAY), payload);
  ExpectCleanError(ParseVec(w.Build()), "test.gguf", "nested array");
}

TEST(GgufBadInput, UnknownValueTypes) {
  GgufWriterForTests w;
  w.AddRawKv("k", 13u, Bytes(8, 0));
  ExpectCleanError(ParseVec(w.Build()), "test.gguf", "unknown value type 13");
  GgufWriterForTests w2;
  w2.AddRawKv("k", static_cast<uint32_t>(VT::ARRAY), GgufWriterForTests::ArrayHeader(static_cast<VT>(42), 0));
  ExpectCleanError(ParseVec(w2.Build()), "test.gguf", "unknown element type 42");
}

TEST(GgufBadInput, LyingLengths) {
  Bytes huge_str;
  GgufWriterForTests::Put<uint64_t>(&huge_str, uint64_t{1} << 62);
  GgufWriterForTests w;
  w.AddRawKv("s", static_cast<uint32_t>(VT::STRING), huge_str);
  ExpectCleanError(ParseVec(w.Build()), "test.gguf", "claims length 4611686018427387904");

  for (VT elem : {VT::UINT8, VT::UINT64, VT::STRING, VT::BOOL, VT::FLOAT64}) {
    GgufWriterForTests a;
    a.AddRawKv("arr", static_cast<uint32_t>(VT::ARRAY), GgufWriterForTests::ArrayHeader(elem, uint64_t{1} << 61));
    ExpectCleanError(ParseVec(a.Build()), "test.gguf", "claims 2305843009213693952 elements");
  }
  // A u64 array element that does not fit in int64.
  Bytes big = GgufWriterForTests::ArrayHeader(VT::UINT64, 1);
  GgufWriterForTests::Put<uint64_t>(&big, ~uint64_t{0});
  GgufWriterForTests b;
  b.AddRawKv("big", static_cast<uint32_t>(VT::ARRAY), big);
  ExpectCleanError(ParseVec(b.Build()), "test.gguf", "does not fit in int64");
}

TEST(GgufBadInput, DuplicateKeysAndTensorNames) {
  GgufWriterForTests w;
  w.AddString("k", "a").AddString("k", "b");
  ExpectCleanError(ParseVec(w.Build()), "test.gguf", "duplicate metadata key 'k'");
  GgufWriterForTests t;
  t.AddTensor("x", TensorType::F32, {1}, Bytes(4, 0));
  t.AddTensor("x", TensorType::F32, {1}, Bytes(4, 0));
  ExpectCleanError(ParseVec(t.Build()), "test.gguf", "duplicate tensor name 'x'");
}

TEST(GgufBadInput, BadDimensions) {
  struct Case {
    std::vector<uint64_t> dims;
    uint32_t type;
    const char* needle;
  };
  const Case cases[] = {
      {{}, 0, "0 dimensions"},
      {{1, 1, 1, 1, 1}, 0, "5 dimensions"},
      {{4, 0}, 0, "invalid dimension 1 = 0"},
      {{uint64_t{1} << 63}, 0, "invalid dimension 0"},
      {{uint64_t{1} << 32, uint64_t{1} << 32}, 0, "overflows"},
      {{uint64_t{1} << 40, uint64_t{1} << 30}, 0, "overflows"},
      {{33}, static_cast<uint32_t>(TensorType::Q8_0), "not a multiple of the block size 32"},
  };
  for (const auto& c : cases) {
    GgufWriterForTests w;
    w.AddTensor("t", c.type, c.dims, Bytes(64, 0));
    ExpectCleanError(ParseVec(w.Build()), "test.gguf", c.needle);
  }
}

TEST(GgufBadInput, NamesWithControlBytesStayOneLine) {
  GgufWriterForTests w;
  w.AddTensor("bad\nname", 77u, {1}, Bytes(4, 0));
  ExpectCleanError(ParseVec(w.Build()), "test.gguf", "'bad\\x0aname'");
}

// ---------------------------------------------------------------- real model (optional)

TEST(GgufRealModel, SmolLM2) {
  const char* env = std::getenv("RAZOR_TEST_MODEL");
  if (env == nullptr || !std::filesystem::exists(env)) GTEST_SKIP() << "set RAZOR_TEST_MODEL to a SmolLM2-135M GGUF";
  auto g = GgufFile::Open(env);
  ASSERT_TRUE(g.ok()) << g.error();
  EXPECT_EQ(g->tensors().size(), 272u);
  EXPECT_EQ(g->GetString("general.architecture").value(), "llama");
  EXPECT_EQ(g->GetInt("llama.block_count").value(), 30);
  const TensorView* emb = g->FindTensor("token_embd.weight");
  ASSERT_NE(emb, nullptr);
  EXPECT_EQ(emb->type, TensorType::Q8_0);
  EXPECT_EQ(emb->shape, (std::vector<int64_t>{576, 49152}));
  EXPECT_EQ(g->GetStringArray("tokenizer.ggml.tokens").value()->size(), 49152u);
}

}  // namespace
}  // namespace razor
