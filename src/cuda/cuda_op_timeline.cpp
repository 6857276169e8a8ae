#include "cuda/cuda_op_timeline.h"

#include <algorithm>
#include <cstdio>

#include "cuda/cuda_check.h"

namespace razor {

CudaOpTimeline::~CudaOpTimeline() {
  for (cudaEvent_t e : events_) cudaEventDestroy(e);
}

cudaEvent_t CudaOpTimeline::EventAt(size_t i) {
  while (events_.size() <= i) {
    cudaEvent_t e;
    RAZOR_CUDA_CHECK(cudaEventCreate(&e));
    events_.push_back(e);
  }
  return events_[i];
}

void CudaOpTimeline::Begin(const char* op) {
  RAZOR_CUDA_CHECK(cudaEventRecord(EventAt(ops_.size()), stream_));
  ops_.emplace_back(op);
}

void CudaOpTimeline::EndStep() {
  // The download is the last op begun; an event after it closes the step.
  cudaEvent_t end = EventAt(ops_.size());
  RAZOR_CUDA_CHECK(cudaEventRecord(end, stream_));
  RAZOR_CUDA_CHECK(cudaEventSynchronize(end));
  // Steps of one shape only (a decode step's op count): a step of another shape starts the count again, so the
  // table is of the run's last steps (decode, after prefill or the synthetic fill).
  if (ops_.size() != last_ops_) {
    totals_.clear();
    span_us_ = 0;
    steps_ = 0;
    last_ops_ = ops_.size();
  }
  if (ops_.size() >= 2) {
    for (size_t i = 0; i < ops_.size(); ++i) {
      float ms = 0;
      RAZOR_CUDA_CHECK(cudaEventElapsedTime(&ms, events_[i], events_[i + 1]));
      Total& t = totals_[ops_[i]];
      t.us += 1000.0 * ms;
      ++t.calls;
    }
    float span = 0;
    RAZOR_CUDA_CHECK(cudaEventElapsedTime(&span, events_[0], end));
    span_us_ += 1000.0 * span;
    ++steps_;
  }
  ops_.clear();
}

void CudaOpTimeline::Print() const {
  if (steps_ == 0) return;
  std::vector<std::pair<double, std::string>> rows;
  for (const auto& [name, t] : totals_) rows.emplace_back(t.us, name);
  std::sort(rows.rbegin(), rows.rend());
  std::fprintf(stderr, "cuda ops: %ld steps, GPU span %.0f us/step from the first operation to the download's end\n",
               steps_, span_us_ / steps_);
  for (const auto& [us, name] : rows)
    std::fprintf(stderr, "  %9.1f us/step  %6.1f calls/step  %s\n", us / steps_,
                 static_cast<double>(totals_.at(name).calls) / steps_, name.c_str());
}

}  // namespace razor
