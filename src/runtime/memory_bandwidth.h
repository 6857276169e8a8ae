// Measures this machine's sustained read bandwidth (the floor for memory-bound decode).
#pragma once

#include <cstddef>

#include "core/thread_pool.h"

namespace razor {

// Streams a `bytes`-sized buffer (much larger than the caches) with all pool threads; best of `reps`.
// Returns bytes per second.
double MeasureReadBandwidth(ThreadPool& pool, size_t bytes = size_t(1) << 30, int reps = 5);

}  // namespace razor
