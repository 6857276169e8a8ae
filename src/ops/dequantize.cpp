// Scalar dequantization, the same arithmetic (and order of float operations) as ggml-quants.c's
// dequantize_row_*: results are bit-identical to ggml and to gguf-py (tests/dequantize_test.cpp).
#include "ops/dequantize.h"

#include <cassert>
#include <cstring>

#include "core/fp16.h"
#include "ops/quant_blocks.h"
#include "ops/simd_dispatch.h"

namespace razor {

float Fp16ToFp32(uint16_t h) { return HalfToFloat(h); }
uint16_t Fp32ToFp16(float f) { return FloatToHalf(f); }
float Bf16ToFp32(uint16_t h) { return BfloatToFloat(h); }

namespace {

template <class Block>
const Block* Blocks(const void* src) {
  return static_cast<const Block*>(src);
}

uint32_t LoadU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}

void DequantQ4_0(const BlockQ4_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = HalfToFloat(b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = static_cast<float>((b[i].qs[j] & 0x0F) - 8) * d;
      y[j + kQK / 2] = static_cast<float>((b[i].qs[j] >> 4) - 8) * d;
    }
  }
}

void DequantQ4_1(const BlockQ4_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = HalfToFloat(b[i].d), m = HalfToFloat(b[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[j] = static_cast<float>(b[i].qs[j] & 0x0F) * d + m;
      y[j + kQK / 2] = static_cast<float>(b[i].qs[j] >> 4) * d + m;
    }
  }
}

void DequantQ5_0(const BlockQ5_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = HalfToFloat(b[i].d);
    const uint32_t qh = LoadU32(b[i].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
      y[j] = static_cast<float>(((b[i].qs[j] & 0x0F) | h0) - 16) * d;
      y[j + kQK / 2] = static_cast<float>(((b[i].qs[j] >> 4) | h1) - 16) * d;
    }
  }
}

void DequantQ5_1(const BlockQ5_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = HalfToFloat(b[i].d), m = HalfToFloat(b[i].m);
    const uint32_t qh = LoadU32(b[i].qh);
    for (int j = 0; j < kQK / 2; ++j) {
      const int h0 = ((qh >> j) << 4) & 0x10, h1 = (qh >> (j + 12)) & 0x10;
      y[j] = static_cast<float>((b[i].qs[j] & 0x0F) | h0) * d + m;
      y[j + kQK / 2] = static_cast<float>((b[i].qs[j] >> 4) | h1) * d + m;
    }
  }
}

void DequantQ8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, y += kQK) {
    const float d = HalfToFloat(b[i].d);
    for (int j = 0; j < kQK; ++j) y[j] = static_cast<float>(b[i].qs[j]) * d;
  }
}

// K-quants: the same float operations as ggml, arranged so that every inner loop has one scale (GCC
// vectorises them; compiled per ISA by RAZOR_VECTOR_CLONES, with fp contraction off for this file, so
// each clone rounds exactly like the scalar code: see CMakeLists.txt).
RAZOR_VECTOR_CLONES void DequantQ4_K(const BlockQ4_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = HalfToFloat(b[i].d), dmin = HalfToFloat(b[i].dmin);
    const uint8_t* q = b[i].qs;
    uint8_t scm[16];  // 8 scales, then 8 mins
    KScalesMins(b[i].scales, scm);
    for (int j = 0; j < kQK_K / 64; ++j, q += 32, y += 64) {
      const float d1 = d * scm[2 * j], m1 = dmin * scm[8 + 2 * j];
      const float d2 = d * scm[2 * j + 1], m2 = dmin * scm[8 + 2 * j + 1];
      for (int l = 0; l < 32; ++l) y[l] = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) y[32 + l] = d2 * static_cast<float>(q[l] >> 4) - m2;
    }
  }
}

RAZOR_VECTOR_CLONES void DequantQ5_K(const BlockQ5_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = HalfToFloat(b[i].d), dmin = HalfToFloat(b[i].dmin);
    const uint8_t* ql = b[i].qs;
    const uint8_t* qh = b[i].qh;
    int shift = 0;
    uint8_t scm[16];  // 8 scales, then 8 mins
    KScalesMins(b[i].scales, scm);
    for (int j = 0; j < kQK_K / 64; ++j, ql += 32, shift += 2, y += 64) {
      const float d1 = d * scm[2 * j], m1 = dmin * scm[8 + 2 * j];
      const float d2 = d * scm[2 * j + 1], m2 = dmin * scm[8 + 2 * j + 1];
      for (int l = 0; l < 32; ++l)
        y[l] = d1 * static_cast<float>((ql[l] & 0xF) | (((qh[l] >> shift) & 1) << 4)) - m1;
      for (int l = 0; l < 32; ++l)
        y[32 + l] = d2 * static_cast<float>((ql[l] >> 4) | (((qh[l] >> (shift + 1)) & 1) << 4)) - m2;
    }
  }
}

RAZOR_VECTOR_CLONES void DequantQ6_K(const BlockQ6_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = HalfToFloat(b[i].d);
    const uint8_t* ql = b[i].ql;
    const uint8_t* qh = b[i].qh;
    const int8_t* sc = b[i].scales;
    for (int n = 0; n < kQK_K; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
      // Element l + 32 k (k = 0..3) of this 128-run has scale sc[l / 16 + 2 k]: one scale per 16-run.
      for (int h = 0; h < 2; ++h) {
        const int o = 16 * h;
        const float s1 = d * sc[h + 0], s2 = d * sc[h + 2], s3 = d * sc[h + 4], s4 = d * sc[h + 6];
        for (int l = o; l < o + 16; ++l) {
          y[l + 0] = s1 * static_cast<float>(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
          y[l + 32] = s2 * static_cast<float>(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
          y[l + 64] = s3 * static_cast<float>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
          y[l + 96] = s4 * static_cast<float>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
      }
    }
  }
}

}  // namespace

void DequantizeRow(TensorType type, const void* src, float* dst, int64_t n) {
  const uint8_t* p = static_cast<const uint8_t*>(src);
  switch (type) {
    case TensorType::F32:
      std::memcpy(dst, src, static_cast<size_t>(n) * 4);
      return;
    case TensorType::F16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        dst[i] = HalfToFloat(h);
      }
      return;
    case TensorType::BF16:
      for (int64_t i = 0; i < n; ++i) {
        uint16_t h;
        std::memcpy(&h, p + 2 * i, 2);
        dst[i] = BfloatToFloat(h);
      }
      return;
    case TensorType::Q4_0: return DequantQ4_0(Blocks<BlockQ4_0>(src), dst, n / kQK);
    case TensorType::Q4_1: return DequantQ4_1(Blocks<BlockQ4_1>(src), dst, n / kQK);
    case TensorType::Q5_0: return DequantQ5_0(Blocks<BlockQ5_0>(src), dst, n / kQK);
    case TensorType::Q5_1: return DequantQ5_1(Blocks<BlockQ5_1>(src), dst, n / kQK);
    case TensorType::Q8_0: return DequantQ8_0(Blocks<BlockQ8_0>(src), dst, n / kQK);
    case TensorType::Q4_K: return DequantQ4_K(Blocks<BlockQ4_K>(src), dst, n / kQK_K);
    case TensorType::Q5_K: return DequantQ5_K(Blocks<BlockQ5_K>(src), dst, n / kQK_K);
    case TensorType::Q6_K: return DequantQ6_K(Blocks<BlockQ6_K>(src), dst, n / kQK_K);
    default: assert(false && "DequantizeRow: unsupported type"); return;
  }
}

}  // namespace razor
