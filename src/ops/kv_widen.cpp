#include "ops/kv_widen.h"

#include <immintrin.h>

#include <cstring>

namespace razor {
namespace {

bool HasF16c() {
  static const bool ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("f16c");
  return ok;
}

__attribute__((target("avx2,f16c"))) void WidenF16Avx2(const uint16_t* src, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m256 a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    const __m256 b = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 8)));
    _mm256_storeu_ps(out + i, a);
    _mm256_storeu_ps(out + i + 8, b);
  }
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  if (i < n) LoadKvRow(KvType::kF16, src + i, static_cast<int>(n - i), out + i);
}

bool HasAvx512() {
  static const bool ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
  return ok;
}

__attribute__((target("avx512f,avx512bw"))) void WidenF16Avx512(const uint16_t* src, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m512 a = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
    const __m512 b = _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i + 16)));
    _mm512_storeu_ps(out + i, a);
    _mm512_storeu_ps(out + i + 16, b);
  }
  for (; i + 16 <= n; i += 16)
    _mm512_storeu_ps(out + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i))));
  if (i < n) WidenF16Avx2(src + i, n - i, out + i);
}

__attribute__((target("avx2"))) void WidenBf16Avx2(const uint16_t* src, int64_t n, float* out) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i h = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i)));
    _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(h, 16)));
  }
  if (i < n) LoadKvRow(KvType::kBF16, src + i, static_cast<int>(n - i), out + i);
}

}  // namespace

void WidenKvValues(KvType t, const void* src, int64_t n, float* out) {
  const auto* h = static_cast<const uint16_t*>(src);
  switch (t) {
    case KvType::kF32: std::memcpy(out, src, static_cast<size_t>(n) * sizeof(float)); return;
    case KvType::kF16:
      if (HasAvx512()) return WidenF16Avx512(h, n, out);
      if (HasF16c()) return WidenF16Avx2(h, n, out);
      break;
    case KvType::kBF16:
      if (HasF16c()) return WidenBf16Avx2(h, n, out);
      break;
  }
  LoadKvRow(t, src, static_cast<int>(n), out);
}

}  // namespace razor
