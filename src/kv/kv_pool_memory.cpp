#include "kv/kv_pool_memory.h"

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <vector>

namespace razor {
namespace {

size_t PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

}  // namespace

HostKvPoolMemory::~HostKvPoolMemory() {
  if (base_) munmap(base_, reserved_);
}

bool HostKvPoolMemory::Reserve(size_t bytes) {
  if (base_ || bytes == 0) return false;
  bytes = (bytes + PageSize() - 1) / PageSize() * PageSize();
  // Address space only: nothing is committed or resident until a block is written.
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) return false;
  base_ = static_cast<uint8_t*>(p);
  reserved_ = bytes;
  return true;
}

void HostKvPoolMemory::Discard(size_t offset, size_t bytes) {
  // Only the whole pages inside the range (a page shared with a block in use stays).
  const uintptr_t page = PageSize();
  const uintptr_t lo = (reinterpret_cast<uintptr_t>(base_ + offset) + page - 1) / page * page;
  const uintptr_t hi = reinterpret_cast<uintptr_t>(base_ + offset + bytes) / page * page;
  if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
}

void HostKvPoolMemory::StoreRows(KvType type, int head_dim, const float* k, const float* v,
                                 const int64_t* key_offsets, int64_t value_delta, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    StoreKvRow(type, k + i * head_dim, head_dim, base_ + key_offsets[i]);
    StoreKvRow(type, v + i * head_dim, head_dim, base_ + key_offsets[i] + value_delta);
  }
}

void HostKvPoolMemory::LoadRows(KvType type, int head_dim, const int64_t* offsets, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) LoadKvRow(type, base_ + offsets[i], head_dim, out + i * head_dim);
}

void HostKvPoolMemory::CopyRows(size_t row_bytes, const int64_t* src, const int64_t* dst, int64_t n) {
  std::vector<uint8_t> staged(static_cast<size_t>(n) * row_bytes);  // every read before any write
  for (int64_t i = 0; i < n; ++i) std::memcpy(&staged[i * row_bytes], base_ + src[i], row_bytes);
  for (int64_t i = 0; i < n; ++i) std::memcpy(base_ + dst[i], &staged[i * row_bytes], row_bytes);
}

void HostKvPoolMemory::SumRows(KvType type, int head_dim, const int64_t* key_offsets, int64_t value_delta, int64_t n,
                               double* sum_k, double* sum_v) {
  std::vector<float> k(head_dim), v(head_dim);
  for (int64_t i = 0; i < n; ++i) {  // row by row, in order: the same sums as adding the tokens one at a time
    LoadKvRow(type, base_ + key_offsets[i], head_dim, k.data());
    LoadKvRow(type, base_ + key_offsets[i] + value_delta, head_dim, v.data());
    for (int d = 0; d < head_dim; ++d) {
      sum_k[d] += k[d];
      sum_v[d] += v[d];
    }
  }
}

}  // namespace razor
