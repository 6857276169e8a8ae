// AVX-512 F block kernels of ops/attention_blocks.h: a 16-row panel is one zmm register.
//   scores:     up to 12 keys (broadcast k_j[i]) x the panel's 16 rows, summed over i < d;
//   accumulate: up to 8 query rows (broadcast P(r, j)) x 32 dims of v_j (two zmm), summed over the keys;
//   softmax:    the AVX2 step over all 16 rows at once, with mask registers.
// Each output is the same chain of fp32 operations as in the AVX2 kernels (scores summed over i in order,
// accumulators over j in order, the same exp polynomial), so both give the same numbers.
#include "ops/attention_blocks.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <cstdint>
#include <limits>
#include <type_traits>

namespace razor {

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

namespace {

static_assert(kAttnRowPanel == 16, "a panel of query rows is one zmm register");
constexpr int kScoreKeys = 12;   // keys per score micro-tile (12 accumulators)
constexpr int kAccRows = 8;      // query rows per accumulate micro-tile (8 x 2 accumulators)

// S[(j0 + a) * 16 + lane] for keys a < A.
template <int A>
void ScoresKeys(const float* qt, const float* const* k, int j0, int d, float* S) {
  __m512 c[A];
#pragma GCC unroll 12
  for (int a = 0; a < A; ++a) c[a] = _mm512_setzero_ps();
  const float* kk[A];
#pragma GCC unroll 12
  for (int a = 0; a < A; ++a) kk[a] = k[j0 + a];
  for (int i = 0; i < d; ++i) {
    const __m512 x = _mm512_loadu_ps(qt + i * kAttnRowPanel);
#pragma GCC unroll 12
    for (int a = 0; a < A; ++a) c[a] = _mm512_fmadd_ps(_mm512_set1_ps(kk[a][i]), x, c[a]);
  }
#pragma GCC unroll 12
  for (int a = 0; a < A; ++a) _mm512_storeu_ps(S + static_cast<int64_t>(j0 + a) * kAttnRowPanel, c[a]);
}

// acc rows r0 .. r0 + A - 1, dims i0 .. i0 + 16 V - 1: += sum_j P(r, j) v_j (V = 2, or 1 for the last 16
// dims when d % 32 == 16).
template <int A, int V>
void AccumulateRows(const float* P, int r0, int nb, const float* const* v, int i0, int d, float* acc) {
  const float* prow[A];  // P(r, j) = prow[a][j * kAttnRowPanel]
  float* arow[A];
#pragma GCC unroll 8
  for (int a = 0; a < A; ++a) {
    const int r = r0 + a;
    prow[a] = P + static_cast<int64_t>(r / kAttnRowPanel) * kAttnPanelFloats + r % kAttnRowPanel;
    arow[a] = acc + static_cast<int64_t>(r) * d + i0;
  }
  __m512 c[A][V];
#pragma GCC unroll 8
  for (int a = 0; a < A; ++a)
#pragma GCC unroll 2
    for (int h = 0; h < V; ++h) c[a][h] = _mm512_loadu_ps(arow[a] + 16 * h);
  for (int j = 0; j < nb; ++j) {
    __m512 x[V];
#pragma GCC unroll 2
    for (int h = 0; h < V; ++h) x[h] = _mm512_loadu_ps(v[j] + i0 + 16 * h);
    const int64_t pj = static_cast<int64_t>(j) * kAttnRowPanel;
#pragma GCC unroll 8
    for (int a = 0; a < A; ++a) {
      const __m512 b = _mm512_set1_ps(prow[a][pj]);
#pragma GCC unroll 2
      for (int h = 0; h < V; ++h) c[a][h] = _mm512_fmadd_ps(b, x[h], c[a][h]);
    }
  }
#pragma GCC unroll 8
  for (int a = 0; a < A; ++a)
#pragma GCC unroll 2
    for (int h = 0; h < V; ++h) _mm512_storeu_ps(arow[a] + 16 * h, c[a][h]);
}

template <int A>
void AccumulateAllDims(const float* P, int r0, int nb, const float* const* v, int d, float* acc) {
  int i0 = 0;
  for (; i0 + 32 <= d; i0 += 32) AccumulateRows<A, 2>(P, r0, nb, v, i0, d, acc);
  if (i0 < d) AccumulateRows<A, 1>(P, r0, nb, v, i0, d, acc);
}

// ExpShifted8 of attention_blocks_avx2.cpp on 16 lanes (the same operations, so the same values).
__m512 ExpShifted16(__m512 x, __m512 m) {
  const __m512 lo = _mm512_set1_ps(-87.0f), hi = _mm512_set1_ps(88.0f);
  const __m512 log2e = _mm512_set1_ps(1.44269504088896341f), c1 = _mm512_set1_ps(0.693359375f),
               c2 = _mm512_set1_ps(-2.12194440e-4f);
  const float poly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                         4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
  const __m512 v0 = _mm512_sub_ps(x, m);
  const __m512 v = _mm512_min_ps(_mm512_max_ps(v0, lo), hi);
  const __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(v, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m512 r = _mm512_fnmadd_ps(k, c2, _mm512_fnmadd_ps(k, c1, v));
  __m512 p = _mm512_set1_ps(poly[0]);
  for (int j = 1; j < 6; ++j) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(poly[j]));
  const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
  const __m512i bits = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(k), _mm512_set1_epi32(127)), 23);
  const __m512 e = _mm512_mul_ps(y, _mm512_castsi512_ps(bits));
  return _mm512_maskz_mov_ps(_mm512_cmp_ps_mask(v0, lo, _CMP_GE_OQ), e);
}

// Sum of each of 16 vectors: lane j of the result = the 16 lanes of t[j] added (a transpose-and-add tree:
// pairs within 128-bit blocks, then pairs of pairs, then across the four blocks).
__m512 SumEach16(const __m512* t) {
  __m512 u[8], w[4];
  for (int k = 0; k < 8; ++k)
    u[k] = _mm512_add_ps(_mm512_unpacklo_ps(t[2 * k], t[2 * k + 1]), _mm512_unpackhi_ps(t[2 * k], t[2 * k + 1]));
  for (int k = 0; k < 4; ++k)
    w[k] = _mm512_add_ps(_mm512_shuffle_ps(u[2 * k], u[2 * k + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                         _mm512_shuffle_ps(u[2 * k], u[2 * k + 1], _MM_SHUFFLE(3, 2, 3, 2)));
  // w[k], 128-bit block b, lane i: the block-b part of the sum of t[4k + i].
  const __m512 x01 = _mm512_add_ps(_mm512_shuffle_f32x4(w[0], w[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(w[0], w[1], _MM_SHUFFLE(3, 1, 3, 1)));
  const __m512 x23 = _mm512_add_ps(_mm512_shuffle_f32x4(w[2], w[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(w[2], w[3], _MM_SHUFFLE(3, 1, 3, 1)));
  return _mm512_add_ps(_mm512_shuffle_f32x4(x01, x23, _MM_SHUFFLE(2, 0, 2, 0)),
                       _mm512_shuffle_f32x4(x01, x23, _MM_SHUFFLE(3, 1, 3, 1)));
}

// 16 fp32 lanes from a K / V row as stored: fp32, or f16 / bf16 bits widened in the register (exactly), so
// the row kernels below read a half-precision cache where it lives, with no scratch copy.
struct F32Rows {
  using T = float;
  static __m512 Load16(const float* p) { return _mm512_loadu_ps(p); }
};
struct F16Rows {
  using T = uint16_t;
  static __m512 Load16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  }
};
struct Bf16Rows {  // bf16 is the top half of an fp32
  using T = uint16_t;
  static __m512 Load16(const uint16_t* p) {
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
  }
};

// Scores of one row against keys j0 .. j0 + 15 (rows of d elements; RowBlocksSupportDim(d)).
template <int C, class E>  // C = d / 16 vectors per row; E: how rows are stored
void RowScores16(const float* q, const typename E::T* const* k, int j0, float scale, float* out) {
  __m512 qv[C];
#pragma GCC unroll 16
  for (int c = 0; c < C; ++c) qv[c] = _mm512_loadu_ps(q + 16 * c);
  __m512 t[16];
#pragma GCC unroll 16
  for (int j = 0; j < 16; ++j) {
    const typename E::T* kj = k[j0 + j];
    __m512 s = _mm512_mul_ps(qv[0], E::Load16(kj));
#pragma GCC unroll 16
    for (int c = 1; c < C; ++c) s = _mm512_fmadd_ps(qv[c], E::Load16(kj + 16 * c), s);
    t[j] = s;
  }
  _mm512_storeu_ps(out, _mm512_mul_ps(SumEach16(t), _mm512_set1_ps(scale)));
}

template <int C, class E>
void RowsScores(const float* const* q, int rows, const typename E::T* const* k, int nb, float scale, float* S) {
  static const typename E::T zero_row[kRowBlocksMaxDim] = {};  // all-zero bits: 0.0 in every type
  const typename E::T* kp[kAttnKeyBlock];  // keys past nb read a zero row (their scores are never used)
  for (int j = 0; j < kAttnKeyBlock; ++j) kp[j] = j < nb ? k[j] : zero_row;
  // Keys outer, rows inner: the block's keys are read once from memory, in order (each 16-key group then
  // serves every row from L1), instead of one pass over the block per row.
  for (int j0 = 0; j0 < nb; j0 += 16)
    for (int r = 0; r < rows; ++r) RowScores16<C, E>(q[r], kp, j0, scale, S + r * kAttnKeyBlock + j0);
}

// acc row r += sum_j P[r * kAttnKeyBlock + j] v_j for R rows at once (row-major scores, rows d = 16 C floats
// apart): each v_j is loaded once for all R rows, and the R x C accumulators are independent FMA chains (one
// row alone was a chain of nb FMAs on C registers, bound by FMA latency).
template <int C, int R, class E>
void RowsAccumulate(const float* P, int nb, const typename E::T* const* v, float* acc) {
  __m512 a[R][C];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) a[r][c] = _mm512_loadu_ps(acc + r * 16 * C + 16 * c);
  for (int j = 0; j < nb; ++j) {
    const typename E::T* vj = v[j];
    __m512 vv[C];
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) vv[c] = E::Load16(vj + 16 * c);
#pragma GCC unroll 16
    for (int r = 0; r < R; ++r) {
      const __m512 p = _mm512_set1_ps(P[r * kAttnKeyBlock + j]);
#pragma GCC unroll 16
      for (int c = 0; c < C; ++c) a[r][c] = _mm512_fmadd_ps(p, vv[c], a[r][c]);
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 16
    for (int c = 0; c < C; ++c) _mm512_storeu_ps(acc + r * 16 * C + 16 * c, a[r][c]);
}

// Rows in groups of as many as keep R x C accumulators + C values within 32 registers (7 rows at d = 64),
// then the rest (fewer than a group) as one smaller group.
template <int C>
constexpr int kAccumulateRows = 28 / C < 7 ? 28 / C : 7;

template <int C, int R, class E>
void AccumulateRest(const float* P, int rows, int nb, const typename E::T* const* v, float* acc) {
  if constexpr (R >= 1) {
    if (rows == R) return RowsAccumulate<C, R, E>(P, nb, v, acc);
    AccumulateRest<C, R - 1, E>(P, rows, nb, v, acc);
  }
}

template <int C, class E>
void AccumulateAllRows(const float* P, int rows, int nb, const typename E::T* const* v, float* acc) {
  constexpr int kR = kAccumulateRows<C>;
  int r = 0;
  for (; r + kR <= rows; r += kR) RowsAccumulate<C, kR, E>(P + r * kAttnKeyBlock, nb, v, acc + r * 16 * C);
  AccumulateRest<C, kR - 1, E>(P + r * kAttnKeyBlock, rows - r, nb, v, acc + r * 16 * C);
}

// Calls f(std::integral_constant<int, C>{}) for d = 16 C, C = 1..8 (RowBlocksSupportDim): the row kernels'
// one switch from the runtime head dimension to their compile-time vector count.
template <class F>
void ForEachDimChunks(int d, F&& f) {
  switch (d / 16) {
    case 1: return f(std::integral_constant<int, 1>{});
    case 2: return f(std::integral_constant<int, 2>{});
    case 3: return f(std::integral_constant<int, 3>{});
    case 4: return f(std::integral_constant<int, 4>{});
    case 5: return f(std::integral_constant<int, 5>{});
    case 6: return f(std::integral_constant<int, 6>{});
    case 7: return f(std::integral_constant<int, 7>{});
    case 8: return f(std::integral_constant<int, 8>{});
    default: return;
  }
}

}  // namespace

void RowScoresAvx512(const float* const* q, int rows, int d, const float* const* k, int nb, float scale,
                     float* S) {
  ForEachDimChunks(d, [&](auto c) { RowsScores<decltype(c)::value, F32Rows>(q, rows, k, nb, scale, S); });
}

void RowAccumulateAvx512(const float* P, int rows, int nb, const float* const* v, int d, float* acc) {
  ForEachDimChunks(d, [&](auto c) { AccumulateAllRows<decltype(c)::value, F32Rows>(P, rows, nb, v, acc); });
}

void RowScoresHalfAvx512(HalfType type, const float* const* q, int rows, int d, const uint16_t* const* k, int nb,
                         float scale, float* S) {
  ForEachDimChunks(d, [&](auto c) {
    if (type == HalfType::kF16) RowsScores<decltype(c)::value, F16Rows>(q, rows, k, nb, scale, S);
    else RowsScores<decltype(c)::value, Bf16Rows>(q, rows, k, nb, scale, S);
  });
}

void RowAccumulateHalfAvx512(HalfType type, const float* P, int rows, int nb, const uint16_t* const* v, int d,
                             float* acc) {
  ForEachDimChunks(d, [&](auto c) {
    if (type == HalfType::kF16) AccumulateAllRows<decltype(c)::value, F16Rows>(P, rows, nb, v, acc);
    else AccumulateAllRows<decltype(c)::value, Bf16Rows>(P, rows, nb, v, acc);
  });
}

void BlockScoresAvx512(const float* qt, const float* const* k, int nb, int d, float* S) {
  int j = 0;
  for (; j + kScoreKeys <= nb; j += kScoreKeys) ScoresKeys<kScoreKeys>(qt, k, j, d, S);
  switch (nb - j) {
    case 11: ScoresKeys<11>(qt, k, j, d, S); break;
    case 10: ScoresKeys<10>(qt, k, j, d, S); break;
    case 9: ScoresKeys<9>(qt, k, j, d, S); break;
    case 8: ScoresKeys<8>(qt, k, j, d, S); break;
    case 7: ScoresKeys<7>(qt, k, j, d, S); break;
    case 6: ScoresKeys<6>(qt, k, j, d, S); break;
    case 5: ScoresKeys<5>(qt, k, j, d, S); break;
    case 4: ScoresKeys<4>(qt, k, j, d, S); break;
    case 3: ScoresKeys<3>(qt, k, j, d, S); break;
    case 2: ScoresKeys<2>(qt, k, j, d, S); break;
    case 1: ScoresKeys<1>(qt, k, j, d, S); break;
    default: break;
  }
}

void BlockSoftmaxAvx512(float* S, int nb, int64_t j0, const int32_t* key_pos, AttnPanelRows* rows, float* corr) {
  const __m512 ninf = _mm512_set1_ps(-std::numeric_limits<float>::infinity());
  const __m512i vis = _mm512_loadu_si512(rows->visible);
  const __m512i first = _mm512_loadu_si512(rows->first);
  const __m512i qpos = _mm512_loadu_si512(rows->qpos);
  const __m512 slope = _mm512_loadu_ps(rows->slope);
  const __m512 m_old = _mm512_loadu_ps(rows->m);
  __m512 m_new = m_old;
  // Pass 1: mask, ALiBi, running max.
  for (int j = 0; j < nb; ++j) {
    float* s = S + j * kAttnRowPanel;
    __m512 x = _mm512_loadu_ps(s);
    if (key_pos != nullptr) {
      const __m512 dist = _mm512_cvtepi32_ps(_mm512_sub_epi32(qpos, _mm512_set1_epi32(key_pos[j])));
      x = _mm512_sub_ps(x, _mm512_mul_ps(slope, dist));
    }
    const __m512i key = _mm512_set1_epi32(static_cast<int32_t>(j0 + j));
    const __mmask16 hidden = _mm512_cmpge_epi32_mask(key, vis) | _mm512_cmplt_epi32_mask(key, first);
    x = _mm512_mask_mov_ps(x, hidden, ninf);  // causal mask (key >= visible) and sliding window (key < first)
    _mm512_storeu_ps(s, x);
    m_new = _mm512_max_ps(m_new, x);
  }
  // Rows that have seen no key yet (padding) keep m = -inf: shift by 0 there, so every e^ is 0, not NaN.
  const __mmask16 none = _mm512_cmp_ps_mask(m_new, ninf, _CMP_EQ_OQ);
  const __m512 shift = _mm512_mask_mov_ps(m_new, none, _mm512_setzero_ps());
  const __m512 c = _mm512_mask_mov_ps(ExpShifted16(m_old, shift), none, _mm512_set1_ps(1.0f));
  // Pass 2: P = e^(s - m), summed in key order per row.
  __m512 sum = _mm512_setzero_ps();
  for (int j = 0; j < nb; ++j) {
    float* s = S + j * kAttnRowPanel;
    const __m512 p = ExpShifted16(_mm512_loadu_ps(s), shift);
    _mm512_storeu_ps(s, p);
    sum = _mm512_add_ps(sum, p);
  }
  _mm512_storeu_ps(rows->m, m_new);
  _mm512_storeu_ps(rows->l, _mm512_add_ps(_mm512_mul_ps(_mm512_loadu_ps(rows->l), c), sum));
  _mm512_storeu_ps(corr, c);
}

void BlockAccumulateAvx512(const float* P, int rows, int nb, const float* const* v, int d, float* acc) {
  int r = 0;
  for (; r + kAccRows <= rows; r += kAccRows) AccumulateAllDims<kAccRows>(P, r, nb, v, d, acc);
  switch (rows - r) {
    case 7: AccumulateAllDims<7>(P, r, nb, v, d, acc); break;
    case 6: AccumulateAllDims<6>(P, r, nb, v, d, acc); break;
    case 5: AccumulateAllDims<5>(P, r, nb, v, d, acc); break;
    case 4: AccumulateAllDims<4>(P, r, nb, v, d, acc); break;
    case 3: AccumulateAllDims<3>(P, r, nb, v, d, acc); break;
    case 2: AccumulateAllDims<2>(P, r, nb, v, d, acc); break;
    case 1: AccumulateAllDims<1>(P, r, nb, v, d, acc); break;
    default: break;
  }
}

}  // namespace razor

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

#else  // not x86-64
namespace razor {
void RowScoresAvx512(const float* const*, int, int, const float* const*, int, float, float*) {}
void RowAccumulateAvx512(const float*, int, int, const float* const*, int, float*) {}
void RowScoresHalfAvx512(HalfType, const float* const*, int, int, const uint16_t* const*, int, float, float*) {}
void RowAccumulateHalfAvx512(HalfType, const float*, int, int, const uint16_t* const*, int, float*) {}
void BlockScoresAvx512(const float*, const float* const*, int, int, float*) {}
void BlockSoftmaxAvx512(float*, int, int64_t, const int32_t*, AttnPanelRows*, float*) {}
void BlockAccumulateAvx512(const float*, int, int, const float* const*, int, float*) {}
}  // namespace razor
#endif
