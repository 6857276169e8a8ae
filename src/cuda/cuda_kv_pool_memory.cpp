#include "cuda/cuda_kv_pool_memory.h"

#include <vector>

#include "cuda/cuda_check.h"
#include "cuda/cuda_op_timeline.h"
#include "cuda/cuda_kernels.h"
#include "cuda/cuda_upload.h"

namespace razor {

CudaKvPoolMemory::CudaKvPoolMemory(std::shared_ptr<CudaUploader> uploader)
    : uploader_(std::move(uploader)), stream_(uploader_->stream()) {}

CudaKvPoolMemory::~CudaKvPoolMemory() {
  cudaStreamSynchronize(stream_);
  cudaFree(base_);
  cudaFree(offsets_[0]);
  cudaFree(offsets_[1]);
  cudaFree(scratch_);
}

bool CudaKvPoolMemory::Reserve(size_t bytes) {
  if (base_ || bytes == 0) return false;
  void* p = nullptr;
  if (cudaMalloc(&p, bytes) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky-free allocation error
    return false;
  }
  base_ = static_cast<uint8_t*>(p);
  return true;
}

int64_t* CudaKvPoolMemory::Offsets(int which, const int64_t* host, int64_t n) {
  if (n > offsets_cap_[which]) {
    RAZOR_CUDA_CHECK(cudaStreamSynchronize(stream_));
    cudaFree(offsets_[which]);
    offsets_cap_[which] = std::max<int64_t>(n, 2 * offsets_cap_[which]);
    RAZOR_CUDA_CHECK(cudaMalloc(&offsets_[which], offsets_cap_[which] * sizeof(int64_t)));
  }
  uploader_->Upload(offsets_[which], host, n * sizeof(int64_t));
  return offsets_[which];
}

void* CudaKvPoolMemory::Scratch(size_t bytes) {
  if (bytes > scratch_cap_) {
    RAZOR_CUDA_CHECK(cudaStreamSynchronize(stream_));
    cudaFree(scratch_);
    scratch_cap_ = std::max(bytes, 2 * scratch_cap_);
    RAZOR_CUDA_CHECK(cudaMalloc(&scratch_, scratch_cap_));
  }
  return scratch_;
}

void CudaKvPoolMemory::StoreRows(KvType type, int head_dim, const float* k, const float* v,
                                 const int64_t* key_offsets, int64_t value_delta, int64_t n) {
  if (n == 0) return;
  if (!batching_) {
    const int64_t* d = Offsets(0, key_offsets, n);
    if (CudaOpTimeline* t = uploader_->timeline()) t->Begin("StoreKvRows");
    RAZOR_CUDA_CHECK(cuda::StoreKvRows(base_, static_cast<int>(type), head_dim, k, v, d, value_delta, n, stream_));
    return;
  }
  // Joins the recorded rows when its rows follow theirs in the same buffers (one layer's sequences do).
  const auto rows = static_cast<int64_t>(pending_offsets_.size());
  const bool joins = rows > 0 && type == pending_type_ && head_dim == pending_head_dim_ &&
                     value_delta == pending_value_delta_ && k == pending_k_ + rows * head_dim &&
                     v == pending_v_ + rows * head_dim;
  if (!joins) {
    FlushStores();
    pending_k_ = k;
    pending_v_ = v;
    pending_type_ = type;
    pending_head_dim_ = head_dim;
    pending_value_delta_ = value_delta;
  }
  pending_offsets_.insert(pending_offsets_.end(), key_offsets, key_offsets + n);
}

void CudaKvPoolMemory::FlushStores() {
  if (pending_offsets_.empty()) return;
  const auto n = static_cast<int64_t>(pending_offsets_.size());
  const int64_t* d = Offsets(0, pending_offsets_.data(), n);
  if (CudaOpTimeline* t = uploader_->timeline()) t->Begin("StoreKvRows");
  RAZOR_CUDA_CHECK(cuda::StoreKvRows(base_, static_cast<int>(pending_type_), pending_head_dim_, pending_k_,
                                     pending_v_, d, pending_value_delta_, n, stream_));
  pending_offsets_.clear();
}

void CudaKvPoolMemory::EndStores() {
  FlushStores();
  batching_ = false;
}

void CudaKvPoolMemory::LoadRows(KvType type, int head_dim, const int64_t* offsets, int64_t n, float* out) {
  FlushStores();
  if (n == 0) return;
  const int64_t* d = Offsets(0, offsets, n);
  auto* rows = static_cast<float*>(Scratch(static_cast<size_t>(n) * head_dim * sizeof(float)));
  RAZOR_CUDA_CHECK(cuda::LoadKvRows(base_, static_cast<int>(type), head_dim, d, n, rows, stream_));
  RAZOR_CUDA_CHECK(cudaMemcpyAsync(out, rows, static_cast<size_t>(n) * head_dim * sizeof(float),
                                   cudaMemcpyDeviceToHost, stream_));
  RAZOR_CUDA_CHECK(cudaStreamSynchronize(stream_));
  uploader_->Reset();
}

void CudaKvPoolMemory::CopyRows(size_t row_bytes, const int64_t* src, const int64_t* dst, int64_t n) {
  FlushStores();
  if (n == 0) return;
  const int64_t* ds = Offsets(0, src, n);
  const int64_t* dd = Offsets(1, dst, n);
  auto* staged = static_cast<uint8_t*>(Scratch(static_cast<size_t>(n) * row_bytes));
  // Every source into the staging area first, then every destination: overlap-safe.
  RAZOR_CUDA_CHECK(cuda::GatherRows(base_, row_bytes, ds, n, staged, stream_));
  RAZOR_CUDA_CHECK(cuda::ScatterRows(base_, row_bytes, dd, n, staged, stream_));
}

void CudaKvPoolMemory::SumRows(KvType type, int head_dim, const int64_t* key_offsets, int64_t value_delta, int64_t n,
                               double* sum_k, double* sum_v) {
  FlushStores();
  if (n == 0) return;
  const int64_t* d = Offsets(0, key_offsets, n);
  auto* sums = static_cast<double*>(Scratch(2 * static_cast<size_t>(head_dim) * sizeof(double)));
  RAZOR_CUDA_CHECK(cudaMemsetAsync(sums, 0, 2 * static_cast<size_t>(head_dim) * sizeof(double), stream_));
  RAZOR_CUDA_CHECK(cuda::SumKvRows(base_, static_cast<int>(type), head_dim, d, value_delta, n, sums, stream_));
  std::vector<double> host(2 * static_cast<size_t>(head_dim));
  RAZOR_CUDA_CHECK(cudaMemcpyAsync(host.data(), sums, host.size() * sizeof(double), cudaMemcpyDeviceToHost, stream_));
  RAZOR_CUDA_CHECK(cudaStreamSynchronize(stream_));
  uploader_->Reset();
  for (int i = 0; i < head_dim; ++i) {
    sum_k[i] += host[i];
    sum_v[i] += host[head_dim + i];
  }
}

}  // namespace razor
