// MatMulReference against a double-precision dot on dequantized rows, and the fast modes (kFast, kInt8;
// every ISA level the CPU has) against MatMulReference on random weights of every supported type at
// several shapes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/tensor_type.h"
#include "core/tensor_view.h"
#include "core/thread_pool.h"
#include "ops/dequantize.h"
#include "ops/matmul.h"
#include "ops/matmul_fast_kernels.h"
#include "ops/quantize_activations.h"
#include "simd_levels_for_tests.h"

namespace razor {
namespace {

// Byte offsets of the fp16 scale / min fields inside one block (random bytes elsewhere are all legal).
std::vector<int> ScaleOffsets(TensorType t) {
  switch (t) {
    case TensorType::Q4_0: case TensorType::Q5_0: case TensorType::Q8_0: return {0};
    case TensorType::Q4_1: case TensorType::Q5_1: case TensorType::Q4_K: case TensorType::Q5_K: return {0, 2};
    case TensorType::Q6_K: return {208};
    default: return {};
  }
}

// A weight matrix [rows, cols] of `type` with random content and sane scales, plus its TensorView.
struct RandomWeights {
  std::vector<uint8_t> bytes;
  TensorView view;
};

RandomWeights MakeWeights(TensorType type, int64_t rows, int64_t cols, std::mt19937& rng) {
  RandomWeights w;
  w.bytes.resize(RowBytes(type, cols) * static_cast<size_t>(rows));
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_real_distribution<float> scale(0.002f, 0.05f);
  auto put16 = [&](size_t off, uint16_t v) { std::memcpy(w.bytes.data() + off, &v, 2); };
  if (type == TensorType::F32) {
    for (size_t i = 0; i < w.bytes.size() / 4; ++i) {
      const float f = normal(rng);
      std::memcpy(w.bytes.data() + 4 * i, &f, 4);
    }
  } else if (type == TensorType::F16 || type == TensorType::BF16) {
    for (size_t i = 0; i < w.bytes.size() / 2; ++i) {
      const float f = normal(rng);
      uint32_t u;
      std::memcpy(&u, &f, 4);
      put16(2 * i, type == TensorType::F16 ? Fp32ToFp16(f) : static_cast<uint16_t>(u >> 16));
    }
  } else {
    for (auto& b : w.bytes) b = static_cast<uint8_t>(byte(rng));
    const size_t bb = RowBytes(type, BlockElems(type));
    for (size_t blk = 0; blk < w.bytes.size() / bb; ++blk)
      for (int off : ScaleOffsets(type)) put16(blk * bb + off, Fp32ToFp16((byte(rng) & 1 ? -1 : 1) * scale(rng)));
  }
  w.view.name = "w";
  w.view.type = type;
  w.view.shape = {cols, rows};
  w.view.data = w.bytes.data();
  w.view.nbytes = w.bytes.size();
  return w;
}

std::vector<float> RandomActivations(int64_t n, std::mt19937& rng) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(static_cast<size_t>(n));
  for (auto& v : x) v = normal(rng);
  return x;
}

// scale[t * rows + r] = sum_k |w[r][k] * x[t][k]| (the size an error should be measured against) and
// exact[t * rows + r] = the same dot in double.
void DoubleDots(const TensorView& w, const std::vector<float>& x, int64_t n_tokens, std::vector<double>* exact,
                std::vector<double>* scale) {
  const int64_t rows = w.rows(), cols = w.cols();
  exact->assign(static_cast<size_t>(rows * n_tokens), 0.0);
  scale->assign(static_cast<size_t>(rows * n_tokens), 0.0);
  std::vector<float> wr(static_cast<size_t>(cols));
  for (int64_t r = 0; r < rows; ++r) {
    DequantizeRow(w.type, w.row(r), wr.data(), cols);
    for (int64_t t = 0; t < n_tokens; ++t) {
      double s = 0, a = 0;
      for (int64_t k = 0; k < cols; ++k) {
        const double p = static_cast<double>(wr[k]) * x[t * cols + k];
        s += p;
        a += std::fabs(p);
      }
      (*exact)[t * rows + r] = s;
      (*scale)[t * rows + r] = a;
    }
  }
}

const TensorType kAllTypes[] = {TensorType::F32,  TensorType::F16,  TensorType::BF16, TensorType::Q4_0,
                                TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0,
                                TensorType::Q4_K, TensorType::Q5_K, TensorType::Q6_K};

bool IsQuantized(TensorType t) { return BlockElems(t) > 1; }

// Rounds cols up to the block size (K-quants need multiples of 256).
int64_t FitCols(TensorType t, int64_t cols) {
  const int64_t b = BlockElems(t);
  return (cols + b - 1) / b * b;
}

TEST(MatMulReference, MatchesDoubleDotOnDequantizedRows) {
  ThreadPool pool(2);
  std::mt19937 rng(1);
  for (TensorType type : kAllTypes) {
    const int64_t rows = 37, cols = FitCols(type, 512), n_tokens = 3;
    const RandomWeights w = MakeWeights(type, rows, cols, rng);
    const std::vector<float> x = RandomActivations(n_tokens * cols, rng);
    std::vector<float> y(static_cast<size_t>(rows * n_tokens));
    MatMulReference(w.view, x.data(), n_tokens, y.data(), pool);
    std::vector<double> exact, scale;
    DoubleDots(w.view, x, n_tokens, &exact, &scale);
    for (size_t i = 0; i < y.size(); ++i)
      ASSERT_LE(std::fabs(y[i] - exact[i]), 1e-5 * scale[i] + 1e-30) << TensorTypeName(type) << " output " << i;
  }
}

struct Shape {
  int64_t rows, cols, n_tokens;
};

// Covers rows 1 5 7 9 19 23 37 64 70 130 300 576 1536, cols 32..1536 (odd block counts too), tokens 1 2 5 17
// 64 and a prefill crossing token blocks; batched decode (2-12 tokens, MultiMatVecPath: 2 3 4 5 6 7 8 9 10
// 12) with whole micro-tiles of tokens and every remainder of the 4- (AVX-512) and 8-token (AVX2) ones, rows
// not a multiple of 4, and 13 tokens (just past it, DequantTilePath).
const Shape kShapes[] = {{1, 32, 1},     {7, 64, 2},     {64, 96, 5},     {576, 576, 17}, {1536, 256, 64},
                         {7, 1536, 64},  {64, 1536, 1},  {576, 1536, 1},  {1536, 576, 2}, {1, 1536, 17},
                         {64, 512, 130}, {576, 128, 5},  {1536, 1536, 1}, {19, 320, 67},  {19, 96, 1},
                         {37, 160, 4},   {70, 320, 7},   {19, 576, 12},   {5, 96, 13},    {130, 64, 3},
                         {9, 256, 9},    {300, 576, 8},  {23, 96, 6},     {41, 128, 10}};

using testing::SupportedIsas;

class MatMulFastVsReference : public ::testing::TestWithParam<TensorType> {};

// Both fast modes, every ISA level the CPU has, every shape (decode and prefill, ragged tiles).
//   kFast (fp32 activations): the exact path's numbers up to summation order: 1e-5 of sum|w x|.
//   kInt8 (Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q6_K decode meets int8 activations, error <= max|x|/254 per element):
//   1e-2; its other products take the fp32 paths: within the same bound, and 1e-5 for float weights and Q5_K.
TEST_P(MatMulFastVsReference, EveryIsaEveryShape) {
  const TensorType type = GetParam();
  const std::string best = MatMulIsa();
  const std::vector<std::string> isas = SupportedIsas();
  ASSERT_FALSE(isas.empty());
  ThreadPool pool(2);
  std::mt19937 rng(100 + static_cast<int>(type));
  const bool int8_quant = IsQuantized(type) && type != TensorType::Q5_K;
  for (MathMode mode : {MathMode::kFast, MathMode::kInt8}) {
    const char* mode_name = mode == MathMode::kFast ? "fast" : "int8";
    const double tol = mode == MathMode::kInt8 && int8_quant ? 1e-2 : 1e-5;
    std::vector<double> worst_per_isa(isas.size(), 0.0);
    for (const Shape& s : kShapes) {
      const int64_t cols = FitCols(type, s.cols);
      const RandomWeights w = MakeWeights(type, s.rows, cols, rng);
      const std::vector<float> x = RandomActivations(s.n_tokens * cols, rng);
      std::vector<float> ref(static_cast<size_t>(s.rows * s.n_tokens));
      MatMulReference(w.view, x.data(), s.n_tokens, ref.data(), pool);
      std::vector<double> exact, scale;
      DoubleDots(w.view, x, s.n_tokens, &exact, &scale);
      std::vector<float> scalar_fast;  // isas[0] is "scalar"
      for (size_t li = 0; li < isas.size(); ++li) {
        const std::string& isa = isas[li];
        ASSERT_TRUE(SetMatMulIsa(isa.c_str()));
        std::vector<float> got(ref.size(), std::nanf(""));
        MatMul(mode, w.view, x.data(), s.n_tokens, got.data(), pool);
        double worst = 0;
        for (size_t i = 0; i < ref.size(); ++i) {
          const double rel = std::fabs(static_cast<double>(got[i]) - ref[i]) / (scale[i] + 1e-30);
          worst = std::max(worst, std::isnan(rel) ? 1e30 : rel);
        }
        worst_per_isa[li] = std::max(worst_per_isa[li], worst);
        // SIMD levels do the same math as the scalar twin, in another order: under kInt8 a wrong
        // element would hide under the 1e-2 quantization bound, not under this one.
        if (li == 0) {
          scalar_fast = got;
        } else {
          double worst_vs_scalar = 0;
          for (size_t i = 0; i < got.size(); ++i)
            worst_vs_scalar = std::max(worst_vs_scalar, std::fabs(static_cast<double>(got[i]) - scalar_fast[i]) /
                                                            (scale[i] + 1e-30));
          EXPECT_LE(worst_vs_scalar, 1e-5) << TensorTypeName(type) << " " << mode_name << " " << isa
                                           << " vs scalar, rows " << s.rows << " cols " << cols << " tokens "
                                           << s.n_tokens;
        }
        EXPECT_LE(worst, tol) << TensorTypeName(type) << " " << mode_name << " " << isa << " rows " << s.rows
                              << " cols " << cols << " tokens " << s.n_tokens;
      }
    }
    for (size_t li = 0; li < isas.size(); ++li)
      std::printf("  %-5s %s %-6s worst |fast-ref| / sum|w*x| = %.2e (bound %.0e)\n", TensorTypeName(type),
                  mode_name, isas[li].c_str(), worst_per_isa[li], tol);
  }
  SetMatMulIsa(best.c_str());
}

INSTANTIATE_TEST_SUITE_P(MatMul, MatMulFastVsReference, ::testing::ValuesIn(kAllTypes),
                         [](const auto& info) { return std::string(TensorTypeName(info.param)); });

TEST(MatMulFast, SameBitsForAnyThreadCount) {
  std::mt19937 rng(7);
  for (TensorType type :
       {TensorType::Q4_1, TensorType::Q5_0, TensorType::Q8_0, TensorType::F16, TensorType::Q6_K,
        TensorType::Q4_K}) {
    const int64_t rows = 301, cols = FitCols(type, 256), n_tokens = 70;
    const RandomWeights w = MakeWeights(type, rows, cols, rng);
    const std::vector<float> x = RandomActivations(n_tokens * cols, rng);
    std::vector<float> y1(static_cast<size_t>(rows * n_tokens)), y3(y1.size());
    ThreadPool one(1), three(3);
    for (MathMode mode : {MathMode::kFast, MathMode::kInt8})
      for (int64_t nt : {int64_t{1}, int64_t{6}, n_tokens}) {
        MatMul(mode, w.view, x.data(), nt, y1.data(), one);
        MatMul(mode, w.view, x.data(), nt, y3.data(), three);
        EXPECT_EQ(std::memcmp(y1.data(), y3.data(), 4 * rows * nt), 0)
            << TensorTypeName(type) << (mode == MathMode::kFast ? " fast" : " int8") << " tokens " << nt;
      }
  }
}

TEST(MatMulFast, IsaNames) {
  const std::string best = MatMulIsa();
  EXPECT_TRUE(best == "scalar" || best == "avx2" || best == "avx512");
  EXPECT_TRUE(SetMatMulIsa("scalar"));
  EXPECT_STREQ(MatMulIsa(), "scalar");
  EXPECT_FALSE(SetMatMulIsa("sse9"));
  EXPECT_STREQ(MatMulIsa(), "scalar");
  EXPECT_TRUE(SetMatMulIsa(best.c_str()));
}

TEST(MatMulActivations, ActQ8RoundTrip) {
  std::mt19937 rng(3);
  const int64_t n = 256;
  std::vector<float> x = RandomActivations(n, rng);
  for (int i = 64; i < 96; ++i) x[i] = 0.0f;  // an all-zero block
  std::vector<uint8_t> buf(ActQ8RowBytes(n));
  QuantizeRowActQ8(x.data(), n, buf.data());
  const ActQ8View v = ViewActQ8(buf.data(), n);
  for (int64_t b = 0; b < n / 32; ++b) {
    int sum = 0;
    for (int i = 0; i < 32; ++i) {
      const int64_t k = b * 32 + i;
      ASSERT_LE(std::abs(static_cast<int>(v.qs[k])), 127);
      EXPECT_LE(std::fabs(x[k] - v.d[b] * v.qs[k]), 0.5001f * v.d[b] + 1e-30f) << k;
      sum += v.qs[k];
    }
    EXPECT_EQ(v.s[b], v.d[b] * static_cast<float>(sum));
  }
  EXPECT_EQ(v.d[2], 0.0f);
}

TEST(MatMulActivations, Q8_KRoundTrip) {
  std::mt19937 rng(4);
  const int64_t n = 512;
  const std::vector<float> x = RandomActivations(n, rng);
  std::vector<BlockQ8_K> q(n / 256);
  QuantizeRowQ8_K(x.data(), n, q.data());
  for (int64_t b = 0; b < n / 256; ++b) {
    for (int i = 0; i < 256; ++i)
      EXPECT_LE(std::fabs(x[b * 256 + i] - q[b].d * q[b].qs[i]), 0.5001f * std::fabs(q[b].d));
    for (int g = 0; g < 16; ++g) {
      int s = 0;
      for (int i = 0; i < 16; ++i) s += q[b].qs[g * 16 + i];
      EXPECT_EQ(q[b].bsums[g], s);
    }
  }
}

// The SIMD dequantization of a tile of rows (prefill's DequantTilePath; on AVX-512 a table of the block's
// 16 or 32 dequantized values indexed by the nibbles) gives DequantizeRow's values bit for bit.
TEST(MatMulFp32Act, DequantizedTilesAreDequantizeRowBitForBit) {
  std::mt19937 rng(33);
  const std::vector<std::string> isas = SupportedIsas();
  for (TensorType type : {TensorType::Q4_0, TensorType::Q4_1, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q8_0}) {
    const int64_t rows = 6, cols = 320;
    const RandomWeights w = MakeWeights(type, rows, cols, rng);
    std::vector<float> want(static_cast<size_t>(rows * cols));
    for (int64_t r = 0; r < rows; ++r) DequantizeRow(type, w.view.row(r), want.data() + r * cols, cols);
    for (const std::string& isa : isas) {
      void (*tile)(const DequantTileArgs&) = isa == "avx512" ? DequantTileAvx512
                                             : isa == "avx2" ? DequantTileAvx2
                                                             : DequantTileScalar;
      std::vector<float> got(want.size(), std::nanf(""));
      tile(DequantTileArgs{type, cols, w.view.row(0), w.view.row_bytes(), static_cast<int>(rows), got.data(), cols});
      EXPECT_EQ(std::memcmp(got.data(), want.data(), 4 * want.size()), 0) << TensorTypeName(type) << " " << isa;
    }
  }
}

// The default fast path (fp32 activations): every type, every ISA, matrix-vector and prefill shapes,
// within 1e-5 of sum|w*x| of the double-precision dot (no activation quantization error allowed).
TEST(MatMulFp32Act, MatchesDoubleDotForEveryTypeAndIsa) {
  std::mt19937 rng(21);
  const std::vector<std::string> isas = {"scalar", "avx2", "avx512"};
  for (TensorType type : kAllTypes) {
    for (int64_t rows : {1, 7, 64}) {
      for (int64_t cols0 : {32, 96, 576}) {
        const int64_t cols = FitCols(type, cols0);
        RandomWeights w = MakeWeights(type, rows, cols, rng);
        for (int64_t n_tokens : {1, 2, 4, 11, 17, 70}) {
          const std::vector<float> x = RandomActivations(n_tokens * cols, rng);
          std::vector<double> exact, scale;
          DoubleDots(w.view, x, n_tokens, &exact, &scale);
          for (const auto& isa : isas) {
            if (!SetMatMulIsa(isa.c_str())) continue;
            ThreadPool pool(2);
            std::vector<float> got(static_cast<size_t>(rows * n_tokens));
            MatMul(MathMode::kFast, w.view, x.data(), n_tokens, got.data(), pool);
            for (size_t i = 0; i < got.size(); ++i)
              ASSERT_LE(std::fabs(got[i] - exact[i]), 1e-5 * scale[i] + 1e-30)
                  << TensorTypeName(type) << " isa=" << isa << " rows=" << rows << " cols=" << cols
                  << " tokens=" << n_tokens << " i=" << i;
          }
          SetMatMulIsa(MatMulIsa());
        }
      }
    }
  }
  SetMatMulIsa("avx512") || SetMatMulIsa("avx2");
}

}  // namespace
}  // namespace razor
