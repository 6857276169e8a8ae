#include "runtime/compute_peak.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define RAZOR_PEAK_X86 1
#endif

namespace razor {
namespace {

constexpr int64_t kIters = 4'000'000;  // per thread and rep: 4M x 10 chains x 8 lanes x 2 = 640 MFLOP
constexpr int kChains = 10;            // > FMA latency (4) x ports (2): the pipes never wait

#if RAZOR_PEAK_X86
__attribute__((target("avx2,fma"))) float FmaChainsAvx2(int64_t iters) {
  __m256 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm256_set1_ps(static_cast<float>(j));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kChains; ++j) acc[j] = _mm256_fmadd_ps(acc[j], a, b);
  __m256 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm256_add_ps(s, acc[j]);
  alignas(32) float out[8];
  _mm256_store_ps(out, s);
  return out[0];
}

__attribute__((target("avx512f"))) float FmaChainsAvx512(int64_t iters) {
  __m512 acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = _mm512_set1_ps(static_cast<float>(j));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kChains; ++j) acc[j] = _mm512_fmadd_ps(acc[j], a, b);
  __m512 s = acc[0];
  for (int j = 1; j < kChains; ++j) s = _mm512_add_ps(s, acc[j]);
  return _mm512_reduce_add_ps(s);
}
#endif

float FmaChainsScalar(int64_t iters) {
  float acc[kChains];
  for (int j = 0; j < kChains; ++j) acc[j] = static_cast<float>(j);
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < kChains; ++j) acc[j] = acc[j] * 0.999999f + 1e-7f;
  float s = 0;
  for (float v : acc) s += v;
  return s;
}

}  // namespace

double MeasureFmaPeak(ThreadPool& pool, int reps) {
  bool avx2 = false, avx512 = false;
#if RAZOR_PEAK_X86
  __builtin_cpu_init();
  avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  avx512 = __builtin_cpu_supports("avx512f");
#endif
  const double flops_per_thread = 2.0 * kIters * kChains * (avx512 ? 16 : avx2 ? 8 : 1);
  double best = 0;
  volatile float sink = 0;
  for (int r = 0; r < reps; ++r) {
    std::vector<float> partial(pool.size(), 0.0f);
    auto t0 = std::chrono::steady_clock::now();
    pool.RunOnAll([&](int i, int) {
#if RAZOR_PEAK_X86
      if (avx512) {
        partial[i] = FmaChainsAvx512(kIters);
        return;
      }
      if (avx2) {
        partial[i] = FmaChainsAvx2(kIters);
        return;
      }
#endif
      partial[i] = FmaChainsScalar(kIters);
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (float p : partial) sink = sink + p;
    best = std::max(best, flops_per_thread * pool.size() / s);
  }
  return best;
}

}  // namespace razor
