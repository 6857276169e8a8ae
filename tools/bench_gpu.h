// razor bench on the GPU: decode step time against its bandwidth floor, prefill tok/s (bench_gpu.cpp).
#pragma once

#include <memory>
#include <vector>

#include "cli_common.h"

namespace razor::cli {

struct GpuBenchOptions {
  std::vector<int> contexts;  // tokens of context before the timed decode steps
  std::vector<int> batches;   // sequences decoded together
  int n_decode = 32;          // timed decode steps (median reported)
  int prefill_max = 32768;    // longer contexts are filled with synthetic K/V instead of a prefill
  KvType kv_type = KvType::kBF16;
  uint64_t seed = 1;
};

int BenchOnGpu(const std::shared_ptr<LoadedModel>& m, const GpuBenchOptions& o);

}  // namespace razor::cli
