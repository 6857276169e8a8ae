// The panel GEMM micro-kernel of matmul_fast_kernels.h for AVX2 + FMA (also used on AVX-512 machines):
// 6 weight rows x 16 tokens = 12 ymm accumulators (ops/outer_product_avx2.inc); per element k, 2 loads of
// the token panel and 6 weight broadcasts feed 12 FMAs. fp32 products, fp32 sums over k in order (the
// exact path's numbers up to summation order).
#include "ops/matmul_fast_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <algorithm>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

namespace razor {

#include "ops/outer_product_avx2.inc"

namespace {

static_assert(kPanelTokens == 16, "the micro-kernel holds a panel in two ymm registers");

// Rows r0 .. r0 + R - 1 x the nt tokens of the panel at xp, whose first token is t0.
template <int R>
void PanelMicro(const PanelTileArgs& a, int r0, const float* xp, int64_t t0, int nt) {
  const float* w[6];
  for (int r = 0; r < 6; ++r) w[r] = a.w + static_cast<int64_t>(r0 + (r < R ? r : 0)) * a.w_stride;
  const __m256 z = _mm256_setzero_ps();
  Acc12 c{z, z, z, z, z, z, z, z, z, z, z, z};
  for (int64_t k = 0; k < a.cols; ++k, xp += kPanelTokens)
    Step<R>(c, w, k, _mm256_loadu_ps(xp), _mm256_loadu_ps(xp + 8));
  float out[6][16];
  Store(c, out);
  for (int t = 0; t < nt; ++t)
    for (int r = 0; r < R; ++r) a.y[(t0 + t) * a.y_stride + r0 + r] = out[r][t];
}

}  // namespace

void PanelTileAvx2(const PanelTileArgs& a) {
  for (int64_t t0 = 0; t0 < a.n_tokens; t0 += kPanelTokens) {
    const float* xp = a.xp + t0 * a.cols;  // panel t0 / kPanelTokens
    const int nt = static_cast<int>(std::min<int64_t>(kPanelTokens, a.n_tokens - t0));
    int r = 0;
    for (; r + 6 <= a.nr; r += 6) PanelMicro<6>(a, r, xp, t0, nt);
    switch (a.nr - r) {
      case 5: PanelMicro<5>(a, r, xp, t0, nt); break;
      case 4: PanelMicro<4>(a, r, xp, t0, nt); break;
      case 3: PanelMicro<3>(a, r, xp, t0, nt); break;
      case 2: PanelMicro<2>(a, r, xp, t0, nt); break;
      case 1: PanelMicro<1>(a, r, xp, t0, nt); break;
      default: break;
    }
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
