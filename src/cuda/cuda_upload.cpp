#include "cuda/cuda_upload.h"

#include <algorithm>
#include <cstring>

#include "cuda/cuda_check.h"

namespace razor {

CudaUploader::~CudaUploader() {
  if (base_) {
    cudaStreamSynchronize(stream_);
    cudaFreeHost(base_);
  }
}

void CudaUploader::Upload(void* dst, const void* src, size_t n) {
  if (n == 0) return;
  const size_t need = (n + 255) / 256 * 256;
  if (used_ + need > cap_) {
    RAZOR_CUDA_CHECK(cudaStreamSynchronize(stream_));  // every staged copy has been read
    used_ = 0;
    if (need > cap_) {
      if (base_) RAZOR_CUDA_CHECK(cudaFreeHost(base_));
      cap_ = std::max(need, std::max(cap_ * 2, size_t{64} << 20));
      RAZOR_CUDA_CHECK(cudaMallocHost(&base_, cap_));
    }
  }
  std::memcpy(base_ + used_, src, n);
  RAZOR_CUDA_CHECK(cudaMemcpyAsync(dst, base_ + used_, n, cudaMemcpyHostToDevice, stream_));
  used_ += need;
}

}  // namespace razor
