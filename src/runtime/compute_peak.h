// Measures this machine's fp32 multiply-add peak (the floor for compute-bound prefill).
#pragma once

#include "core/thread_pool.h"

namespace razor {

// Every pool thread runs independent fp32 FMA chains in registers (no memory traffic), 16 lanes wide with
// AVX-512, 8 with AVX2 + FMA, scalar without; best of `reps`. Returns FLOP/s (one FMA = 2 FLOPs), all threads together.
// A matrix multiply of fp32 numbers cannot run faster than this on these threads.
double MeasureFmaPeak(ThreadPool& pool, int reps = 5);

}  // namespace razor
