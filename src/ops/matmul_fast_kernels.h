// Internal interface between the MatMulFast driver (matmul_fast.cpp: dispatch, threads, tiling) and the
// per-ISA tile kernels (matmul_fast_scalar.cpp, _avx2.cpp, _avx512.cpp). Not part of the public API.
//
// A tile kernel computes a block of y for nr consecutive weight rows and nt tokens:
//   y[t * y_stride + r] = dot(weight row r, activation row t)      r < nr, t < nt
// and loops internally over its register micro-tiles (e.g. 4 rows x 4 tokens), so one weight block,
// once unpacked into registers, is used for several tokens.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/tensor_type.h"

namespace razor {

enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q6_K weights x ActQ8 activations (ops/quantize_activations.h).
// Legacy blocks: writes sum_b (d_w[b] * d_x[b] * sum_i qw_i * qx_i + m_w[b] * s_x[b]) where qw is the
// signed quant (q - 8, q - 16, q) and m_w the min of Q4_1 / Q5_1 (0 for the others). K-quants: the same
// per 32-element chunk with the super-block's integer sub-block scales and mins (QuantRowK in
// matmul_fast_scalar.cpp spells it out).
//   w: first weight row, rows w_stride bytes apart; act: first ActQ8 row, act_stride bytes apart.
struct QuantTileArgs {
  TensorType type;
  int64_t nb;  // 32-element blocks per row
  const uint8_t* w;
  size_t w_stride;
  int nr;
  const uint8_t* act;
  size_t act_stride;
  int nt;
  float* y;
  int64_t y_stride;
};

// F32 F16 BF16 weights x fp32 activations; exact fp32 products, fp32 accumulation.
struct FloatTileArgs {
  TensorType type;
  int64_t cols;
  const uint8_t* w;
  size_t w_stride;
  int nr;
  const float* x;
  int64_t x_stride;  // floats
  int nt;
  float* y;
  int64_t y_stride;
};

// fp32-activation decode (MathMode::kFast, one token): y[r] = dot(weight row r, x) for r < nr, each
// legacy block unpacked to fp32 in registers (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0; other types: scalar fallback
// that dequantizes a row and dots it).
struct MatVecArgs {
  TensorType type;
  int64_t nb;  // 32-element blocks per row
  int64_t cols;
  const uint8_t* w;
  size_t w_stride;
  int nr;
  const float* x;  // [cols]
  float* y;        // [nr]
  const float* xs = nullptr;  // [nb] sums of x over its 32-element blocks (Q4_K mins), made once per product
};

// fp32-activation batched decode (a few tokens, either MathMode): y[t * y_stride + r] = dot(weight row r,
// token t) for r < nr, t < nt, each legacy block (Q4_0 Q4_1 Q5_0 Q5_1 Q8_0) dequantized in registers once
// for a micro-tile of tokens (matmul_fast_x86_multitoken.inc); the scalar level dequantizes a row and dots
// it with every token (any type).
struct MultiMatVecArgs {
  TensorType type;
  int64_t nb;  // 32-element blocks per row
  int64_t cols;
  const uint8_t* w;
  size_t w_stride;
  int nr;
  const float* x;    // [nt][x_stride]
  int64_t x_stride;  // floats
  int nt;
  float* y;          // [nt][y_stride]
  int64_t y_stride;  // floats
};

// fp32-activation prefill: nr weight rows dequantized to fp32, row r at out + r * out_stride
// (the same values as DequantizeRow). SIMD for the legacy types; K-quants use DequantizeRow.
struct DequantTileArgs {
  TensorType type;
  int64_t cols;
  const uint8_t* w;
  size_t w_stride;
  int nr;
  float* out;
  int64_t out_stride;  // floats
};

void QuantTileScalar(const QuantTileArgs& a);
void MatVecTileScalar(const MatVecArgs& a);
void MultiMatVecTileScalar(const MultiMatVecArgs& a);
void MultiMatVecTileAvx2(const MultiMatVecArgs& a);
void MultiMatVecTileAvx512(const MultiMatVecArgs& a);
void DequantTileScalar(const DequantTileArgs& a);
void MatVecTileAvx2(const MatVecArgs& a);
void DequantTileAvx2(const DequantTileArgs& a);
void MatVecTileAvx512(const MatVecArgs& a);
void DequantTileAvx512(const DequantTileArgs& a);
void FloatTileScalar(const FloatTileArgs& a);
void QuantTileAvx2(const QuantTileArgs& a);
void FloatTileAvx2(const FloatTileArgs& a);
void QuantTileAvx512(const QuantTileArgs& a);
void FloatTileAvx512(const FloatTileArgs& a);

}  // namespace razor

namespace razor {

// Prefill GEMM on fp32 weights with the activations packed in panels of kPanelTokens tokens:
//   xp[(p * cols + k) * kPanelTokens + t] = x[token p * kPanelTokens + t][k]   (tokens past n_tokens are 0)
//   y[t * y_stride + r] = dot(w row r, token t)                                r < nr, t < n_tokens
// so the micro-kernel broadcasts one weight and multiplies a whole vector of tokens (register-blocked
// outer products, no horizontal sums): 6 rows x 16 tokens on AVX2, 8 rows x 32 tokens on AVX-512.
inline constexpr int kPanelTokens = 16;
struct PanelTileArgs {
  int64_t cols;
  const float* w;
  int64_t w_stride;  // floats
  int nr;
  const float* xp;   // [ceil(n_tokens / kPanelTokens)][cols][kPanelTokens]
  int64_t n_tokens;
  float* y;
  int64_t y_stride;
};
void PanelTileAvx2(const PanelTileArgs& a);
void PanelTileAvx512(const PanelTileArgs& a);

}  // namespace razor
