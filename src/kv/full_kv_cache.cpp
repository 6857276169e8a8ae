#include "kv/full_kv_cache.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>

namespace razor {

FullKvCache::FullKvCache(int n_layers, int n_kv_heads, int head_dim, int64_t capacity)
    : n_layers_(n_layers), n_kv_heads_(n_kv_heads), head_dim_(head_dim), capacity_(capacity),
      heads_(static_cast<size_t>(n_layers) * n_kv_heads) {}

Status FullKvCache::Append(int layer, int64_t pos0, int64_t n, const float* k, const float* v) {
  if (pos0 + n > capacity_)
    return Err(fmt::format("KV cache full: {} tokens do not fit in a context of {}", pos0 + n, capacity_));
  const int64_t d = head_dim_;
  for (int h = 0; h < n_kv_heads_; ++h) {
    HeadStore& s = heads_[static_cast<size_t>(layer) * n_kv_heads_ + h];
    if (s.len != pos0) return Err(fmt::format("KV append at position {} but head holds {} tokens", pos0, s.len));
    const int64_t need = (s.len + n) * d;
    if (static_cast<int64_t>(s.k.size()) < need) {
      // Grow geometrically in 256-token steps, never past the capacity.
      int64_t tokens = std::min<int64_t>(capacity_, std::max<int64_t>((s.len + n + 255) / 256 * 256,
                                                                      static_cast<int64_t>(s.k.size() / d) * 3 / 2));
      s.k.resize(tokens * d);
      s.v.resize(tokens * d);
    }
    for (int64_t t = 0; t < n; ++t) {
      const int64_t src = (t * n_kv_heads_ + h) * d;
      std::memcpy(&s.k[(s.len + t) * d], k + src, d * sizeof(float));
      std::memcpy(&s.v[(s.len + t) * d], v + src, d * sizeof(float));
    }
    s.len += n;
  }
  return Status::Ok();
}

KvHeadView FullKvCache::View(int layer, int kv_head) const {
  const HeadStore& s = heads_[static_cast<size_t>(layer) * n_kv_heads_ + kv_head];
  KvHeadView view;
  view.k = s.k.data();
  view.v = s.v.data();
  view.len = s.len;
  return view;
}

size_t FullKvCache::bytes_allocated() const {
  size_t b = 0;
  for (const auto& s : heads_) b += (s.k.capacity() + s.v.capacity()) * sizeof(float);
  return b;
}

void FullKvCache::Clear() {
  for (auto& s : heads_) {
    s.len = 0;
  }
  seq_len_ = 0;
}

}  // namespace razor
