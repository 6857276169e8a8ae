#include "ops/matvec_fp32.h"

#include <cstring>
#include <vector>

#include "ops/dequantize.h"
#include "ops/elementwise.h"
#include "ops/fp16.h"
#include "ops/quant_blocks.h"

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace razor {
namespace {

// Scalar twin of the fused kernels: same block order, fp32 math.
float RowDotScalar(TensorType type, const uint8_t* row, const float* x, int64_t cols) {
  float sum = 0.0f;
  const int64_t nb = cols / 32;
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * 32;
    float s = 0.0f;
    if (type == TensorType::Q4_1) {
      BlockQ4_1 blk;
      std::memcpy(&blk, row + b * sizeof blk, sizeof blk);
      float sx = 0.0f;
      for (int i = 0; i < 16; ++i) {
        s += (blk.qs[i] & 0x0F) * xb[i] + (blk.qs[i] >> 4) * xb[i + 16];
        sx += xb[i] + xb[i + 16];
      }
      sum += HalfToFloat(blk.d) * s + HalfToFloat(blk.m) * sx;
    } else {  // Q8_0
      BlockQ8_0 blk;
      std::memcpy(&blk, row + b * sizeof blk, sizeof blk);
      for (int i = 0; i < 32; ++i) s += blk.qs[i] * xb[i];
      sum += HalfToFloat(blk.d) * s;
    }
  }
  return sum;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("avx2,fma,f16c"))) inline float HorizontalSum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_shuffle_ps(lo, lo, 1));
  return _mm_cvtss_f32(lo);
}

__attribute__((target("avx2,fma,f16c"))) float RowDotQ4_1Avx2(const uint8_t* row, const float* x, int64_t nb) {
  __m256 acc = _mm256_setzero_ps();
  __m256 acc_min = _mm256_setzero_ps();  // Σ_b m_b * (x block)
  const __m128i low_mask = _mm_set1_epi8(0x0F);
  for (int64_t b = 0; b < nb; ++b) {
    const auto* blk = reinterpret_cast<const BlockQ4_1*>(row + b * sizeof(BlockQ4_1));
    const float* xb = x + b * 32;
    uint16_t dh, mh;
    std::memcpy(&dh, &blk->d, 2);
    std::memcpy(&mh, &blk->m, 2);
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk->qs));
    const __m128i lo = _mm_and_si128(q, low_mask);
    const __m128i hi = _mm_and_si128(_mm_srli_epi16(q, 4), low_mask);
    const __m256 x0 = _mm256_loadu_ps(xb), x1 = _mm256_loadu_ps(xb + 8);
    const __m256 x2 = _mm256_loadu_ps(xb + 16), x3 = _mm256_loadu_ps(xb + 24);
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(lo)), x0);
    v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(lo, 8))), x1, v);
    v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(hi)), x2, v);
    v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_srli_si128(hi, 8))), x3, v);
    const __m256 d = _mm256_set1_ps(_cvtsh_ss(dh));
    const __m256 m = _mm256_set1_ps(_cvtsh_ss(mh));
    acc = _mm256_fmadd_ps(d, v, acc);
    acc_min = _mm256_fmadd_ps(m, _mm256_add_ps(_mm256_add_ps(x0, x1), _mm256_add_ps(x2, x3)), acc_min);
  }
  return HorizontalSum(_mm256_add_ps(acc, acc_min));
}

__attribute__((target("avx2,fma,f16c"))) float RowDotQ8_0Avx2(const uint8_t* row, const float* x, int64_t nb) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const auto* blk = reinterpret_cast<const BlockQ8_0*>(row + b * sizeof(BlockQ8_0));
    const float* xb = x + b * 32;
    uint16_t dh;
    std::memcpy(&dh, &blk->d, 2);
    const __m128i q0 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk->qs));
    const __m128i q1 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk->qs + 16));
    __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q0)), _mm256_loadu_ps(xb));
    v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q0, 8))), _mm256_loadu_ps(xb + 8), v);
    v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(q1)), _mm256_loadu_ps(xb + 16), v);
    v = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(q1, 8))), _mm256_loadu_ps(xb + 24), v);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(dh)), v, acc);
  }
  return HorizontalSum(acc);
}

bool HasAvx2() {
  static const bool has = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  }();
  return has;
}
#endif

}  // namespace

void MatVecFp32(const TensorView& w, const float* x, float* y, ThreadPool& pool, bool use_simd) {
  const int64_t cols = w.cols(), nb = cols / 32;
  const TensorType t = w.type;
  const bool fused = t == TensorType::Q4_1 || t == TensorType::Q8_0;
#if defined(__x86_64__) && defined(__GNUC__)
  const bool simd = use_simd && HasAvx2();
#else
  const bool simd = false;
#endif
  pool.ParallelFor(w.rows(), [&](int64_t r0, int64_t r1) {
    thread_local std::vector<float> buf;
    for (int64_t r = r0; r < r1; ++r) {
      const uint8_t* row = w.row(r);
#if defined(__x86_64__) && defined(__GNUC__)
      if (simd && t == TensorType::Q4_1) {
        y[r] = RowDotQ4_1Avx2(row, x, nb);
        continue;
      }
      if (simd && t == TensorType::Q8_0) {
        y[r] = RowDotQ8_0Avx2(row, x, nb);
        continue;
      }
#endif
      if (fused) {
        y[r] = RowDotScalar(t, row, x, cols);
        continue;
      }
      buf.resize(cols);
      DequantizeRow(t, row, buf.data(), cols);
      y[r] = Dot(buf.data(), x, cols);
    }
  });
}

}  // namespace razor
