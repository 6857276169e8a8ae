// safetensors reader: files written byte by byte here, single and sharded checkpoints, and bad inputs.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "io/safetensors.h"

namespace razor {
namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<uint8_t>;

// u64 LE header length | header JSON | data.
Bytes MakeFile(const std::string& header, const Bytes& data) {
  Bytes out(8);
  const uint64_t n = header.size();
  std::memcpy(out.data(), &n, 8);
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

Bytes FloatBytes(const std::vector<float>& v) {
  Bytes b(v.size() * 4);
  std::memcpy(b.data(), v.data(), b.size());
  return b;
}

float FloatAt(const TensorView& t, size_t i) {
  float f;
  std::memcpy(&f, t.data + 4 * i, 4);
  return f;
}

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::path(::testing::TempDir()) /
           ("razor_st_" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Write(const std::string& name, const Bytes& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream f(path, std::ios::binary);
    f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path;
  }
  std::string WriteText(const std::string& name, const std::string& text) { return Write(name, Bytes(text.begin(), text.end())); }

  // Expects an error that starts with `prefix` and contains `needle`.
  template <class T>
  void ExpectError(const Result<T>& r, const std::string& prefix, const std::string& needle) {
    ASSERT_FALSE(r.ok()) << "expected error containing: " << needle;
    EXPECT_EQ(r.error().rfind(prefix, 0), 0u) << r.error();
    EXPECT_NE(r.error().find(needle), std::string::npos) << r.error();
    EXPECT_EQ(r.error().find('\n'), std::string::npos) << r.error();
  }

  fs::path dir_;
};

// Two tensors: "w" F32 PyTorch shape [2, 3] (values 0..5) and "b" BF16 shape [3], plus __metadata__.
Bytes TwoTensorFile() {
  const std::string header =
      R"({"__metadata__":{"format":"pt"},)"
      R"("w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]},)"
      R"("b":{"dtype":"BF16","shape":[3],"data_offsets":[24,30]}})";
  Bytes data = FloatBytes({0, 1, 2, 3, 4, 5});
  for (uint16_t v : {0x3f80, 0x4000, 0xbf80}) {  // 1.0, 2.0, -1.0 in bf16
    data.push_back(static_cast<uint8_t>(v & 0xff));
    data.push_back(static_cast<uint8_t>(v >> 8));
  }
  return MakeFile(header, data);
}

TEST_F(SafetensorsTest, ReadsValuesAndShapesInGgufOrder) {
  auto f = SafetensorsFile::Open(Write("a.safetensors", TwoTensorFile()));
  ASSERT_TRUE(f.ok()) << f.error();
  ASSERT_EQ(f->tensors().size(), 2u);
  EXPECT_EQ(f->tensors()[0].name, "w");  // header order
  const TensorView* w = f->FindTensor("w");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(w->type, TensorType::F32);
  EXPECT_EQ(w->shape, (std::vector<int64_t>{3, 2}));  // PyTorch [2, 3] reversed
  EXPECT_EQ(w->rows(), 2);
  EXPECT_EQ(w->cols(), 3);
  EXPECT_EQ(w->nbytes, 24u);
  EXPECT_EQ(FloatAt(*w, 0), 0.0f);
  EXPECT_EQ(FloatAt(*w, 5), 5.0f);
  const TensorView* b = f->FindTensor("b");
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(b->type, TensorType::BF16);
  EXPECT_EQ(b->shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(b->data[0], 0x80);
  EXPECT_EQ(b->data[1], 0x3f);
  EXPECT_EQ(f->FindTensor("__metadata__"), nullptr);
}

TEST_F(SafetensorsTest, AcceptsF16AndScalar) {
  const std::string header = R"({"h":{"dtype":"F16","shape":[1,2],"data_offsets":[0,4]},)"
                             R"("s":{"dtype":"F32","shape":[],"data_offsets":[4,8]}})";
  auto f = SafetensorsFile::Open(Write("h.safetensors", MakeFile(header, Bytes{0, 0x3c, 0, 0xc0, 0, 0, 0x80, 0x3f})));
  ASSERT_TRUE(f.ok()) << f.error();
  EXPECT_EQ(f->FindTensor("h")->type, TensorType::F16);
  EXPECT_EQ(f->FindTensor("h")->shape, (std::vector<int64_t>{2, 1}));
  EXPECT_TRUE(f->FindTensor("s")->shape.empty());
  EXPECT_EQ(FloatAt(*f->FindTensor("s"), 0), 1.0f);
}

TEST_F(SafetensorsTest, CheckpointWithSingleFile) {
  Write("model.safetensors", TwoTensorFile());
  auto ck = SafetensorsCheckpoint::Open(dir_.string());
  ASSERT_TRUE(ck.ok()) << ck.error();
  EXPECT_EQ(ck->shard_count(), 1u);
  EXPECT_EQ(ck->tensors().size(), 2u);
  ASSERT_NE(ck->FindTensor("w"), nullptr);
  EXPECT_EQ(FloatAt(*ck->FindTensor("w"), 4), 4.0f);
  EXPECT_EQ(ck->FindTensor("nope"), nullptr);
}

TEST_F(SafetensorsTest, ShardedCheckpointKeepsMappingsAlive) {
  Write("model-00001-of-00002.safetensors",
        MakeFile(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", FloatBytes({1, 2})));
  Write("model-00002-of-00002.safetensors",
        MakeFile(R"({"b":{"dtype":"F32","shape":[1,1],"data_offsets":[0,4]},)"
                 R"("c":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                 FloatBytes({7, 8})));
  WriteText("model.safetensors.index.json",
            R"({"metadata":{"total_size":16},"weight_map":{"a":"model-00001-of-00002.safetensors",)"
            R"("b":"model-00002-of-00002.safetensors","c":"model-00002-of-00002.safetensors"}})");
  std::unique_ptr<SafetensorsCheckpoint> ck;
  {
    auto r = SafetensorsCheckpoint::Open(dir_.string());
    ASSERT_TRUE(r.ok()) << r.error();
    ck = std::make_unique<SafetensorsCheckpoint>(std::move(*r));
  }
  // The files can go away: the mappings stay valid.
  fs::remove(dir_ / "model-00002-of-00002.safetensors");
  EXPECT_EQ(ck->shard_count(), 2u);
  EXPECT_EQ(ck->tensors().size(), 3u);
  EXPECT_EQ(FloatAt(*ck->FindTensor("a"), 1), 2.0f);
  EXPECT_EQ(FloatAt(*ck->FindTensor("b"), 0), 7.0f);
  EXPECT_EQ(FloatAt(*ck->FindTensor("c"), 0), 8.0f);
}

TEST_F(SafetensorsTest, MissingShard) {
  Write("model-00001-of-00002.safetensors",
        MakeFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", FloatBytes({1})));
  const std::string index = WriteText("model.safetensors.index.json",
      R"({"weight_map":{"a":"model-00001-of-00002.safetensors","b":"model-00002-of-00002.safetensors"}})");
  ExpectError(SafetensorsCheckpoint::Open(dir_.string()), index, "model-00002-of-00002.safetensors' is missing");
}

TEST_F(SafetensorsTest, IndexNamesTensorTheShardLacks) {
  Write("s1.safetensors", MakeFile(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}})", FloatBytes({1})));
  const std::string index = WriteText("model.safetensors.index.json", R"({"weight_map":{"a":"s1.safetensors","zz":"s1.safetensors"}})");
  ExpectError(SafetensorsCheckpoint::Open(dir_.string()), index, "tensor 'zz' is mapped to 's1.safetensors'");
}

TEST_F(SafetensorsTest, BadIndexAndEmptyDir) {
  ExpectError(SafetensorsCheckpoint::Open(dir_.string()), dir_.string(), "no model.safetensors");
  const std::string index = WriteText("model.safetensors.index.json", R"({"weight_map":[1,2]})");
  ExpectError(SafetensorsCheckpoint::Open(dir_.string()), index, "weight_map");
  WriteText("model.safetensors.index.json", R"({"weight_map":{"a":"../evil.safetensors"}})");
  ExpectError(SafetensorsCheckpoint::Open(dir_.string()), index, "not a plain file name");
  WriteText("model.safetensors.index.json", "{not json");
  ExpectError(SafetensorsCheckpoint::Open(dir_.string()), index, "not a valid JSON");
}

TEST_F(SafetensorsTest, TruncatedHeaderAndHeaderLengthBeyondFile) {
  const Bytes good = TwoTensorFile();
  for (size_t n : {size_t{0}, size_t{5}}) {
    const std::string p = Write("t.safetensors", Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)));
    ExpectError(SafetensorsFile::Open(p), p, "too small for the 8-byte header length");
  }
  // Every cut inside the header or the data fails cleanly.
  for (size_t n = 8; n < good.size(); ++n) {
    const std::string p = Write("t.safetensors", Bytes(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(n)));
    auto r = SafetensorsFile::Open(p);
    ASSERT_FALSE(r.ok()) << "prefix " << n;
    EXPECT_EQ(r.error().rfind(p, 0), 0u) << r.error();
  }
  Bytes huge = good;
  const uint64_t len = uint64_t{1} << 62;
  std::memcpy(huge.data(), &len, 8);
  const std::string p = Write("huge.safetensors", huge);
  ExpectError(SafetensorsFile::Open(p), p, "header length 4611686018427387904 at offset 0 exceeds");
}

TEST_F(SafetensorsTest, BadEntries) {
  struct Case {
    std::string header;
    const char* needle;
  };
  const Case cases[] = {
      {R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0,64]}})", "outside the data section of 16 bytes"},
      {R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[8,4]}})", "outside the data section"},
      {R"({"x":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", "need 12"},
      {R"({"x":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", "unsupported dtype 'I64'"},
      {R"({"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,16]}})", "\"shape\" must be"},
      {R"({"x":{"dtype":"F32","shape":[4],"data_offsets":[0]}})", "\"data_offsets\" must be"},
      {R"({"x":{"shape":[4],"data_offsets":[0,16]}})", "\"dtype\""},
      {R"({"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", "too large"},
      {R"({"x":[1,2]})", "not a JSON object"},
      {R"(["x"])", "header is not a JSON object"},
      {R"({"x":{"dtype":"F32")", "not valid JSON"},
  };
  for (const auto& c : cases) {
    const std::string p = Write("bad.safetensors", MakeFile(c.header, Bytes(16, 0)));
    ExpectError(SafetensorsFile::Open(p), p, c.needle);
  }
}

}  // namespace
}  // namespace razor
