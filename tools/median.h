// The median of a benchmark's repeated measurements (the figure every razor bench table reports).
#pragma once

#include <algorithm>
#include <vector>

namespace razor::cli {

inline double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace razor::cli
