// GGUF / ggml block layouts (ggml-common.h), byte for byte. All scales are IEEE half (uint16_t bits)
// except Q8_K's fp32 d. Elements of a block are in file order; comments say which bits hold element i.
#pragma once

#include <cstdint>

namespace razor {

inline constexpr int kQK = 32;    // elements per legacy block (Q4_0 .. Q8_1)
inline constexpr int kQK_K = 256; // elements per K-quant super-block
inline constexpr int kKScaleBytes = 12;

struct BlockQ4_0 {  // x_i = d * (q_i - 8)
  uint16_t d;
  uint8_t qs[kQK / 2];  // element i < 16: low nibble of qs[i]; element i + 16: high nibble of qs[i]
};
struct BlockQ4_1 {  // x_i = d * q_i + m
  uint16_t d, m;
  uint8_t qs[kQK / 2];  // as Q4_0
};
struct BlockQ5_0 {  // x_i = d * (q_i - 16), q_i = nibble | (bit i of qh) << 4
  uint16_t d;
  uint8_t qh[4];  // little-endian uint32 of high bits, bit i for element i
  uint8_t qs[kQK / 2];
};
struct BlockQ5_1 {  // x_i = d * q_i + m
  uint16_t d, m;
  uint8_t qh[4];
  uint8_t qs[kQK / 2];
};
struct BlockQ8_0 {  // x_i = d * q_i
  uint16_t d;
  int8_t qs[kQK];
};
struct BlockQ8_1 {  // activations in ggml: s = d * sum(q_i)
  uint16_t d, s;
  int8_t qs[kQK];
};
// K-quants: 256 elements in 8 sub-blocks of 32 (Q4_K, Q5_K) or 16 sub-blocks of 16 (Q6_K).
struct BlockQ4_K {  // x = d * sc_j * q - dmin * m_j for sub-block j; 6-bit sc_j, m_j packed in scales
  uint16_t d, dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qs[kQK_K / 2];  // per 64 elements: 32 bytes, low nibbles = first 32, high nibbles = next 32
};
struct BlockQ5_K {  // as Q4_K with a 5th bit per element from qh
  uint16_t d, dmin;
  uint8_t scales[kKScaleBytes];
  uint8_t qh[kQK_K / 8];  // element 32*j + l: bit j of qh[l]
  uint8_t qs[kQK_K / 2];
};
struct BlockQ6_K {  // x = d * scales[g] * (q - 32), g = 16-element group
  uint8_t ql[kQK_K / 2];  // low 4 bits
  uint8_t qh[kQK_K / 4];  // high 2 bits
  int8_t scales[kQK_K / 16];
  uint16_t d;
};
struct BlockQ8_K {  // activations for K-quant dot products
  float d;
  int8_t qs[kQK_K];
  int16_t bsums[kQK_K / 16];  // sum of each 16 consecutive qs
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);

// The 6-bit scale and min of sub-block j (0..7) of a Q4_K / Q5_K super-block (ggml get_scale_min_k4).
inline void KScaleMin(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
  if (j < 4) {
    *sc = q[j] & 63;
    *m = q[j + 4] & 63;
  } else {
    *sc = static_cast<uint8_t>((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
    *m = static_cast<uint8_t>((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
  }
}

// All 8 scales and mins of a Q4_K / Q5_K super-block at once, as KScaleMin(j) gives them, through three
// 32-bit words (w0 = bytes 0..3, w1 = 4..7, w2 = 8..11):
//   sc[0..3] = w0 & 63              m[0..3] = w1 & 63
//   sc[4..7] = (w2 & 15) | (w0 >> 6) << 4     m[4..7] = (w2 >> 4) | (w1 >> 6) << 4   (per byte)
// out[0..7] = sc, out[8..15] = m. Little-endian words (x86-64, AArch64), like the GGUF files themselves.
inline void KScalesMins(const uint8_t* q, uint8_t out[16]) {
  uint32_t w[3], r[4];
  __builtin_memcpy(w, q, 12);
  r[0] = w[0] & 0x3F3F3F3Fu;
  r[1] = (w[2] & 0x0F0F0F0Fu) | (((w[0] >> 6) & 0x03030303u) << 4);
  r[2] = w[1] & 0x3F3F3F3Fu;
  r[3] = ((w[2] >> 4) & 0x0F0F0F0Fu) | (((w[1] >> 6) & 0x03030303u) << 4);
  __builtin_memcpy(out, r, 16);
}

}  // namespace razor
