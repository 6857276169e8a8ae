// Where a KvBlockPool's bytes live, and the three data movements the KV cache does on them. The host form
// (HostKvPoolMemory) maps address space lazily and returns freed pages; a device backend implements the same
// calls on one device allocation (src/cuda/cuda_kv_pool_memory.h), so RazorKvCache runs unchanged on either.
//
// Offsets are bytes from the start of the reserved region. Row sources given as float pointers are in the
// memory's own address space (host memory for the host form, device memory for a device form: the backend's
// activation buffers); `out` of LoadRows is always host memory.
#pragma once

#include <cstddef>
#include <cstdint>

#include "kv/kv_type.h"

namespace razor {

class KvPoolMemory {
 public:
  virtual ~KvPoolMemory() = default;
  // True when base() is a host address the CPU may read and write.
  virtual bool host_visible() const = 0;
  // Reserves `bytes` once; false when refused (the pool then asks for less).
  virtual bool Reserve(size_t bytes) = 0;
  virtual uint8_t* base() const = 0;
  // Freed blocks [offset, offset + bytes): their memory may go back to the system (whole pages only).
  virtual void Discard(size_t offset, size_t bytes) {}
  // True when Discard gives memory back (the pool then releases free blocks past its threshold); a device
  // allocation keeps its bytes, and its free blocks simply wait for reuse.
  virtual bool discards() const { return false; }

  // Key row i (k + i * head_dim, fp32) is stored as `type` at key_offsets[i], value row i at
  // key_offsets[i] + value_delta.   k, v: [n, head_dim]
  virtual void StoreRows(KvType type, int head_dim, const float* k, const float* v, const int64_t* key_offsets,
                         int64_t value_delta, int64_t n) = 0;
  // Between BeginStores and EndStores, StoreRows may only record its rows (key_offsets is copied; k and v must
  // stay valid and unchanged) and store them at EndStores or the next other call: a device joins one layer's
  // stores for every sequence of a step into one copy and one kernel (two calls a sequence and layer before).
  // The host form stores at once.
  virtual void BeginStores() {}
  virtual void EndStores() {}
  // Rows stored as `type` at offsets[i], widened into host out[i * head_dim ...].   out: [n, head_dim] fp32
  virtual void LoadRows(KvType type, int head_dim, const int64_t* offsets, int64_t n, float* out) = 0;
  // Copies row_bytes from src[i] to dst[i] for every i, as if every source were read before any write
  // (sources and destinations may overlap).
  virtual void CopyRows(size_t row_bytes, const int64_t* src, const int64_t* dst, int64_t n) = 0;
  // Adds every key row (stored as `type` at key_offsets[i]) widened to fp32 into host sum_k, and every value
  // row (at key_offsets[i] + value_delta) into host sum_v, in double: the compensation token's sums, reduced
  // where the rows live (a device adds them on the device and returns only the sums).   sum_k, sum_v: [head_dim]
  virtual void SumRows(KvType type, int head_dim, const int64_t* key_offsets, int64_t value_delta, int64_t n,
                       double* sum_k, double* sum_v) = 0;
};

// Host memory: MAP_NORESERVE address space, pages resident when first written, madvise(DONTNEED) on Discard.
class HostKvPoolMemory final : public KvPoolMemory {
 public:
  ~HostKvPoolMemory() override;
  bool host_visible() const override { return true; }
  bool Reserve(size_t bytes) override;
  uint8_t* base() const override { return base_; }
  void Discard(size_t offset, size_t bytes) override;
  bool discards() const override { return true; }
  void StoreRows(KvType type, int head_dim, const float* k, const float* v, const int64_t* key_offsets,
                 int64_t value_delta, int64_t n) override;
  void LoadRows(KvType type, int head_dim, const int64_t* offsets, int64_t n, float* out) override;
  void CopyRows(size_t row_bytes, const int64_t* src, const int64_t* dst, int64_t n) override;
  void SumRows(KvType type, int head_dim, const int64_t* key_offsets, int64_t value_delta, int64_t n, double* sum_k,
               double* sum_v) override;

 private:
  uint8_t* base_ = nullptr;
  size_t reserved_ = 0;
};

}  // namespace razor
