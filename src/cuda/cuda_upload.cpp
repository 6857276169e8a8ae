#include "cuda/cuda_upload.h"

#include <algorithm>
#include <cstring>

#include "cuda/cuda_check.h"
#include "cuda/cuda_op_timeline.h"

namespace razor {

CudaUploader::~CudaUploader() {
  if (base_) {
    cudaStreamSynchronize(stream_);
    cudaFreeHost(base_);
  }
}

uint8_t* CudaUploader::Stage(size_t n) {
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
  uint8_t* p = base_ + used_;
  used_ += need;
  return p;
}

void CudaUploader::Upload(void* dst, const void* src, size_t n) {
  const Piece piece{src, n};
  size_t offset = 0;
  UploadPieces(dst, &piece, 1, &offset);
}

size_t CudaUploader::PiecesBytes(const Piece* pieces, int n) {
  size_t total = 0;
  for (int i = 0; i < n; ++i) total = (total + 15) / 16 * 16 + pieces[i].bytes;
  return total;
}

size_t CudaUploader::UploadPieces(void* dst, const Piece* pieces, int n, size_t* offsets) {
  const size_t total = PiecesBytes(pieces, n);
  uint8_t* staged = total ? Stage(total) : nullptr;
  size_t at = 0;
  for (int i = 0; i < n; ++i) {
    at = (at + 15) / 16 * 16;
    offsets[i] = at;
    if (pieces[i].bytes) std::memcpy(staged + at, pieces[i].src, pieces[i].bytes);
    at += pieces[i].bytes;
  }
  if (total && timeline_) timeline_->Begin("Upload");
  if (total) RAZOR_CUDA_CHECK(cudaMemcpyAsync(dst, staged, total, cudaMemcpyHostToDevice, stream_));
  return total;
}

}  // namespace razor
