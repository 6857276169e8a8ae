// razor bench on the GPU: decode step time against its bandwidth floor, prefill tok/s, measured KV and device
// memory, per KV cache (full, razor, streaming) (bench_gpu.cpp).
#pragma once

#include <memory>
#include <vector>

#include "cli_common.h"

namespace razor::cli {

struct GpuBenchOptions {
  std::vector<int> contexts;    // tokens of context before the timed decode steps
  std::vector<int> batches;     // sequences decoded together
  std::vector<KvMode> modes;    // KV caches measured, one table row each
  KvCacheOptions cache;         // razor parameters (mode set per row)
  double synthetic_profile = -1;  // >= 0: that fraction of KV heads, seeded, as retrieval heads (no profiling)
  bool fill_pool = false;       // batch = as many sequences of the context as the KV pool holds
  int n_decode = 32;            // timed decode steps (median reported)
  int prefill_max = 32768;      // longer contexts are filled with synthetic K/V instead of a prefill
  KvType kv_type = KvType::kBF16;
  size_t kv_pool_bytes = 0;     // 0: the device's free memory
  uint64_t seed = 1;
};

int BenchOnGpu(const std::shared_ptr<LoadedModel>& m, const GpuBenchOptions& o);

}  // namespace razor::cli
