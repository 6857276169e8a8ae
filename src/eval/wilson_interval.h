// The Wilson score interval of a binomial proportion (Wilson 1927): the accuracy interval `razor eval
// --samples K` reports per cell. Unlike the normal approximation it stays inside [0, 1] and is not empty at
// 0 of n or n of n.
#pragma once

#include <cstdint>

namespace razor::eval {

struct Interval {
  double lo = 0, hi = 1;  // proportions, in [0, 1]
};

// Interval for `successes` of `n` trials at normal quantile z (1.959964: 95 %). n == 0: {0, 1} (no
// information). successes is clamped to [0, n].
Interval WilsonInterval(int64_t successes, int64_t n, double z = 1.959964);

}  // namespace razor::eval
