// Scalar tile kernels: the portable fallback of MatMulFast and the plain-C++ twin of the SIMD kernels
// (same quantized-activation math, integer dot per block, one fp32 scale per block), and of the
// fp32-activation kernels (fused block dot for decode, row dequantization for prefill tiles).
#include <cstring>
#include <vector>

#include "ops/dequantize.h"

#include "core/fp16.h"
#include "ops/matmul_fast_kernels.h"
#include "ops/quant_blocks.h"
#include "ops/quantize_activations.h"

namespace razor {

namespace {

// Signed quants q[32] (in file element order), scale d and min m (Q4_1, Q5_1; else 0) of block b.
void UnpackBlock(TensorType type, const uint8_t* row, int64_t b, int8_t* q, float* d, float* m) {
  *m = 0.0f;
  auto nibbles = [&](const uint8_t* qs, int off, uint32_t qh) {
    for (int j = 0; j < kQK / 2; ++j) {
      q[j] = static_cast<int8_t>(((qs[j] & 0xF) | (((qh >> j) & 1) << 4)) - off);
      q[j + 16] = static_cast<int8_t>(((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - off);
    }
  };
  uint32_t qh;
  switch (type) {
    case TensorType::Q4_0: {
      const auto& blk = reinterpret_cast<const BlockQ4_0*>(row)[b];
      *d = HalfToFloat(blk.d);
      return nibbles(blk.qs, 8, 0);
    }
    case TensorType::Q4_1: {
      const auto& blk = reinterpret_cast<const BlockQ4_1*>(row)[b];
      *d = HalfToFloat(blk.d);
      *m = HalfToFloat(blk.m);
      return nibbles(blk.qs, 0, 0);
    }
    case TensorType::Q5_0: {
      const auto& blk = reinterpret_cast<const BlockQ5_0*>(row)[b];
      *d = HalfToFloat(blk.d);
      std::memcpy(&qh, blk.qh, 4);
      return nibbles(blk.qs, 16, qh);
    }
    case TensorType::Q5_1: {
      const auto& blk = reinterpret_cast<const BlockQ5_1*>(row)[b];
      *d = HalfToFloat(blk.d);
      *m = HalfToFloat(blk.m);
      std::memcpy(&qh, blk.qh, 4);
      return nibbles(blk.qs, 0, qh);
    }
    case TensorType::Q8_0: {
      const auto& blk = reinterpret_cast<const BlockQ8_0*>(row)[b];
      *d = HalfToFloat(blk.d);
      std::memcpy(q, blk.qs, kQK);
      return;
    }
    default: *d = 0; std::memset(q, 0, kQK); return;
  }
}

float LoadWeight(TensorType type, const uint8_t* row, int64_t k) {
  uint16_t h;
  switch (type) {
    case TensorType::F16: std::memcpy(&h, row + 2 * k, 2); return HalfToFloat(h);
    case TensorType::BF16: std::memcpy(&h, row + 2 * k, 2); return BfloatToFloat(h);
    default: {
      float f;
      std::memcpy(&f, row + 4 * k, 4);
      return f;
    }
  }
}

// K-quant row x one ActQ8 row, integer sums per 32-element chunk c (the SIMD kernels' math):
//   Q4_K: sum_c d sc_c d_x[c] (q . qx)_c - dmin m_c s_x[c]              q = 0..15
//   Q6_K: sum_c d d_x[c] (sc_2c (q - 32) . qx over the chunk's first 16 + sc_2c+1 ... over its last 16)
float QuantRowK(TensorType type, const uint8_t* row, int64_t nb, const ActQ8View& x) {
  float acc = 0.0f, macc = 0.0f;
  for (int64_t c = 0; c < nb; ++c) {
    const int64_t sb = c / 8;  // super-block
    const int j = static_cast<int>(c % 8);
    const int8_t* xq = x.qs + c * kQK;
    if (type == TensorType::Q4_K) {
      const auto& blk = reinterpret_cast<const BlockQ4_K*>(row)[sb];
      uint8_t sc, m;
      KScaleMin(j, blk.scales, &sc, &m);
      int32_t isum = 0;
      for (int l = 0; l < kQK; ++l) {  // sub-block j: nibble (j % 2) of bytes 32 (j / 2) ..
        const uint8_t byte = blk.qs[32 * (j / 2) + l];
        isum += (j % 2 == 0 ? byte & 0xF : byte >> 4) * xq[l];
      }
      acc += static_cast<float>(sc * isum) * (HalfToFloat(blk.d) * x.d[c]);
      macc += HalfToFloat(blk.dmin) * static_cast<float>(m) * x.s[c];
    } else {  // Q6_K: chunk j = run n (128 elements), chunk k of the run
      const auto& blk = reinterpret_cast<const BlockQ6_K*>(row)[sb];
      const int n = j / 4, k = j % 4;
      const uint8_t* ql = blk.ql + 64 * n + (k % 2) * 32;
      const uint8_t* qh = blk.qh + 32 * n;
      int32_t half[2] = {0, 0};
      for (int l = 0; l < kQK; ++l) {
        const int lo4 = k < 2 ? ql[l] & 0xF : ql[l] >> 4;
        const int q = lo4 | (((qh[l] >> (2 * k)) & 3) << 4);
        half[l / 16] += (q - 32) * xq[l];
      }
      const int8_t* sc = blk.scales + 8 * n + 2 * k;
      acc += static_cast<float>(sc[0] * half[0] + sc[1] * half[1]) * (HalfToFloat(blk.d) * x.d[c]);
    }
  }
  return acc - macc;
}

}  // namespace

void QuantTileScalar(const QuantTileArgs& a) {
  const int64_t n = a.nb * kQK;
  if (a.type == TensorType::Q4_K || a.type == TensorType::Q6_K) {
    for (int t = 0; t < a.nt; ++t) {
      const ActQ8View x = ViewActQ8(a.act + static_cast<size_t>(t) * a.act_stride, n);
      for (int r = 0; r < a.nr; ++r)
        a.y[t * a.y_stride + r] = QuantRowK(a.type, a.w + static_cast<size_t>(r) * a.w_stride, a.nb, x);
    }
    return;
  }
  for (int r = 0; r < a.nr; ++r) {
    const uint8_t* row = a.w + static_cast<size_t>(r) * a.w_stride;
    for (int t = 0; t < a.nt; ++t) {
      const ActQ8View x = ViewActQ8(a.act + static_cast<size_t>(t) * a.act_stride, n);
      float acc = 0.0f;
      for (int64_t b = 0; b < a.nb; ++b) {
        int8_t q[kQK];
        float d, m;
        UnpackBlock(a.type, row, b, q, &d, &m);
        int32_t isum = 0;
        for (int i = 0; i < kQK; ++i) isum += q[i] * x.qs[b * kQK + i];
        acc += static_cast<float>(isum) * (d * x.d[b]) + m * x.s[b];
      }
      a.y[t * a.y_stride + r] = acc;
    }
  }
}

void FloatTileScalar(const FloatTileArgs& a) {
  for (int r = 0; r < a.nr; ++r) {
    const uint8_t* row = a.w + static_cast<size_t>(r) * a.w_stride;
    for (int t = 0; t < a.nt; ++t) {
      const float* x = a.x + t * a.x_stride;
      float acc = 0.0f;
      for (int64_t k = 0; k < a.cols; ++k) acc += LoadWeight(a.type, row, k) * x[k];
      a.y[t * a.y_stride + r] = acc;
    }
  }
}

bool IsLegacyBlock(TensorType t) {
  return t == TensorType::Q4_0 || t == TensorType::Q4_1 || t == TensorType::Q5_0 || t == TensorType::Q5_1 ||
         t == TensorType::Q8_0;
}

void MatVecTileScalar(const MatVecArgs& a) {
  if (!IsLegacyBlock(a.type)) {
    thread_local std::vector<float> buf;  // [cols] one dequantized row
    buf.resize(static_cast<size_t>(a.cols));
    for (int r = 0; r < a.nr; ++r) {
      DequantizeRow(a.type, a.w + static_cast<size_t>(r) * a.w_stride, buf.data(), a.cols);
      float acc = 0.0f;
      for (int64_t k = 0; k < a.cols; ++k) acc += buf[k] * a.x[k];
      a.y[r] = acc;
    }
    return;
  }
  for (int r = 0; r < a.nr; ++r) {
    const uint8_t* row = a.w + static_cast<size_t>(r) * a.w_stride;
    float acc = 0.0f;
    for (int64_t b = 0; b < a.nb; ++b) {
      int8_t q[kQK];
      float d, m;
      UnpackBlock(a.type, row, b, q, &d, &m);
      const float* x = a.x + b * kQK;
      float s = 0.0f, xs = 0.0f;
      for (int i = 0; i < kQK; ++i) {
        s += static_cast<float>(q[i]) * x[i];
        xs += x[i];
      }
      acc += d * s + m * xs;
    }
    a.y[r] = acc;
  }
}

void MultiMatVecTileScalar(const MultiMatVecArgs& a) {
  thread_local std::vector<float> buf;  // [cols] one dequantized row
  buf.resize(static_cast<size_t>(a.cols));
  for (int r = 0; r < a.nr; ++r) {
    DequantizeRow(a.type, a.w + static_cast<size_t>(r) * a.w_stride, buf.data(), a.cols);
    for (int t = 0; t < a.nt; ++t) {
      const float* x = a.x + t * a.x_stride;
      float acc = 0.0f;
      for (int64_t k = 0; k < a.cols; ++k) acc += buf[k] * x[k];
      a.y[t * a.y_stride + r] = acc;
    }
  }
}

void DequantTileScalar(const DequantTileArgs& a) {
  for (int r = 0; r < a.nr; ++r)
    DequantizeRow(a.type, a.w + static_cast<size_t>(r) * a.w_stride, a.out + r * a.out_stride, a.cols);
}

}  // namespace razor
