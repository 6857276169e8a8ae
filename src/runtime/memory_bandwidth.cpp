#include "runtime/memory_bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "ops/simd_dispatch.h"

namespace razor {
namespace {

RAZOR_VECTOR_CLONES float SumFloats(const float* p, int64_t n) {
  float acc[16] = {};
  for (int64_t i = 0; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += p[i + j];
  float s = 0;
  for (float a : acc) s += a;
  return s;
}

}  // namespace

double MeasureReadBandwidth(ThreadPool& pool, size_t bytes, int reps) {
  const int64_t n = static_cast<int64_t>(bytes / sizeof(float)) / 16 * 16;
  std::vector<float> buf(n, 1.0f);
  double best = 0;
  volatile float sink = 0;
  for (int r = 0; r < reps; ++r) {
    std::vector<float> partial(pool.size(), 0.0f);
    auto t0 = std::chrono::steady_clock::now();
    pool.RunOnAll([&](int i, int nt) {
      int64_t chunk = (n / nt) / 16 * 16;
      int64_t b = i * chunk, e = (i == nt - 1) ? n : b + chunk;
      partial[i] = SumFloats(buf.data() + b, e - b);
    });
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (float p : partial) sink = sink + p;
    best = std::max(best, n * sizeof(float) / s);
  }
  return best;
}

}  // namespace razor
