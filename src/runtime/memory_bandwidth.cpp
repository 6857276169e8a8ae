#include "runtime/memory_bandwidth.h"

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "ops/elementwise.h"

namespace razor {

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
      partial[i] = SumOf(buf.data() + b, e - b);  // vectorised streaming read
    });
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    for (float p : partial) sink = sink + p;
    best = std::max(best, n * sizeof(float) / s);
  }
  return best;
}

}  // namespace razor
