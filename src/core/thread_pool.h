// A fixed pool of worker threads running one parallel-for at a time.
// The calling thread takes part, so a pool of n threads uses n-1 workers. Workers spin briefly on an
// atomic before sleeping, so the hundreds of small parallel-fors of one decode step do not each pay a
// futex wake-up.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace razor {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return n_threads_; }
  // Calls fn(thread_index, n_threads) once on every thread (caller is index 0); returns when all are done.
  void RunOnAll(const std::function<void(int, int)>& fn);
  // Splits [0, n) into contiguous chunks, one per thread: fn(begin, end).
  void ParallelFor(int64_t n, const std::function<void(int64_t, int64_t)>& fn);
  // Threads take chunks of `grain` units in turn from a shared counter until [0, n) is done: fn(begin, end),
  // several calls per thread. For memory-bound loops on a shared machine, where one thread may be
  // descheduled for a while: the others take over its share instead of waiting at the end.
  void ParallelForDynamic(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  static int DefaultThreadCount();
  // The CPUs this process may run on (its affinity mask; else hardware_concurrency; at least 1): the most
  // threads worth asking for.
  static int UsableCpuCount();

 private:
  void WorkerLoop(int index);

  int n_threads_;
  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable start_cv_;
  std::atomic<const std::function<void(int, int)>*> job_{nullptr};
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
};

}  // namespace razor
