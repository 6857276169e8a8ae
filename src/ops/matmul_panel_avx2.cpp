// The panel GEMM micro-kernel of matmul_fast_kernels.h for AVX2 + FMA (also used on AVX-512 machines):
// 6 weight rows x 16 tokens = 12 ymm accumulators (ops/outer_product_avx2.inc); per element k, 2 loads of
// the token panel and 6 weight broadcasts feed 12 FMAs. fp32 products, fp32 sums over k in order (the
// exact path's numbers up to summation order).
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

#include "ops/outer_product_avx2.inc"

namespace {

static_assert(kPanelTokens == 16, "the micro-kernel holds a panel in two ymm registers");

template <int R>
void PanelMicro(const PanelTileArgs& a, int r0) {
  const float* w[6];
  for (int r = 0; r < 6; ++r) w[r] = a.w + static_cast<int64_t>(r0 + (r < R ? r : 0)) * a.w_stride;
  const __m256 z = _mm256_setzero_ps();
  Acc12 c{z, z, z, z, z, z, z, z, z, z, z, z};
  const float* xp = a.xp;
  for (int64_t k = 0; k < a.cols; ++k, xp += kPanelTokens)
    Step<R>(c, w, k, _mm256_loadu_ps(xp), _mm256_loadu_ps(xp + 8));
  float out[6][16];
  Store(c, out);
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
