// The RazorAttention KV cache: every (layer, KV head) has its own paged storage from a KvBlockPool, its own
// length and the absolute position of every kept token. After the prompt is in, each non-retrieval head of a
// layer is cut to N0 sinks + W window tokens + one compensation token, and the dropped tokens' blocks go back
// to the pool (see ../shared/RAZOR_ATTENTION.md §3-4).
//
// Prefill: call BeginPrefill(N) first (the generator does). A layer is compressed in OnLayerDone once it
// holds all N prompt tokens, right after the exact full attention over them; wants_single_prefill_call()
// asks for the prompt in one Forward call so that at most one layer's full KV exists at a time.
// Decode: every head appends (paper). With decode_fold, a compressed head keeps exactly W window tokens: the
// token leaving the window is folded into the compensation token (running mean), so memory stays bounded.
// A continuation prompt (BeginPrefill again without Clear) appends like decode and compresses heads that
// were still short. Prefix reuse is NOT supported: compressed heads lost tokens, so a new prompt (even one
// sharing a prefix) needs Clear() first.
//
// Threads: Append / OnLayerDone / CommitTokens / Clear from one thread; View from many (between appends).
// Memory: every K/V byte moves through the pool's KvPoolMemory (StoreRows / LoadRows / CopyRows), never through
// a host pointer, so the same cache keeps its rows in device memory when the pool's memory is a device's.
#pragma once

#include <memory>
#include <vector>

#include "kv/compensation_token.h"
#include "kv/head_policy.h"
#include "kv/kv_block_pool.h"
#include "kv/kv_cache.h"

namespace razor {

// What the cache holds now, for verbose output and reports. Bytes are measured, not estimated.
struct RazorKvStats {
  int64_t heads = 0;               // n_layers * n_kv_heads
  int64_t heads_full = 0;          // heads keeping every token (retrieval heads, or all in full mode)
  int64_t heads_compressed = 0;    // heads cut to sinks + window
  int64_t heads_too_short = 0;     // compressible heads left whole because N <= N0 + W
  int64_t window = 0;              // W of the last compression (0: none yet)
  int64_t tokens_dropped = 0;      // over all heads, at compression and by decode folding
  int64_t tokens_folded = 0;       // of which folded during decode
  int64_t tokens_kept = 0;         // sum of head lengths
  size_t kv_block_bytes = 0;       // pool blocks held (K and V)
  size_t compensation_bytes = 0;   // compensation tokens (+ their double sums with decode_fold)
  size_t index_bytes = 0;          // positions (int32 per kept token) and block id tables
  size_t full_cache_bytes = 0;     // K/V bytes a full cache of the same type would need: layers*heads*seq*2*row
};

class RazorKvCache final : public KvCache {
 public:
  // pool: shared by several sequences (an engine's); nullptr makes a private one. Its block_bytes must be
  // block_bytes(policy.params().block_tokens, head_dim, type). capacity: most tokens (<= INT32_MAX).
  // type: how K/V rows are stored (the compensation token stays fp32).
  RazorKvCache(KvHeadPolicy policy, int head_dim, int64_t capacity, KvType type = KvType::kF32,
               std::shared_ptr<KvBlockPool> pool = nullptr);
  ~RazorKvCache() override;
  RazorKvCache(const RazorKvCache&) = delete;
  RazorKvCache& operator=(const RazorKvCache&) = delete;

  // Bytes of one pool block: K rows then V rows, [2, block_tokens, head_dim] of the storage type.
  static size_t block_bytes(int64_t block_tokens, int head_dim, KvType type) {
    return 2 * static_cast<size_t>(block_tokens) * head_dim * KvTypeBytes(type);
  }

  int64_t sequence_length() const override { return seq_len_; }
  int64_t capacity() const override { return capacity_; }
  Status Append(int layer, int64_t pos0, int64_t n, const float* k, const float* v) override;
  void BeginPrefill(int64_t n_tokens) override;
  bool wants_single_prefill_call() const override { return policy_.mode() != KvMode::kFull; }
  void OnLayerDone(int layer, bool prefill) override;
  void CommitTokens(int64_t n) override { seq_len_ += n; }
  // Takes now the blocks that appending n tokens to every head needs, all or nothing: after Ok, the next n
  // appended tokens never fail for memory. A KV-pool-exhausted error leaves the cache as it was.
  Status Reserve(int64_t n);
  KvHeadView View(int layer, int kv_head) const override;
  KvPoolMemory* pool_memory() const override { return &pool_->memory(); }
  // K/V blocks held plus compensation tokens (everything kept of the KV itself; index_bytes() excluded).
  size_t bytes_allocated() const override { return kv_block_bytes() + compensation_bytes(); }
  void Clear() override;

  size_t kv_block_bytes() const { return blocks_held_ * pool_->block_bytes(); }
  size_t compensation_bytes() const;
  size_t index_bytes() const;
  RazorKvStats stats() const;
  const KvHeadPolicy& policy() const { return policy_; }
  KvType type() const { return type_; }
  KvBlockPool& pool() { return *pool_; }

 private:
  struct HeadStore {
    std::vector<int32_t> blocks;        // pool block ids, each [2, block_tokens, head_dim]: K rows then V rows
    std::vector<int32_t> positions;     // [first_row + len] absolute position of each physical row
    int64_t first_row = 0;              // physical row of token 0 (< block_tokens)
    int64_t len = 0;                    // tokens held
    int64_t window = 0;                 // W once compressed, else 0
    bool short_prompt = false;          // compressible, but the prompt fit in N0 + W
    CompensationToken comp;
  };
  HeadStore& head(int layer, int kv_head) { return heads_[static_cast<size_t>(layer) * n_kv_heads_ + kv_head]; }
  const HeadStore& head(int layer, int kv_head) const {
    return heads_[static_cast<size_t>(layer) * n_kv_heads_ + kv_head];
  }
  // Pool byte offset of physical row `row` of a head's K rows (its V row is value_delta() further on).
  int64_t KeyOffset(const HeadStore& h, int64_t row) const {
    return static_cast<int64_t>(pool_->offset(h.blocks[row / bt_]) + static_cast<size_t>(row % bt_) * row_bytes_);
  }
  int64_t value_delta() const { return bt_ * static_cast<int64_t>(row_bytes_); }
  // Moves physical rows src[i] -> dst[i] (K and V) through the pool's memory, every read before any write.
  void MoveRows(const HeadStore& h, const std::vector<int64_t>& src_rows, const std::vector<int64_t>& dst_rows);
  // Adds physical rows [r0, r1) to the head's compensation token (widened to fp32 first).
  void AddToCompensation(HeadStore& h, int64_t r0, int64_t r1);
  bool GrowTo(HeadStore& h, int64_t rows);      // ensure blocks for `rows` physical rows
  Status PoolExhausted() const;                 // the error of a GrowTo that failed
  void TrimBlocks(HeadStore& h, size_t keep);   // frees trailing blocks beyond `keep`
  void Compress(HeadStore& h, int64_t window);  // prompt in: drop [N0, len - W)
  void Fold(HeadStore& h);                      // decode_fold: drop window tokens beyond W into comp
  size_t SteadyBlocks(const HeadStore& h) const;

  KvHeadPolicy policy_;
  int n_layers_, n_kv_heads_, head_dim_;
  int64_t bt_;  // tokens per block
  KvType type_;
  size_t row_bytes_;  // head_dim * element bytes
  int64_t capacity_;
  std::shared_ptr<KvBlockPool> pool_;
  int64_t seq_len_ = 0;
  std::vector<int64_t> layer_next_;   // [n_layers] next position each layer expects
  std::vector<int64_t> compress_at_;  // [n_layers] compress once the layer reaches this position; -1: no
  std::vector<HeadStore> heads_;      // [n_layers * n_kv_heads]
  size_t blocks_held_ = 0;
  int64_t last_window_ = 0;
  int64_t tokens_dropped_ = 0, tokens_folded_ = 0;
  std::vector<int32_t> scratch_;     // blocks being allocated
  std::vector<int64_t> offsets_;     // pool offsets of rows being stored / loaded / moved
  std::vector<int64_t> offsets2_;
};

}  // namespace razor
