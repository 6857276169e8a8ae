// A Prometheus-style latency histogram: fixed upper bounds in seconds (vLLM's for the same metrics), counts
// per bucket, their sum and count. Written by the scheduler thread; copied whole into each metrics snapshot.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace razor::serve {

struct LatencyHistogram {
  static constexpr std::array<double, 14> kBounds = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08,
                                                     0.1,   0.25,  0.5,  1.0,  2.5,  5.0,  10.0};
  std::array<int64_t, kBounds.size()> counts{};  // observations <= kBounds[i] and > kBounds[i - 1]
  int64_t count = 0;                            // all observations (the +Inf bucket)
  double sum = 0;                               // seconds

  void Observe(double seconds);
  // `# HELP`, `# TYPE ... histogram`, cumulative `_bucket{le=...}` lines, `_sum`, `_count`.
  void Format(const std::string& name, const std::string& help, std::string* out) const;
};

}  // namespace razor::serve
