// The panel GEMM micro-kernel of matmul_fast_kernels.h for AVX-512 F: 8 weight rows x 2 panels (32 tokens)
// = 16 zmm accumulators. Per element k: 2 panel loads and 8 weight broadcasts feed 16 FMAs. On cores
// with full-width 512-bit FMA units (Zen 5, Intel server cores) that is twice the AVX2 kernel's work per
// instruction. fp32 products, fp32 sums over k in order: the same numbers as PanelTileAvx2 (each y is one
// chain of FMAs over k), and the exact path's up to summation order.
#include "ops/matmul_fast_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <algorithm>

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,avx512f"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,avx512f")
// GCC 12's avx512fintrin.h reads an _mm512_undefined_* value inside several intrinsics: false
// -Wuninitialized reports at every use.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace razor {

namespace {

static_assert(kPanelTokens == 16, "one zmm register holds a panel's row of tokens");
constexpr int kRows = 8;  // weight rows per micro-tile

// y for rows r0 .. r0 + R - 1 x panels p0 .. p0 + P - 1. Every index of acc is a compile-time constant
// after unrolling, so the accumulators live in registers.
template <int R, int P>
void PanelMicro(const PanelTileArgs& a, int r0, int64_t p0) {
  const float* w[R];
  for (int r = 0; r < R; ++r) w[r] = a.w + static_cast<int64_t>(r0 + r) * a.w_stride;
  const int64_t panel_floats = a.cols * kPanelTokens;
  const float* xp = a.xp + p0 * panel_floats;
  __m512 acc[R][P];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 2
    for (int p = 0; p < P; ++p) acc[r][p] = _mm512_setzero_ps();
  for (int64_t k = 0; k < a.cols; ++k, xp += kPanelTokens) {
    __m512 x[P];
#pragma GCC unroll 2
    for (int p = 0; p < P; ++p) x[p] = _mm512_loadu_ps(xp + p * panel_floats);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const __m512 b = _mm512_set1_ps(w[r][k]);
#pragma GCC unroll 2
      for (int p = 0; p < P; ++p) acc[r][p] = _mm512_fmadd_ps(b, x[p], acc[r][p]);
    }
  }
  for (int p = 0; p < P; ++p) {
    const int64_t t0 = (p0 + p) * kPanelTokens;
    const int nt = static_cast<int>(std::min<int64_t>(kPanelTokens, a.n_tokens - t0));
    for (int r = 0; r < R; ++r) {
      alignas(64) float out[kPanelTokens];
      _mm512_store_ps(out, acc[r][p]);
      for (int t = 0; t < nt; ++t) a.y[(t0 + t) * a.y_stride + r0 + r] = out[t];
    }
  }
}

template <int P>
void PanelRows(const PanelTileArgs& a, int64_t p0) {
  int r = 0;
  for (; r + kRows <= a.nr; r += kRows) PanelMicro<kRows, P>(a, r, p0);
  switch (a.nr - r) {
    case 7: return PanelMicro<7, P>(a, r, p0);
    case 6: return PanelMicro<6, P>(a, r, p0);
    case 5: return PanelMicro<5, P>(a, r, p0);
    case 4: return PanelMicro<4, P>(a, r, p0);
    case 3: return PanelMicro<3, P>(a, r, p0);
    case 2: return PanelMicro<2, P>(a, r, p0);
    case 1: return PanelMicro<1, P>(a, r, p0);
    default: return;
  }
}

}  // namespace

void PanelTileAvx512(const PanelTileArgs& a) {
  const int64_t n_panels = (a.n_tokens + kPanelTokens - 1) / kPanelTokens;
  int64_t p = 0;
  for (; p + 2 <= n_panels; p += 2) PanelRows<2>(a, p);
  if (p < n_panels) PanelRows<1>(a, p);
}

}  // namespace razor

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

#else  // not x86-64: never selected by the dispatcher
namespace razor {
void PanelTileAvx512(const PanelTileArgs&) {}
}  // namespace razor
#endif
