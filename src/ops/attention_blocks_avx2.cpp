// AVX2 + FMA block kernels of ops/attention_blocks.h. Both are outer products with 12 ymm accumulators
// (6 broadcast scalars x 16 vector lanes), so no horizontal sums and few loads per FMA:
//   scores:     6 keys (broadcast k_j[i]) x 16 query rows (the packed panel), summed over i < d;
//   accumulate: 6 query rows (broadcast P[r][j]) x 16 dims of v_j, summed over the block's keys.
// fp32 products and sums (the reference's numbers up to summation order).
#include "ops/attention_blocks.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

namespace razor {

bool AttentionBlocksAvailable() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
}

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif

#include "ops/outer_product_avx2.inc"

namespace {

template <int A>
void ScoresKeys(const float* qt, int rows, const float* const* k, int j0, int d, float* S) {
  const __m256 z = _mm256_setzero_ps();
  Acc12 c{z, z, z, z, z, z, z, z, z, z, z, z};
  for (int i = 0; i < d; ++i) {
    const __m256 x0 = _mm256_loadu_ps(qt + i * kAttnRowPanel), x1 = _mm256_loadu_ps(qt + i * kAttnRowPanel + 8);
    Step<A>(c, k + j0, i, x0, x1);
  }
  float out[6][16];
  Store(c, out);
  for (int r = 0; r < rows; ++r)
    for (int a = 0; a < A; ++a) S[r * kAttnKeyBlock + j0 + a] = out[a][r];
}

template <int A>
void AccumulateRows(const float* P, int r0, int nb, const float* const* v, int d, float* acc) {
  const float* prow[6];
  float* arow[6];
  for (int a = 0; a < 6; ++a) {
    prow[a] = P + static_cast<int64_t>(r0 + (a < A ? a : 0)) * kAttnKeyBlock;
    arow[a] = acc + static_cast<int64_t>(r0 + (a < A ? a : 0)) * d;
  }
  for (int i0 = 0; i0 < d; i0 += 16) {
    Acc12 c = Load<A>(arow, i0);
    for (int j = 0; j < nb; ++j) {
      const __m256 x0 = _mm256_loadu_ps(v[j] + i0), x1 = _mm256_loadu_ps(v[j] + i0 + 8);
      Step<A>(c, prow, j, x0, x1);
    }
    float out[6][16];
    Store(c, out);
    for (int a = 0; a < A; ++a)
      for (int i = 0; i < 16; ++i) arow[a][i0 + i] = out[a][i];
  }
}

// e^(x - m) of 8 lanes: ExpShiftedInPlace's algorithm (Cody-Waite reduction, Cephes degree-6 polynomial).
__m256 ExpShifted8(__m256 x, __m256 vm) {
  const __m256 lo = _mm256_set1_ps(-87.0f), hi = _mm256_set1_ps(88.0f);
  const __m256 log2e = _mm256_set1_ps(1.44269504088896341f), c1 = _mm256_set1_ps(0.693359375f),
               c2 = _mm256_set1_ps(-2.12194440e-4f);
  const float poly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                         4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
  const __m256 v0 = _mm256_sub_ps(x, vm);
  const __m256 v = _mm256_min_ps(_mm256_max_ps(v0, lo), hi);
  const __m256 k = _mm256_round_ps(_mm256_mul_ps(v, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 r = _mm256_fnmadd_ps(k, c2, _mm256_fnmadd_ps(k, c1, v));
  __m256 p = _mm256_set1_ps(poly[0]);
  for (int j = 1; j < 6; ++j) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(poly[j]));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
  const __m256 e = _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
  return _mm256_and_ps(e, _mm256_cmp_ps(v0, lo, _CMP_GE_OQ));  // e^-inf (masked keys) = 0
}

}  // namespace

void ExpShiftedAvx2(float* x, float m, int n) {
  const __m256 vm = _mm256_set1_ps(m);
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, ExpShifted8(_mm256_loadu_ps(x + i), vm));
  // The tail goes through the same vector code (padded), so every element's bits are the same whichever
  // block length it falls in: a row's result must not depend on how the prompt was split into calls.
  if (i < n) {
    float tail[8];
    for (int j = 0; j < 8; ++j) tail[j] = i + j < n ? x[i + j] : m;
    _mm256_storeu_ps(tail, ExpShifted8(_mm256_loadu_ps(tail), vm));
    for (int j = 0; i + j < n; ++j) x[i + j] = tail[j];
  }
}

void BlockScoresAvx2(const float* qt, int rows, const float* const* k, int nb, int d, float* S) {
  int j = 0;
  for (; j + 6 <= nb; j += 6) ScoresKeys<6>(qt, rows, k, j, d, S);
  switch (nb - j) {
    case 5: ScoresKeys<5>(qt, rows, k, j, d, S); break;
    case 4: ScoresKeys<4>(qt, rows, k, j, d, S); break;
    case 3: ScoresKeys<3>(qt, rows, k, j, d, S); break;
    case 2: ScoresKeys<2>(qt, rows, k, j, d, S); break;
    case 1: ScoresKeys<1>(qt, rows, k, j, d, S); break;
    default: break;
  }
}

void BlockAccumulateAvx2(const float* P, int rows, int nb, const float* const* v, int d, float* acc) {
  int r = 0;
  for (; r + 6 <= rows; r += 6) AccumulateRows<6>(P, r, nb, v, d, acc);
  switch (rows - r) {
    case 5: AccumulateRows<5>(P, r, nb, v, d, acc); break;
    case 4: AccumulateRows<4>(P, r, nb, v, d, acc); break;
    case 3: AccumulateRows<3>(P, r, nb, v, d, acc); break;
    case 2: AccumulateRows<2>(P, r, nb, v, d, acc); break;
    case 1: AccumulateRows<1>(P, r, nb, v, d, acc); break;
    default: break;
  }
}

}  // namespace razor

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else  // not x86-64
namespace razor {
bool AttentionBlocksAvailable() { return false; }
void ExpShiftedAvx2(float*, float, int) {}
void BlockScoresAvx2(const float*, int, const float* const*, int, int, float*) {}
void BlockAccumulateAvx2(const float*, int, int, const float* const*, int, float*) {}
}  // namespace razor
#endif
