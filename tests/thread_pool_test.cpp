// ThreadPool: every index of a parallel-for runs exactly once, for static and dynamic splits, with more
// or fewer units than threads and grains that do not divide the range.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>
#include <vector>

#include "core/thread_pool.h"

namespace razor {
namespace {

// hits[i] = how many times index i was visited; calls = how many fn calls there were.
struct Visits {
  std::vector<std::atomic<int>> hits;
  std::atomic<int> calls{0};
  explicit Visits(int64_t n) : hits(static_cast<size_t>(n)) {}
  void Range(int64_t b, int64_t e) {
    calls.fetch_add(1);
    for (int64_t i = b; i < e; ++i) hits[static_cast<size_t>(i)].fetch_add(1);
  }
  bool EachOnce() const {
    for (const auto& h : hits)
      if (h.load() != 1) return false;
    return true;
  }
};

TEST(ThreadPool, ParallelForVisitsEveryIndexOnce) {
  for (int threads : {1, 2, 3, 5})
    for (int64_t n : {1, 2, 7, 64, 1001}) {
      ThreadPool pool(threads);
      Visits v(n);
      pool.ParallelFor(n, [&](int64_t b, int64_t e) { v.Range(b, e); });
      EXPECT_TRUE(v.EachOnce()) << "threads " << threads << " n " << n;
      EXPECT_LE(v.calls.load(), threads);
    }
}

TEST(ThreadPool, ParallelForDynamicVisitsEveryIndexOnceInGrains) {
  for (int threads : {1, 2, 3, 5})
    for (int64_t n : {1, 2, 7, 64, 1001})
      for (int64_t grain : {0, 1, 3, 16, 5000}) {
        ThreadPool pool(threads);
        Visits v(n);
        std::atomic<bool> too_long{false};
        const int64_t g = grain < 1 ? 1 : grain;
        pool.ParallelForDynamic(n, grain, [&](int64_t b, int64_t e) {
          if (e - b > g && !(threads == 1 || n <= g)) too_long.store(true);
          v.Range(b, e);
        });
        EXPECT_TRUE(v.EachOnce()) << "threads " << threads << " n " << n << " grain " << grain;
        EXPECT_FALSE(too_long.load()) << "a chunk longer than the grain";
        if (threads > 1 && n > g) {
          EXPECT_EQ(v.calls.load(), (n + g - 1) / g);
        }
      }
}

// A thread that stalls does not hold the others up: the thread that takes the first chunk waits (up to 5 s)
// until the rest of the range is done, which only happens if the other thread takes every other chunk.
TEST(ThreadPool, ParallelForDynamicHandsAStalledThreadsShareToOthers) {
  ThreadPool pool(2);
  const int64_t n = 64;
  Visits v(n);
  std::atomic<bool> first{true};
  std::atomic<int64_t> others_done{0};
  pool.ParallelForDynamic(n, 1, [&](int64_t b, int64_t e) {
    if (first.exchange(false)) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
      while (others_done.load() < n - 1 && std::chrono::steady_clock::now() < deadline)
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
    } else {
      others_done.fetch_add(e - b);
    }
    v.Range(b, e);
  });
  EXPECT_TRUE(v.EachOnce());
  EXPECT_EQ(others_done.load(), n - 1) << "the other thread should have taken the stalled thread's share";
}

}  // namespace
}  // namespace razor
