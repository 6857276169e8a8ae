// The panel GEMM micro-kernel of matmul_fast_kernels.h for AVX2 + FMA (also used on AVX-512 machines):
// 6 weight rows x 16 tokens = 12 ymm accumulators; per element k, 2 loads of the token panel and 6 weight
// broadcasts feed 12 FMAs. fp32 products, fp32 sums over k in order (the exact path's numbers up to
// summation order).
#include "ops/matmul_fast_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

namespace razor {
namespace {

static_assert(kPanelTokens == 16, "the micro-kernel holds a panel in two ymm registers");

// Named accumulators (GCC keeps an array of __m256 on the stack and stores it every iteration).
template <int R>
void PanelMicro(const PanelTileArgs& a, int r0) {
  static_assert(R >= 1 && R <= 6);
  const __m256 z = _mm256_setzero_ps();
  __m256 c00 = z, c01 = z, c10 = z, c11 = z, c20 = z, c21 = z, c30 = z, c31 = z, c40 = z, c41 = z, c50 = z,
         c51 = z;
  const float* w0 = a.w + static_cast<int64_t>(r0) * a.w_stride;
  const float* w1 = w0 + (R > 1 ? a.w_stride : 0);
  const float* w2 = w0 + (R > 2 ? 2 * a.w_stride : 0);
  const float* w3 = w0 + (R > 3 ? 3 * a.w_stride : 0);
  const float* w4 = w0 + (R > 4 ? 4 * a.w_stride : 0);
  const float* w5 = w0 + (R > 5 ? 5 * a.w_stride : 0);
  const float* xp = a.xp;
  for (int64_t k = 0; k < a.cols; ++k, xp += kPanelTokens) {
    const __m256 x0 = _mm256_loadu_ps(xp), x1 = _mm256_loadu_ps(xp + 8);
    __m256 b = _mm256_broadcast_ss(w0 + k);
    c00 = _mm256_fmadd_ps(b, x0, c00);
    c01 = _mm256_fmadd_ps(b, x1, c01);
    if constexpr (R > 1) {
      b = _mm256_broadcast_ss(w1 + k);
      c10 = _mm256_fmadd_ps(b, x0, c10);
      c11 = _mm256_fmadd_ps(b, x1, c11);
    }
    if constexpr (R > 2) {
      b = _mm256_broadcast_ss(w2 + k);
      c20 = _mm256_fmadd_ps(b, x0, c20);
      c21 = _mm256_fmadd_ps(b, x1, c21);
    }
    if constexpr (R > 3) {
      b = _mm256_broadcast_ss(w3 + k);
      c30 = _mm256_fmadd_ps(b, x0, c30);
      c31 = _mm256_fmadd_ps(b, x1, c31);
    }
    if constexpr (R > 4) {
      b = _mm256_broadcast_ss(w4 + k);
      c40 = _mm256_fmadd_ps(b, x0, c40);
      c41 = _mm256_fmadd_ps(b, x1, c41);
    }
    if constexpr (R > 5) {
      b = _mm256_broadcast_ss(w5 + k);
      c50 = _mm256_fmadd_ps(b, x0, c50);
      c51 = _mm256_fmadd_ps(b, x1, c51);
    }
  }
  alignas(32) float out[6][kPanelTokens];
  const __m256 c[6][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int r = 0; r < R; ++r) {
    _mm256_store_ps(out[r], c[r][0]);
    _mm256_store_ps(out[r] + 8, c[r][1]);
  }
  for (int t = 0; t < a.nt; ++t)
    for (int r = 0; r < R; ++r) a.y[t * a.y_stride + r0 + r] = out[r][t];
}

}  // namespace

void PanelTileAvx2(const PanelTileArgs& a) {
  int r = 0;
  for (; r + 6 <= a.nr; r += 6) PanelMicro<6>(a, r);
  switch (a.nr - r) {
    case 5: return PanelMicro<5>(a, r);
    case 4: return PanelMicro<4>(a, r);
    case 3: return PanelMicro<3>(a, r);
    case 2: return PanelMicro<2>(a, r);
    case 1: return PanelMicro<1>(a, r);
    default: return;
  }
}

}  // namespace razor

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else  // not x86-64: never selected by the dispatcher
namespace razor {
void PanelTileAvx2(const PanelTileArgs&) {}
}  // namespace razor
#endif
