// GPU time per backend operation, measured on the stream (RAZOR_CUDA_STATS=ops): an event is recorded where
// each operation begins, and after a step's download the time between one operation's event and the next is
// charged to the first (its kernels, copies and the idle gaps before the next). Printed at exit as µs per step,
// against the step's GPU span from its first operation to its download. A diagnostic: each event costs the
// host ~2 µs, so the step itself runs a little slower than without it. The table covers the last steps of
// one shape (the same number of operations): a bench's decode steps.
#pragma once

#include <cuda_runtime.h>

#include <map>
#include <string>
#include <vector>

namespace razor {

class CudaOpTimeline {
 public:
  explicit CudaOpTimeline(cudaStream_t stream) : stream_(stream) {}
  ~CudaOpTimeline();
  CudaOpTimeline(const CudaOpTimeline&) = delete;
  CudaOpTimeline& operator=(const CudaOpTimeline&) = delete;

  // Marks the start of an operation on the stream; Relabel names the last one begun more closely.
  void Begin(const char* op);
  void Relabel(std::string op) { ops_.back() = std::move(op); }
  // After the stream has synchronized at a download: charges the step's marks, the last one to the download.
  void EndStep();
  // The table, to stderr (nothing when no step was timed).
  void Print() const;

 private:
  cudaEvent_t EventAt(size_t i);

  cudaStream_t stream_;
  std::vector<cudaEvent_t> events_;     // a pool, reused every step
  std::vector<std::string> ops_;        // this step's marks, in order (events_[i] for ops_[i])
  struct Total {
    double us = 0;
    long calls = 0;
  };
  std::map<std::string, Total> totals_;  // by operation, over every timed step
  double span_us_ = 0;                    // first mark to the download's end, summed over steps
  long steps_ = 0;
  size_t last_ops_ = 0;                   // the op count of the steps counted
};

}  // namespace razor
