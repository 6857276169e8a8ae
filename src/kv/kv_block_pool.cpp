#include "kv/kv_block_pool.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>

namespace razor {
namespace {

size_t PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

}  // namespace

KvBlockPool::KvBlockPool(size_t block_bytes, KvBlockPoolOptions options)
    : block_bytes_(block_bytes), options_(options) {
  assert(block_bytes_ > 0 && block_bytes_ % sizeof(float) == 0);
  blocks_per_slab_ = std::max<size_t>(1, options_.slab_bytes / block_bytes_);
  const size_t page = PageSize();
  slab_bytes_ = (blocks_per_slab_ * block_bytes_ + page - 1) / page * page;
}

KvBlockPool::~KvBlockPool() {
  for (auto& [base, slab] : slabs_) munmap(reinterpret_cast<void*>(base), slab.bytes);
}

std::map<uintptr_t, KvBlockPool::Slab>::iterator KvBlockPool::SlabOf(const void* p) {
  const auto addr = reinterpret_cast<uintptr_t>(p);
  auto it = slabs_.upper_bound(addr);
  if (it == slabs_.begin()) return slabs_.end();
  --it;
  return addr < it->first + it->second.bytes ? it : slabs_.end();
}

bool KvBlockPool::AddSlabLocked() {
  void* p = mmap(nullptr, slab_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return false;
  auto* base = static_cast<char*>(p);
  slabs_[reinterpret_cast<uintptr_t>(p)] = Slab{slab_bytes_, blocks_per_slab_};
  // Untouched pages are not resident: the new blocks are clean. Reverse order so they come out ascending.
  for (size_t i = blocks_per_slab_; i-- > 0;) clean_.push_back(reinterpret_cast<float*>(base + i * block_bytes_));
  return true;
}

bool KvBlockPool::Allocate(size_t n, std::vector<float*>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  const size_t start = out->size();
  for (size_t i = 0; i < n; ++i) {
    if (dirty_.empty() && clean_.empty() && !AddSlabLocked()) {
      // Undo: put back what this call took.
      for (size_t j = start; j < out->size(); ++j) {
        SlabOf((*out)[j])->second.free_blocks++;
        dirty_.push_back((*out)[j]);
      }
      in_use_ -= out->size() - start;
      out->resize(start);
      return false;
    }
    std::vector<float*>& from = dirty_.empty() ? clean_ : dirty_;
    float* b = from.back();
    from.pop_back();
    auto it = SlabOf(b);
    assert(it != slabs_.end() && it->second.free_blocks > 0);
    it->second.free_blocks--;
    out->push_back(b);
    ++in_use_;
  }
  return true;
}

void KvBlockPool::Free(float* const* blocks, size_t n) {
  if (n == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < n; ++i) {
    auto it = SlabOf(blocks[i]);
    assert(it != slabs_.end() && "block not from this pool");
    it->second.free_blocks++;
    assert(it->second.free_blocks <= blocks_per_slab_ && "block freed twice");
    dirty_.push_back(blocks[i]);
  }
  assert(in_use_ >= n);
  in_use_ -= n;
  if (dirty_.size() * block_bytes_ > options_.release_threshold_bytes) ReleaseLocked();
}

void KvBlockPool::ReleaseFreeMemory() {
  std::lock_guard<std::mutex> lock(mu_);
  ReleaseLocked();
}

void KvBlockPool::ReleaseLocked() {
  // 1. Unmap slabs with no block in use.
  bool unmapped = false;
  for (auto it = slabs_.begin(); it != slabs_.end();) {
    if (it->second.free_blocks == blocks_per_slab_) {
      munmap(reinterpret_cast<void*>(it->first), it->second.bytes);
      it = slabs_.erase(it);
      unmapped = true;
    } else {
      ++it;
    }
  }
  if (unmapped) {
    auto gone = [&](float* b) { return SlabOf(b) == slabs_.end(); };
    dirty_.erase(std::remove_if(dirty_.begin(), dirty_.end(), gone), dirty_.end());
    clean_.erase(std::remove_if(clean_.begin(), clean_.end(), gone), clean_.end());
  }
  // 2. Give back the whole pages inside each run of adjacent free blocks of the remaining slabs.
  std::sort(dirty_.begin(), dirty_.end());
  const uintptr_t page = PageSize();
  for (size_t i = 0; i < dirty_.size();) {
    size_t j = i + 1;
    while (j < dirty_.size() && reinterpret_cast<char*>(dirty_[j]) ==
                                    reinterpret_cast<char*>(dirty_[j - 1]) + block_bytes_)
      ++j;
    const uintptr_t lo = (reinterpret_cast<uintptr_t>(dirty_[i]) + page - 1) / page * page;
    const uintptr_t hi = (reinterpret_cast<uintptr_t>(dirty_[j - 1]) + block_bytes_) / page * page;
    if (hi > lo) madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED);
    i = j;
  }
  clean_.insert(clean_.end(), dirty_.rbegin(), dirty_.rend());
  dirty_.clear();
}

size_t KvBlockPool::bytes_in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_use_ * block_bytes_;
}

size_t KvBlockPool::bytes_reserved() const {
  std::lock_guard<std::mutex> lock(mu_);
  return slabs_.size() * slab_bytes_;
}

size_t KvBlockPool::bytes_free_resident() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dirty_.size() * block_bytes_;
}

size_t KvBlockPool::slab_count() const {
  std::lock_guard<std::mutex> lock(mu_);
  return slabs_.size();
}

}  // namespace razor
