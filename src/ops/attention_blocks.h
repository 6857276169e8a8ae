// Register-blocked AVX2 kernels for the two products inside AttendFlash's key-block loop (prefill
// tiles of many query rows). Internal to ops/attention.cpp; scalar / auto-vectorised twins live there.
#pragma once

#include <cstdint>

namespace razor {

inline constexpr int kAttnKeyBlock = 64;  // keys per block (columns of S)
inline constexpr int kAttnRowPanel = 16;  // query rows per packed panel

// True when the CPU runs the kernels below (AVX2 + FMA).
bool AttentionBlocksAvailable();

// S[r * kAttnKeyBlock + j] = sum_i qt[i * kAttnRowPanel + r] * k_j[i]  for r < rows (<= 16), j < nb.
//   qt: one panel of query rows, transposed and pre-scaled: [d][kAttnRowPanel], rows past `rows` zero.
void BlockScoresAvx2(const float* qt, int rows, const float* const* k, int nb, int d, float* S);

// x[i] = e^(x[i] - m) for i < n, as ExpShiftedInPlace (ops/elementwise.h) but 8 lanes per step.
void ExpShiftedAvx2(float* x, float m, int n);

// acc[r * d + i] += sum_{j < nb} P[r * kAttnKeyBlock + j] * v_j[i]  for r < rows, i < d (d % 16 == 0).
void BlockAccumulateAvx2(const float* P, int rows, int nb, const float* const* v, int d, float* acc);

}  // namespace razor
