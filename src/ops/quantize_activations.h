// fp32 activations -> int8 blocks for the integer dot products of ops/matmul_fast*.
//
// ActQ8 (a Q8_1-like row with fp32 scales, our own layout, not a GGUF type): for a row of n elements,
// nb = n / 32 blocks, stored as
//   int8  qs[n]   q_i = round(x_i / d_b), |q_i| <= 127        (contiguous: one 32-byte load per block)
//   float d[nb]   d_b = max|x| over block b / 127             (0 for an all-zero block)
//   float s[nb]   s_b = d_b * sum_i q_i                         (the block-sum term of Q4_1/Q5_1 weights)
// so that x_i ~= d_b * q_i with error <= d_b / 2.
//
// BlockQ8_K rows (ggml's format, ops/quant_blocks.h) are what ggml pairs with K-quant weights.
#pragma once

#include <cstddef>
#include <cstdint>

#include "ops/quant_blocks.h"

namespace razor {

// Bytes of one ActQ8 row of n elements (n a multiple of 32): 32 + 8 bytes per block.
inline size_t ActQ8RowBytes(int64_t n) { return static_cast<size_t>(n / kQK) * (kQK + 8); }

// Read-only view of one ActQ8 row laid out as above.
struct ActQ8View {
  const int8_t* qs;  // [n]
  const float* d;    // [nb]
  const float* s;    // [nb]
};
inline ActQ8View ViewActQ8(const uint8_t* row, int64_t n) {
  const int64_t nb = n / kQK;
  return {reinterpret_cast<const int8_t*>(row), reinterpret_cast<const float*>(row + n),
          reinterpret_cast<const float*>(row + n) + nb};
}

// dst: ActQ8RowBytes(n) bytes, 4-byte aligned. Deterministic (same bytes on every ISA).
void QuantizeRowActQ8(const float* x, int64_t n, uint8_t* dst);

// dst: n / 256 blocks. As ggml's quantize_row_q8_K_ref: d = max|x| / 127 with the sign of the extreme
// value folded in, q = nearest(x / d), bsums over 16-element groups.
void QuantizeRowQ8_K(const float* x, int64_t n, BlockQ8_K* dst);

}  // namespace razor
