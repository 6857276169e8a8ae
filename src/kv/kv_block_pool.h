// Fixed-size blocks for per-head KV storage, carved from large mmap'ed slabs. Freed blocks go to a free list
// for reuse; once the free-but-resident memory exceeds a threshold, slabs that are wholly free are munmap'ed
// and the pages of the other free blocks are returned with madvise(MADV_DONTNEED), so RSS really drops when a
// RazorAttention cache drops tokens. Thread-safe (one mutex): several sequences may share one pool.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <vector>

namespace razor {

struct KvBlockPoolOptions {
  size_t slab_bytes = size_t{4} << 20;                // one mmap; rounded down to whole blocks (at least one)
  size_t release_threshold_bytes = size_t{16} << 20;  // free blocks kept resident for reuse before releasing
};

class KvBlockPool {
 public:
  // block_bytes: size of one block (a multiple of sizeof(float)); every block starts 4-byte aligned, and
  // page-aligned whenever block_bytes is a multiple of the page size.
  explicit KvBlockPool(size_t block_bytes, KvBlockPoolOptions options = {});
  ~KvBlockPool();  // unmaps everything; blocks still handed out become invalid
  KvBlockPool(const KvBlockPool&) = delete;
  KvBlockPool& operator=(const KvBlockPool&) = delete;

  // Appends n blocks to *out (all or nothing). False when the system refuses more memory.
  bool Allocate(size_t n, std::vector<float*>* out);
  // Returns blocks to the pool (each exactly once). May release memory to the system (see above).
  void Free(float* const* blocks, size_t n);
  // Releases every free block's memory now, regardless of the threshold.
  void ReleaseFreeMemory();

  size_t block_bytes() const { return block_bytes_; }
  size_t blocks_per_slab() const { return blocks_per_slab_; }
  size_t bytes_in_use() const;         // blocks handed out x block_bytes
  size_t bytes_reserved() const;       // mapped slabs (address space; resident at most this)
  size_t bytes_free_resident() const;  // free blocks not yet released (reused first)
  size_t slab_count() const;

 private:
  struct Slab {
    size_t bytes = 0;
    size_t free_blocks = 0;
  };
  bool AddSlabLocked();
  void ReleaseLocked();
  // Slab containing p (must exist).
  std::map<uintptr_t, Slab>::iterator SlabOf(const void* p);

  const size_t block_bytes_;
  const KvBlockPoolOptions options_;
  size_t blocks_per_slab_ = 0;
  size_t slab_bytes_ = 0;  // blocks_per_slab_ * block_bytes_, rounded up to pages
  mutable std::mutex mu_;
  std::map<uintptr_t, Slab> slabs_;  // by base address
  std::vector<float*> dirty_;        // free and probably resident: handed out first (LIFO, warm in cache)
  std::vector<float*> clean_;        // free and released (or never touched)
  size_t in_use_ = 0;                // blocks handed out
};

}  // namespace razor
