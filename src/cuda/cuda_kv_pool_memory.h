// A KV block pool's bytes in device memory: one cudaMalloc, and the cache's row stores, loads and moves as
// kernels on the backend's stream (offsets copied to the device with each call).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "kv/kv_pool_memory.h"

typedef struct CUstream_st* cudaStream_t;

namespace razor {

class CudaUploader;

class CudaKvPoolMemory final : public KvPoolMemory {
 public:
  // Works on the uploader's stream (the backend's); shares it, so it may outlive the backend's other parts.
  explicit CudaKvPoolMemory(std::shared_ptr<CudaUploader> uploader);
  ~CudaKvPoolMemory() override;
  bool host_visible() const override { return false; }
  bool Reserve(size_t bytes) override;
  uint8_t* base() const override { return base_; }
  void StoreRows(KvType type, int head_dim, const float* k, const float* v, const int64_t* key_offsets,
                 int64_t value_delta, int64_t n) override;
  void BeginStores() override { batching_ = true; }
  void EndStores() override;
  void LoadRows(KvType type, int head_dim, const int64_t* offsets, int64_t n, float* out) override;
  void CopyRows(size_t row_bytes, const int64_t* src, const int64_t* dst, int64_t n) override;
  void SumRows(KvType type, int head_dim, const int64_t* key_offsets, int64_t value_delta, int64_t n, double* sum_k,
               double* sum_v) override;

 private:
  // Device copies of n offsets (two sets at most in flight per call).
  int64_t* Offsets(int which, const int64_t* host, int64_t n);
  void* Scratch(size_t bytes);
  void FlushStores();  // the recorded stores as one copy and one kernel

  // Stores recorded since BeginStores: rows from k / v on, consecutive, all of one type, width and value delta.
  bool batching_ = false;
  std::vector<int64_t> pending_offsets_;
  const float* pending_k_ = nullptr;
  const float* pending_v_ = nullptr;
  KvType pending_type_ = KvType::kF32;
  int pending_head_dim_ = 0;
  int64_t pending_value_delta_ = 0;

  std::shared_ptr<CudaUploader> uploader_;
  cudaStream_t stream_;
  uint8_t* base_ = nullptr;
  int64_t* offsets_[2] = {nullptr, nullptr};
  int64_t offsets_cap_[2] = {0, 0};
  void* scratch_ = nullptr;
  size_t scratch_cap_ = 0;
};

}  // namespace razor
