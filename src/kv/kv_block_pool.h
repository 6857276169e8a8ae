// One pool of fixed-size KV blocks shared by every sequence of an engine, addressed by integer ids:
// block `id` lives at base() + id * block_bytes() (one reserved region, so a device backend can implement the
// same ids as offsets into one device allocation). The pool has a fixed capacity; Allocate() fails (returns
// false, takes nothing) when it is exhausted, and the caller turns that into an error for that sequence only.
//
// Memory: a KvPoolMemory holds the bytes (host by default: reserved without backing, MAP_NORESERVE, a block's
// pages resident when first written; a device backend passes its own). Freed blocks go to a free list for
// reuse; once the free-but-resident bytes exceed a threshold they are discarded (host: madvise(MADV_DONTNEED)
// on their whole pages), so RSS really drops when a RazorAttention cache drops tokens. Thread-safe (one mutex).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "kv/kv_pool_memory.h"

namespace razor {

struct KvBlockPoolOptions {
  size_t capacity_bytes = 0;                          // 0: the machine's physical memory; whole blocks
  size_t release_threshold_bytes = size_t{16} << 20;  // free blocks kept resident for reuse before releasing
};

class KvBlockPool {
 public:
  // block_bytes: a multiple of 4; blocks are page-aligned whenever block_bytes is a multiple of the page size.
  // memory: where the blocks live (nullptr: host memory). capacity_bytes 0 means the machine's physical
  // memory for host memory; a device memory's owner passes its own capacity.
  explicit KvBlockPool(size_t block_bytes, KvBlockPoolOptions options = {},
                       std::unique_ptr<KvPoolMemory> memory = nullptr);
  ~KvBlockPool();
  KvBlockPool(const KvBlockPool&) = delete;
  KvBlockPool& operator=(const KvBlockPool&) = delete;

  // Appends n block ids to *out (all or nothing). False when fewer than n blocks are left.
  bool Allocate(size_t n, std::vector<int32_t>* out);
  // Returns blocks to the pool (each exactly once: a block freed twice, or an id this pool never handed out,
  // aborts with a message — two sequences would otherwise share one block's K/V). May release memory to the
  // system (see above).
  void Free(const int32_t* ids, size_t n);
  // Releases every free block's pages now, regardless of the threshold.
  void ReleaseFreeMemory();

  // Block `id`'s bytes; a host address only when memory().host_visible().
  uint8_t* data(int32_t id) const { return base_ + static_cast<size_t>(id) * block_bytes_; }
  const uint8_t* base() const { return base_; }
  size_t offset(int32_t id) const { return static_cast<size_t>(id) * block_bytes_; }
  KvPoolMemory& memory() const { return *memory_; }
  size_t block_bytes() const { return block_bytes_; }
  size_t capacity_blocks() const { return capacity_blocks_; }
  size_t capacity_bytes() const { return capacity_blocks_ * block_bytes_; }
  size_t blocks_in_use() const;
  size_t bytes_in_use() const { return blocks_in_use() * block_bytes_; }
  size_t blocks_free() const { return capacity_blocks_ - blocks_in_use(); }
  size_t bytes_free_resident() const;  // free blocks not yet released (reused first)
  // Most blocks held at once since the pool was made or ResetPeak() (measured peaks: a compressing prefill's
  // one full layer plus the compressed rest).
  size_t peak_blocks_in_use() const;
  size_t peak_bytes_in_use() const { return peak_blocks_in_use() * block_bytes_; }
  void ResetPeak();  // the peak starts again from the blocks held now

 private:
  void ReleaseLocked();

  const size_t block_bytes_;
  const KvBlockPoolOptions options_;
  size_t capacity_blocks_ = 0;
  std::unique_ptr<KvPoolMemory> memory_;
  uint8_t* base_ = nullptr;
  mutable std::mutex mu_;
  std::vector<int32_t> dirty_;  // free and probably resident: handed out first (LIFO, warm in cache)
  std::vector<int32_t> clean_;  // free and released
  int32_t next_fresh_ = 0;      // ids >= this were never handed out (not resident)
  std::vector<bool> in_use_ids_;  // [next_fresh_] whether each id handed out is held now
  size_t in_use_ = 0;
  size_t peak_in_use_ = 0;
};

}  // namespace razor
