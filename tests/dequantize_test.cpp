// DequantizeRow and the fp16/bf16 conversions against gguf-py's goldens (tests/fixtures/quant/*.rzqg,
// written by tests/golden_scripts/make_quant_goldens.py): bit-exact, element for element.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/tensor_type.h"
#include "ops/dequantize.h"
#include "ops/quant_blocks.h"

namespace razor {
namespace {

struct QuantGolden {
  uint32_t type_id = 0, n = 0;
  std::vector<uint8_t> data;     // encoded blocks
  std::vector<uint8_t> values;   // f32[n] (or u16[n] for F32_TO_F16)
};

// Reads one RZQG file (format in make_quant_goldens.py); fails the test on any size mismatch.
QuantGolden ReadGolden(const std::string& name, size_t value_bytes) {
  const std::string path = std::string(RAZOR_SOURCE_DIR) + "/tests/fixtures/quant/" + name + ".rzqg";
  std::ifstream f(path, std::ios::binary);
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  QuantGolden g;
  EXPECT_GE(bytes.size(), 20u) << path;
  if (bytes.size() < 20) return g;
  EXPECT_EQ(std::memcmp(bytes.data(), "RZQG", 4), 0) << path;
  uint32_t hdr[4];
  std::memcpy(hdr, bytes.data() + 4, 16);
  EXPECT_EQ(hdr[0], 1u);
  g.type_id = hdr[1];
  g.n = hdr[2];
  const size_t nbytes = hdr[3];
  EXPECT_EQ(bytes.size(), 20 + nbytes + value_bytes * g.n) << path;
  if (bytes.size() != 20 + nbytes + value_bytes * g.n) return g;
  g.data.assign(bytes.begin() + 20, bytes.begin() + 20 + static_cast<long>(nbytes));
  g.values.assign(bytes.begin() + 20 + static_cast<long>(nbytes), bytes.end());
  return g;
}

class DequantizeGolden : public ::testing::TestWithParam<const char*> {};

TEST_P(DequantizeGolden, BitExactAgainstGgufPy) {
  const QuantGolden g = ReadGolden(GetParam(), 4);
  ASSERT_GT(g.n, 0u);
  const auto type = static_cast<TensorType>(g.type_id);
  ASSERT_EQ(RowBytes(type, g.n), g.data.size());
  std::vector<float> got(g.n);
  DequantizeRow(type, g.data.data(), got.data(), g.n);
  int bad = 0;
  for (uint32_t i = 0; i < g.n && bad < 10; ++i) {
    uint32_t want_bits, got_bits;
    std::memcpy(&want_bits, g.values.data() + 4 * i, 4);
    std::memcpy(&got_bits, &got[i], 4);
    if (want_bits != got_bits) {
      float want;
      std::memcpy(&want, &want_bits, 4);
      ADD_FAILURE() << GetParam() << " element " << i << ": got " << got[i] << " want " << want;
      ++bad;
    }
  }
  // Dequantizing a sub-range of whole blocks gives the same values (rows are independent of offset).
  const int be = BlockElems(type);
  const size_t bb = RowBytes(type, be);
  std::vector<float> part(be);
  DequantizeRow(type, g.data.data() + bb, part.data(), be);
  EXPECT_EQ(std::memcmp(part.data(), got.data() + be, 4 * static_cast<size_t>(be)), 0);
}

INSTANTIATE_TEST_SUITE_P(Dequantize, DequantizeGolden,
                         ::testing::Values("F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K", "Q5_K",
                                           "Q6_K"),
                         [](const auto& info) { return std::string(info.param); });

TEST(DequantizeFp16, Fp32ToFp16MatchesNumpyRounding) {
  const QuantGolden g = ReadGolden("F32_TO_F16", 2);
  ASSERT_GT(g.n, 0u);
  for (uint32_t i = 0; i < g.n; ++i) {
    float f;
    uint16_t want;
    std::memcpy(&f, g.data.data() + 4 * i, 4);
    std::memcpy(&want, g.values.data() + 2 * i, 2);
    ASSERT_EQ(Fp32ToFp16(f), want) << "element " << i << " value " << f;
  }
}

TEST(DequantizeFp16, EveryHalfRoundTrips) {
  for (uint32_t h = 0; h < 65536; ++h) {
    const bool nan = (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0;
    const float f = Fp16ToFp32(static_cast<uint16_t>(h));
    if (nan) {
      EXPECT_NE(f, f);
      continue;
    }
    ASSERT_EQ(Fp32ToFp16(f), h) << "half 0x" << std::hex << h;
  }
  EXPECT_EQ(Fp16ToFp32(0x3C00), 1.0f);
  EXPECT_EQ(Fp16ToFp32(0x0001), 5.9604644775390625e-8f);
  EXPECT_EQ(Bf16ToFp32(0x3F80), 1.0f);
}

// KScalesMins (all 16 values through 32-bit words, used by the decode kernels) against KScaleMin (one
// sub-block at a time, ggml's get_scale_min_k4), on random scale bytes and on the all-ones pattern.
TEST(DequantizeKScales, WordTrickMatchesPerSubBlockUnpack) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 2000; ++trial) {
    uint8_t scales[kKScaleBytes];
    for (auto& b : scales) b = trial == 0 ? 0xFF : static_cast<uint8_t>(rng());
    uint8_t all[16];
    KScalesMins(scales, all);
    for (int j = 0; j < 8; ++j) {
      uint8_t sc, m;
      KScaleMin(j, scales, &sc, &m);
      ASSERT_EQ(all[j], sc) << "trial " << trial << " scale " << j;
      ASSERT_EQ(all[8 + j], m) << "trial " << trial << " min " << j;
    }
  }
}

}  // namespace
}  // namespace razor
