// Register-blocked AVX2 and AVX-512 kernels for one key block of AttendFlash's online softmax: prefill tiles of
// many query rows, and row kernels for decode tiles. Internal to ops/attention.cpp; the scalar /
// auto-vectorised twins live there.
//
// Layout: query rows are grouped in panels of kAttnRowPanel (16) rows; a panel's scores are stored key-major,
//   S[p * kAttnPanelFloats + j * kAttnRowPanel + lane]  for row r = p * 16 + lane, key j < kAttnKeyBlock,
// so the score kernel stores whole vectors and the softmax runs across 16 rows at once, key after key
// (each row still sums its keys in key order).
#pragma once

#include <cstdint>

namespace razor {

inline constexpr int kAttnKeyBlock = 64;  // keys per block
inline constexpr int kAttnRowPanel = 16;  // query rows per panel
inline constexpr int kAttnPanelFloats = kAttnKeyBlock * kAttnRowPanel;

// True when the CPU runs the AVX2 kernels below (AVX2 + FMA); the AVX-512 twins need AVX-512 F as well
// (the fast matmul's level, MatMulIsa() == "avx512", implies it).
bool AttentionBlocksAvailable();

// One panel: S[j * 16 + lane] = sum_i qt[i * 16 + lane] * k_j[i]  for j < nb.
//   qt: the panel's query rows, transposed and pre-scaled: [d][16], rows past the tile zero.
void BlockScoresAvx2(const float* qt, const float* const* k, int nb, int d, float* S);

// Per-row state of one panel for BlockSoftmaxAvx2 (16 lanes each).
struct AttnPanelRows {
  int32_t visible[kAttnRowPanel];  // keys [first, visible) of the whole head are seen by the row (0: padding row)
  int32_t first[kAttnRowPanel];    // 0 unless a sliding window hides the oldest keys
  int32_t qpos[kAttnRowPanel];     // the row's query position (ALiBi)
  float slope[kAttnRowPanel];      // the row's ALiBi slope (0 without ALiBi)
  float m[kAttnRowPanel];          // running max of the row's logits (-inf before any)
  float l[kAttnRowPanel];          // running sum of e^(logit - m)
};

// The online-softmax step of one panel over keys j0 .. j0 + nb: masks keys at or past `visible` and before
// `first`, subtracts
// the ALiBi distance slope * (qpos - key_pos[j]) when key_pos is given, raises the running max, turns S into
// P = e^(s - m) in place (0 for masked keys), updates l and writes corr[lane] = e^(m_old - m_new), the factor
// the row's accumulator must be scaled by before this block's P . V is added (exactly 1 when m is unchanged).
void BlockSoftmaxAvx2(float* S, int nb, int64_t j0, const int32_t* key_pos, AttnPanelRows* rows, float* corr);

// acc[r * d + i] += sum_{j < nb} P(r, j) * v_j[i]  for rows r < rows, i < d (d % 16 == 0), P in panel layout.
void BlockAccumulateAvx2(const float* P, int rows, int nb, const float* const* v, int d, float* acc);

// The same three on 512-bit vectors (ops/attention_blocks_avx512.cpp): the same numbers.
void BlockScoresAvx512(const float* qt, const float* const* k, int nb, int d, float* S);
void BlockSoftmaxAvx512(float* S, int nb, int64_t j0, const int32_t* key_pos, AttnPanelRows* rows, float* corr);
void BlockAccumulateAvx512(const float* P, int rows, int nb, const float* const* v, int d, float* acc);

// Decode tiles (fewer than 8 rows: one query token's group heads), in the plain loop's row-major score
// layout S[r * kAttnKeyBlock + j] (ops/attention.cpp), on 256-bit (AVX2 + FMA) or 512-bit vectors. Scores:
// per key a product vector over d, 8 / 16 keys' vectors summed lane-wise by one transpose-and-add tree, times
// scale (columns nb .. of a row are scratch). Accumulate: acc[r * d + i] += sum_{j < nb} S[r * kAttnKeyBlock + j]
// v_j[i]. Both need RowBlocksSupportDim(d).
inline constexpr int kRowBlocksMaxDim = 128;
inline bool RowBlocksSupportDim(int d) { return d % 16 == 0 && d <= kRowBlocksMaxDim; }
void RowScoresAvx2(const float* const* q, int rows, int d, const float* const* k, int nb, float scale, float* S);
void RowAccumulateAvx2(const float* P, int rows, int nb, const float* const* v, int d, float* acc);
void RowScoresAvx512(const float* const* q, int rows, int d, const float* const* k, int nb, float scale,
                     float* S);
void RowAccumulateAvx512(const float* P, int rows, int nb, const float* const* v, int d, float* acc);

// The same two row kernels over rows stored as f16 or bf16 bits (a half-precision KV pool's rows, read where
// they live): each element is widened to fp32 in the register, exactly, so they give the numbers the fp32
// kernels give on the widened rows. Need HalfRowKernelsAvailable() (AVX2 + FMA + F16C) for the AVX2 pair and
// the AVX-512 level for the other.
enum class HalfType { kF16, kBf16 };
bool HalfRowKernelsAvailable();
void RowScoresHalfAvx2(HalfType type, const float* const* q, int rows, int d, const uint16_t* const* k, int nb,
                       float scale, float* S);
void RowAccumulateHalfAvx2(HalfType type, const float* P, int rows, int nb, const uint16_t* const* v, int d,
                           float* acc);
void RowScoresHalfAvx512(HalfType type, const float* const* q, int rows, int d, const uint16_t* const* k, int nb,
                         float scale, float* S);
void RowAccumulateHalfAvx512(HalfType type, const float* P, int rows, int nb, const uint16_t* const* v, int d,
                             float* acc);

}  // namespace razor
