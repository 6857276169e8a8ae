// AVX2 + FMA block kernels of ops/attention_blocks.h. The two products are outer products with 12 ymm
// accumulators (6 broadcast scalars x 16 vector lanes), so no horizontal sums and few loads per FMA:
//   scores:     6 keys (broadcast k_j[i]) x 16 query rows (the packed panel), summed over i < d;
//   accumulate: 6 query rows (broadcast P(r, j)) x 16 dims of v_j, summed over the block's keys.
// The softmax step runs across the 16 rows of a panel (two 8-lane halves), key after key.
// fp32 products and sums (the reference's numbers up to summation order and exp's rounding).
#include "ops/attention_blocks.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <limits>

namespace razor {

bool AttentionBlocksAvailable() {
  static const bool ok = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  }();
  return ok;
}

bool HalfRowKernelsAvailable() {
  static const bool ok = AttentionBlocksAvailable() && __builtin_cpu_supports("f16c");
  return ok;
}

// f16c only for the half-precision row loaders (F16Rows), which run only where HalfRowKernelsAvailable().
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

#include "ops/outer_product_avx2.inc"

namespace {

template <int A>
void ScoresKeys(const float* qt, const float* const* k, int j0, int d, float* S) {
  const __m256 z = _mm256_setzero_ps();
  Acc12 c{z, z, z, z, z, z, z, z, z, z, z, z};
  for (int i = 0; i < d; ++i) {
    const __m256 x0 = _mm256_loadu_ps(qt + i * kAttnRowPanel), x1 = _mm256_loadu_ps(qt + i * kAttnRowPanel + 8);
    Step<A>(c, k + j0, i, x0, x1);
  }
  // Key-major panel layout: the 16 rows of key j0 + a are one contiguous pair of vectors.
  float* s = S + static_cast<int64_t>(j0) * kAttnRowPanel;
  float* const rows[6] = {s, s + 16, s + 32, s + 48, s + 64, s + 80};
  StoreRows<A>(c, rows, 0);
}

template <int A>
void AccumulateRows(const float* P, int r0, int nb, const float* const* v, int d, float* acc) {
  const float* prow[6];  // P(r, j) = prow[a][j * kAttnRowPanel]
  float* arow[6];
  for (int a = 0; a < 6; ++a) {
    const int r = r0 + (a < A ? a : 0);
    prow[a] = P + static_cast<int64_t>(r / kAttnRowPanel) * kAttnPanelFloats + r % kAttnRowPanel;
    arow[a] = acc + static_cast<int64_t>(r) * d;
  }
  for (int i0 = 0; i0 < d; i0 += 16) {
    Acc12 c = Load<A>(arow, i0);
    for (int j = 0; j < nb; ++j) {
      const __m256 x0 = _mm256_loadu_ps(v[j] + i0), x1 = _mm256_loadu_ps(v[j] + i0 + 8);
      Step<A>(c, prow, static_cast<int64_t>(j) * kAttnRowPanel, x0, x1);
    }
    StoreRows<A>(c, arow, i0);
  }
}

// e^(x - m) of 8 lanes: ExpShiftedInPlace's algorithm (Cody-Waite reduction, Cephes degree-6 polynomial);
// 0 where x - m < -87 (so e^-inf, a masked key, is 0); e^0 is exactly 1.
__m256 ExpShifted8(__m256 x, __m256 m) {
  const __m256 lo = _mm256_set1_ps(-87.0f), hi = _mm256_set1_ps(88.0f);
  const __m256 log2e = _mm256_set1_ps(1.44269504088896341f), c1 = _mm256_set1_ps(0.693359375f),
               c2 = _mm256_set1_ps(-2.12194440e-4f);
  const float poly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                         4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};
  const __m256 v0 = _mm256_sub_ps(x, m);
  const __m256 v = _mm256_min_ps(_mm256_max_ps(v0, lo), hi);
  const __m256 k = _mm256_round_ps(_mm256_mul_ps(v, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  const __m256 r = _mm256_fnmadd_ps(k, c2, _mm256_fnmadd_ps(k, c1, v));
  __m256 p = _mm256_set1_ps(poly[0]);
  for (int j = 1; j < 6; ++j) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(poly[j]));
  const __m256 y = _mm256_add_ps(_mm256_fmadd_ps(_mm256_mul_ps(p, r), r, r), _mm256_set1_ps(1.0f));
  const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
  const __m256 e = _mm256_mul_ps(y, _mm256_castsi256_ps(bits));
  return _mm256_and_ps(e, _mm256_cmp_ps(v0, lo, _CMP_GE_OQ));
}

// BlockSoftmaxAvx2 for one 8-lane half of a panel (lanes h*8 .. h*8+7).
void SoftmaxHalf(float* S, int nb, int64_t j0, const int32_t* key_pos, AttnPanelRows* rows, float* corr, int h) {
  const int o = h * 8;
  const __m256 ninf = _mm256_set1_ps(-std::numeric_limits<float>::infinity());
  const __m256i vis = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows->visible + o));
  const __m256i first = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows->first + o));
  const __m256i qpos = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows->qpos + o));
  const __m256 slope = _mm256_loadu_ps(rows->slope + o);
  const __m256 m_old = _mm256_loadu_ps(rows->m + o);
  __m256 m_new = m_old;
  // Pass 1: mask, ALiBi, running max.
  for (int j = 0; j < nb; ++j) {
    float* s = S + j * kAttnRowPanel + o;
    __m256 x = _mm256_loadu_ps(s);
    if (key_pos != nullptr) {
      const __m256 dist = _mm256_cvtepi32_ps(_mm256_sub_epi32(qpos, _mm256_set1_epi32(key_pos[j])));
      x = _mm256_sub_ps(x, _mm256_mul_ps(slope, dist));
    }
    const __m256i key = _mm256_set1_epi32(static_cast<int32_t>(j0 + j));
    const __m256i past = _mm256_cmpgt_epi32(_mm256_add_epi32(key, _mm256_set1_epi32(1)), vis);  // key >= visible
    const __m256i before = _mm256_cmpgt_epi32(first, key);                                      // key < first
    const __m256 hidden = _mm256_castsi256_ps(_mm256_or_si256(past, before));
    x = _mm256_blendv_ps(x, ninf, hidden);  // causal mask and sliding window
    _mm256_storeu_ps(s, x);
    m_new = _mm256_max_ps(m_new, x);
  }
  // Rows that have seen no key yet (padding) keep m = -inf: shift by 0 there, so every e^ is 0, not NaN.
  const __m256 none = _mm256_cmp_ps(m_new, ninf, _CMP_EQ_OQ);
  const __m256 shift = _mm256_blendv_ps(m_new, _mm256_setzero_ps(), none);
  const __m256 c = _mm256_blendv_ps(ExpShifted8(m_old, shift), _mm256_set1_ps(1.0f), none);
  // Pass 2: P = e^(s - m), summed in key order per row.
  __m256 sum = _mm256_setzero_ps();
  for (int j = 0; j < nb; ++j) {
    float* s = S + j * kAttnRowPanel + o;
    const __m256 p = ExpShifted8(_mm256_loadu_ps(s), shift);
    _mm256_storeu_ps(s, p);
    sum = _mm256_add_ps(sum, p);
  }
  _mm256_storeu_ps(rows->m + o, m_new);
  _mm256_storeu_ps(rows->l + o, _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(rows->l + o), c), sum));
  _mm256_storeu_ps(corr + o, c);
}

// Lane j of the result = the 8 lanes of t[j] added (transpose-and-add tree).
__m256 SumEach8(const __m256* t) {
  __m256 u[4];
  for (int k = 0; k < 4; ++k)
    u[k] = _mm256_add_ps(_mm256_unpacklo_ps(t[2 * k], t[2 * k + 1]), _mm256_unpackhi_ps(t[2 * k], t[2 * k + 1]));
  const __m256 w0 = _mm256_add_ps(_mm256_shuffle_ps(u[0], u[1], _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm256_shuffle_ps(u[0], u[1], _MM_SHUFFLE(3, 2, 3, 2)));
  const __m256 w1 = _mm256_add_ps(_mm256_shuffle_ps(u[2], u[3], _MM_SHUFFLE(1, 0, 1, 0)),
                                  _mm256_shuffle_ps(u[2], u[3], _MM_SHUFFLE(3, 2, 3, 2)));
  // w0 / w1, 128-bit half h, lane i: the half-h part of the sum of t[i] / t[4 + i].
  return _mm256_add_ps(_mm256_permute2f128_ps(w0, w1, 0x20), _mm256_permute2f128_ps(w0, w1, 0x31));
}

// 8 fp32 lanes from a K / V row as stored: fp32, or f16 / bf16 bits widened in the register (exactly).
struct F32Rows {
  using T = float;
  static __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
};
struct F16Rows {
  using T = uint16_t;
  static __m256 Load8(const uint16_t* p) { return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p))); }
};
struct Bf16Rows {  // bf16 is the top half of an fp32
  using T = uint16_t;
  static __m256 Load8(const uint16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
};

// Scores of one row against keys j0 .. j0 + 7: per key a product vector over d = 8 C elements, summed by
// SumEach8 (q is read from L1 per 8-float chunk: 16 ymm registers cannot hold it and 8 sums at once).
template <int C, class E>
void RowScores8(const float* q, const typename E::T* const* k, int j0, float scale, float* out) {
  __m256 t[8];
  for (int j = 0; j < 8; ++j) t[j] = _mm256_mul_ps(_mm256_loadu_ps(q), E::Load8(k[j0 + j]));
  for (int c = 1; c < C; ++c) {
    const __m256 qv = _mm256_loadu_ps(q + 8 * c);
    for (int j = 0; j < 8; ++j) t[j] = _mm256_fmadd_ps(qv, E::Load8(k[j0 + j] + 8 * c), t[j]);
  }
  _mm256_storeu_ps(out, _mm256_mul_ps(SumEach8(t), _mm256_set1_ps(scale)));
}

template <int C, class E>
void RowsScores8(const float* const* q, int rows, const typename E::T* const* k, int nb, float scale, float* S) {
  static const typename E::T zero_row[kRowBlocksMaxDim] = {};  // all-zero bits: 0.0 in every type
  const typename E::T* kp[kAttnKeyBlock];  // keys past nb read a zero row (their scores are never used)
  for (int j = 0; j < kAttnKeyBlock; ++j) kp[j] = j < nb ? k[j] : zero_row;
  for (int r = 0; r < rows; ++r)
    for (int j0 = 0; j0 < nb; j0 += 8) RowScores8<C, E>(q[r], kp, j0, scale, S + r * kAttnKeyBlock + j0);
}

// acc[0 .. 8 C) += sum_j P[j] v_j[off .. off + 8 C), the accumulator chunk held in registers.
template <int C, class E>
void RowAccumulate8(const float* P, int nb, const typename E::T* const* v, int off, float* acc) {
  __m256 a[C];
  for (int c = 0; c < C; ++c) a[c] = _mm256_loadu_ps(acc + 8 * c);
  for (int j = 0; j < nb; ++j) {
    const __m256 p = _mm256_set1_ps(P[j]);
    const typename E::T* vj = v[j] + off;
    for (int c = 0; c < C; ++c) a[c] = _mm256_fmadd_ps(p, E::Load8(vj + 8 * c), a[c]);
  }
  for (int c = 0; c < C; ++c) _mm256_storeu_ps(acc + 8 * c, a[c]);
}

template <class E>
void RowScoresAll(const float* const* q, int rows, int d, const typename E::T* const* k, int nb, float scale,
                  float* S) {
  switch (d / 8) {
    case 2: return RowsScores8<2, E>(q, rows, k, nb, scale, S);
    case 4: return RowsScores8<4, E>(q, rows, k, nb, scale, S);
    case 6: return RowsScores8<6, E>(q, rows, k, nb, scale, S);
    case 8: return RowsScores8<8, E>(q, rows, k, nb, scale, S);
    case 10: return RowsScores8<10, E>(q, rows, k, nb, scale, S);
    case 12: return RowsScores8<12, E>(q, rows, k, nb, scale, S);
    case 14: return RowsScores8<14, E>(q, rows, k, nb, scale, S);
    case 16: return RowsScores8<16, E>(q, rows, k, nb, scale, S);
    default: return;
  }
}

template <class E>
void RowAccumulateAll(const float* P, int rows, int nb, const typename E::T* const* v, int d, float* acc) {
  for (int r = 0; r < rows; ++r) {
    const float* pr = P + r * kAttnKeyBlock;
    float* ar = acc + static_cast<int64_t>(r) * d;
    int off = 0;
    for (; off + 64 <= d; off += 64) RowAccumulate8<8, E>(pr, nb, v, off, ar + off);
    switch ((d - off) / 16) {  // d % 16 == 0
      case 3: RowAccumulate8<6, E>(pr, nb, v, off, ar + off); break;
      case 2: RowAccumulate8<4, E>(pr, nb, v, off, ar + off); break;
      case 1: RowAccumulate8<2, E>(pr, nb, v, off, ar + off); break;
      default: break;
    }
  }
}

}  // namespace

void RowScoresAvx2(const float* const* q, int rows, int d, const float* const* k, int nb, float scale, float* S) {
  RowScoresAll<F32Rows>(q, rows, d, k, nb, scale, S);
}

void RowAccumulateAvx2(const float* P, int rows, int nb, const float* const* v, int d, float* acc) {
  RowAccumulateAll<F32Rows>(P, rows, nb, v, d, acc);
}

void RowScoresHalfAvx2(HalfType type, const float* const* q, int rows, int d, const uint16_t* const* k, int nb,
                       float scale, float* S) {
  if (type == HalfType::kF16) RowScoresAll<F16Rows>(q, rows, d, k, nb, scale, S);
  else RowScoresAll<Bf16Rows>(q, rows, d, k, nb, scale, S);
}

void RowAccumulateHalfAvx2(HalfType type, const float* P, int rows, int nb, const uint16_t* const* v, int d,
                           float* acc) {
  if (type == HalfType::kF16) RowAccumulateAll<F16Rows>(P, rows, nb, v, d, acc);
  else RowAccumulateAll<Bf16Rows>(P, rows, nb, v, d, acc);
}

void BlockScoresAvx2(const float* qt, const float* const* k, int nb, int d, float* S) {
  int j = 0;
  for (; j + 6 <= nb; j += 6) ScoresKeys<6>(qt, k, j, d, S);
  switch (nb - j) {
    case 5: ScoresKeys<5>(qt, k, j, d, S); break;
    case 4: ScoresKeys<4>(qt, k, j, d, S); break;
    case 3: ScoresKeys<3>(qt, k, j, d, S); break;
    case 2: ScoresKeys<2>(qt, k, j, d, S); break;
    case 1: ScoresKeys<1>(qt, k, j, d, S); break;
    default: break;
  }
}

void BlockSoftmaxAvx2(float* S, int nb, int64_t j0, const int32_t* key_pos, AttnPanelRows* rows, float* corr) {
  SoftmaxHalf(S, nb, j0, key_pos, rows, corr, 0);
  SoftmaxHalf(S, nb, j0, key_pos, rows, corr, 1);
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
bool HalfRowKernelsAvailable() { return false; }
void RowScoresHalfAvx2(HalfType, const float* const*, int, int, const uint16_t* const*, int, float, float*) {}
void RowAccumulateHalfAvx2(HalfType, const float*, int, int, const uint16_t* const*, int, float*) {}
void BlockScoresAvx2(const float*, const float* const*, int, int, float*) {}
void BlockSoftmaxAvx2(float*, int, int64_t, const int32_t*, AttnPanelRows*, float*) {}
void BlockAccumulateAvx2(const float*, int, int, const float* const*, int, float*) {}
void RowScoresAvx2(const float* const*, int, int, const float* const*, int, float, float*) {}
void RowAccumulateAvx2(const float*, int, int, const float* const*, int, float*) {}
}  // namespace razor
#endif
