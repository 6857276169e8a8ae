#include "kv/kv_block_pool.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <cassert>
#include <climits>
#include <cstdio>
#include <cstdlib>

namespace razor {
namespace {

size_t PageSize() {
  static const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
  return page;
}

// The default capacity: the machine's memory, and under an address-space limit (ulimit -v) a quarter of it,
// so that the reservation never crowds out the process's other allocations.
size_t DefaultCapacityBytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  size_t bytes = pages > 0 ? static_cast<size_t>(pages) * PageSize() : size_t{1} << 32;
  rlimit as{};
  if (getrlimit(RLIMIT_AS, &as) == 0 && as.rlim_cur != RLIM_INFINITY)
    bytes = std::min<size_t>(bytes, static_cast<size_t>(as.rlim_cur) / 4);
  return bytes;
}

}  // namespace

KvBlockPool::KvBlockPool(size_t block_bytes, KvBlockPoolOptions options, std::unique_ptr<KvPoolMemory> memory)
    : block_bytes_(block_bytes), options_(options), memory_(std::move(memory)) {
  if (!memory_) memory_ = std::make_unique<HostKvPoolMemory>();
  assert(block_bytes_ > 0 && block_bytes_ % sizeof(float) == 0);
  const size_t want = options_.capacity_bytes ? options_.capacity_bytes : DefaultCapacityBytes();
  size_t blocks = std::min<size_t>(want / block_bytes_, INT32_MAX);
  // Should the memory refuse a reservation this large, a smaller pool is better than none.
  while (blocks > 0 && !memory_->Reserve(blocks * block_bytes_)) blocks /= 2;
  base_ = blocks > 0 ? memory_->base() : nullptr;
  capacity_blocks_ = blocks;
}

KvBlockPool::~KvBlockPool() = default;

bool KvBlockPool::Allocate(size_t n, std::vector<int32_t>* out) {
  std::lock_guard<std::mutex> lock(mu_);
  if (n > capacity_blocks_ - in_use_) return false;
  for (size_t i = 0; i < n; ++i) {
    int32_t id;
    if (!dirty_.empty()) {
      id = dirty_.back();
      dirty_.pop_back();
    } else if (!clean_.empty()) {
      id = clean_.back();
      clean_.pop_back();
    } else {
      id = next_fresh_++;
      in_use_ids_.push_back(false);
    }
    in_use_ids_[id] = true;
    out->push_back(id);
  }
  in_use_ += n;
  peak_in_use_ = std::max(peak_in_use_, in_use_);
  return true;
}

void KvBlockPool::Free(const int32_t* ids, size_t n) {
  if (n == 0) return;
  std::lock_guard<std::mutex> lock(mu_);
  for (size_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= next_fresh_ || !in_use_ids_[ids[i]]) {
      std::fprintf(stderr, "razor: KV block %d freed twice or not from this pool\n", ids[i]);
      std::abort();
    }
    in_use_ids_[ids[i]] = false;
    dirty_.push_back(ids[i]);
  }
  in_use_ -= n;
  if (memory_->discards() && dirty_.size() * block_bytes_ > options_.release_threshold_bytes) ReleaseLocked();
}

void KvBlockPool::ReleaseFreeMemory() {
  std::lock_guard<std::mutex> lock(mu_);
  if (memory_->discards()) ReleaseLocked();
}

void KvBlockPool::ReleaseLocked() {
  // Discard each run of adjacent free blocks (the memory gives back the whole pages inside it).
  std::sort(dirty_.begin(), dirty_.end());
  for (size_t i = 0; i < dirty_.size();) {
    size_t j = i + 1;
    while (j < dirty_.size() && dirty_[j] == dirty_[j - 1] + 1) ++j;
    memory_->Discard(offset(dirty_[i]), static_cast<size_t>(dirty_[j - 1] - dirty_[i] + 1) * block_bytes_);
    i = j;
  }
  // Highest ids first out of clean_ would spread the pool; lowest first keeps it compact. clean_ stays sorted
  // descending by a merge (linear: a pool of millions of blocks releases often during a long compression).
  const auto mid = static_cast<std::ptrdiff_t>(clean_.size());
  clean_.insert(clean_.end(), dirty_.rbegin(), dirty_.rend());
  std::inplace_merge(clean_.begin(), clean_.begin() + mid, clean_.end(), std::greater<int32_t>());
  dirty_.clear();
}

size_t KvBlockPool::blocks_in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return in_use_;
}

size_t KvBlockPool::peak_blocks_in_use() const {
  std::lock_guard<std::mutex> lock(mu_);
  return peak_in_use_;
}

void KvBlockPool::ResetPeak() {
  std::lock_guard<std::mutex> lock(mu_);
  peak_in_use_ = in_use_;
}

size_t KvBlockPool::bytes_free_resident() const {
  std::lock_guard<std::mutex> lock(mu_);
  return dirty_.size() * block_bytes_;
}

}  // namespace razor
