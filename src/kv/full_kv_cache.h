// The plain cache: every (layer, KV head) keeps every token, fp32, in storage that grows in chunks
// (so a short prompt does not pay for the whole context).
#pragma once

#include <vector>

#include "kv/kv_cache.h"

namespace razor {

class FullKvCache final : public KvCache {
 public:
  FullKvCache(int n_layers, int n_kv_heads, int head_dim, int64_t capacity);

  int64_t sequence_length() const override { return seq_len_; }
  int64_t capacity() const override { return capacity_; }
  Status Append(int layer, int64_t pos0, int64_t n, const float* k, const float* v) override;
  void CommitTokens(int64_t n) override { seq_len_ += n; }
  KvHeadView View(int layer, int kv_head) const override;
  size_t bytes_allocated() const override;
  void Clear() override;

 private:
  struct HeadStore {
    std::vector<float> k, v;  // [reserved, head_dim]
    int64_t len = 0;
  };
  int n_layers_, n_kv_heads_, head_dim_;
  int64_t capacity_;
  int64_t seq_len_ = 0;
  std::vector<HeadStore> heads_;  // [n_layers * n_kv_heads]
};

}  // namespace razor
