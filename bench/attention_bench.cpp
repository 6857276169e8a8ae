// Micro-benchmark of decode attention (numbers printed, nothing asserted): one query token of G group
// heads against H paged KV heads of N keys each (64-token pool blocks allocated one by one, like the cache's
// block pool), the way a decode step of the model walks the full cache.
// Build (after building razor_lib in build/release):
//   g++ -O2 -std=c++20 -Isrc bench/attention_bench.cpp build/release/librazor_lib.a -lpthread -o /tmp/attention_bench
// Run:  /tmp/attention_bench [keys=8192] [kv_heads=48] [group=7] [head_dim=64] [steps=15]   (Qwen2.5-0.5B at 8K by default)
// Prints ms per decode step over all heads and the KV bytes read per second.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "ops/attention.h"

int main(int argc, char** argv) {
  const int64_t n = argc > 1 ? std::atoll(argv[1]) : 8192;
  const int heads = argc > 2 ? std::atoi(argv[2]) : 48;
  const int group = argc > 3 ? std::atoi(argv[3]) : 7;
  const int d = argc > 4 ? std::atoi(argv[4]) : 64;
  const int reps = argc > 5 ? std::atoi(argv[5]) : 15;
  constexpr int64_t kBlock = 64;
  const int64_t n_blocks = (n + kBlock - 1) / kBlock;
  std::mt19937 rng(1);
  std::normal_distribution<float> normal;
  std::vector<std::unique_ptr<float[]>> storage;  // one allocation per pool block, as the block pool does
  std::vector<std::vector<const float*>> kb(heads), vb(heads);
  for (int h = 0; h < heads; ++h)
    for (int64_t b = 0; b < n_blocks; ++b)
      for (auto* list : {&kb[h], &vb[h]}) {
        storage.emplace_back(new float[kBlock * d]);
        for (int64_t i = 0; i < kBlock * d; ++i) storage.back()[i] = normal(rng);
        list->push_back(storage.back().get());
      }
  std::vector<float> q(static_cast<size_t>(group) * d), out(q.size());
  for (auto& v : q) v = normal(rng);
  const int32_t pos = static_cast<int32_t>(n - 1);
  auto step = [&] {
    for (int h = 0; h < heads; ++h) {
      razor::KvHeadView kv;
      kv.k_blocks = kb[h].data();
      kv.v_blocks = vb[h].data();
      kv.block_tokens = kBlock;
      kv.len = n;
      razor::AttentionQuery a;
      a.q = q.data();
      a.q_token_stride = group * d;
      a.positions = &pos;
      a.n_tokens = 1;
      a.n_group_heads = group;
      a.head_dim = d;
      a.scale = 1.0f / std::sqrt(static_cast<float>(d));
      a.out = out.data();
      a.out_token_stride = group * d;
      razor::AttendFlash(kv, a);
    }
  };
  step();
  std::vector<double> ms;
  for (int rep = 0; rep < reps; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    step();
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  const double bytes = 2.0 * heads * n * d * sizeof(float);
  const double med = ms[ms.size() / 2];
  std::printf("keys %lld, %d KV heads x %d group heads, d %d: %.2f ms per step (median of %d), %.1f GB/s of KV\n",
              static_cast<long long>(n), heads, group, d, med, reps, bytes / (med * 1e6));
}
