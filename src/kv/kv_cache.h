// The KV cache as attention sees it: one view per (layer, KV head). Each head may hold a different set of
// tokens (RazorAttention keeps every token only for retrieval heads), so the model never assumes a
// per-layer length: it appends K/V for new tokens and asks for each head's view.
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>

#include "core/status.h"
#include "kv/kv_type.h"

namespace razor {

class KvPoolMemory;

// The tokens one KV head holds, keys after RoPE, as data (no host pointer tables), so a device backend can
// describe its own memory with the same struct. Either contiguous fp32 (k, v: tests and references) or paged:
// token j lives at row r = first_row + j of the head's block list, in pool block block_ids[r / block_tokens]
// at row r % block_tokens. A pool block is [2, block_tokens, head_dim] of `type`: K rows, then V rows, at
// pool_base + id * block_bytes.
struct KvHeadView {
  KvType type = KvType::kF32;        // storage type of the paged rows (the contiguous form is always fp32)
  const float* k = nullptr;          // [len, head_dim] row-major (contiguous form)
  const float* v = nullptr;          // [len, head_dim]
  const uint8_t* pool_base = nullptr;  // paged form: the pool's storage
  size_t block_bytes = 0;
  const int32_t* block_ids = nullptr;  // [ceil((first_row + len) / block_tokens)]
  int64_t block_tokens = 0;          // 0: contiguous
  // Paged form only: token j is row first_row + j of the block list (first_row < block_tokens). Lets a
  // compressed head drop its oldest window token by moving only the sinks, not the whole window.
  int64_t first_row = 0;
  const int32_t* positions = nullptr;  // [len] absolute positions, ascending; nullptr means 0..len-1
  int64_t len = 0;
  // Compensation token (RazorAttention §3): stands for `comp_count` dropped tokens with mean key/value.
  // Its logit gets + ln(comp_count). Absent when comp_count == 0. Always fp32.
  const float* comp_k = nullptr;     // [head_dim]
  const float* comp_v = nullptr;     // [head_dim]
  int64_t comp_count = 0;
  int32_t comp_max_position = -1;    // every dropped token is at or before this position

  bool paged() const { return block_tokens != 0; }
  // Start of physical row r's key (value) in its stored type.
  const void* key_row_at(int64_t r, int head_dim) const {
    return pool_base + static_cast<size_t>(block_ids[r / block_tokens]) * block_bytes +
           static_cast<size_t>(r % block_tokens) * head_dim * KvTypeBytes(type);
  }
  const void* value_row_at(int64_t r, int head_dim) const {
    return pool_base + static_cast<size_t>(block_ids[r / block_tokens]) * block_bytes +
           static_cast<size_t>(block_tokens + r % block_tokens) * head_dim * KvTypeBytes(type);
  }
  // Token j's key / value widened to fp32 into out[head_dim] (any storage type).
  void KeyF32(int64_t j, int head_dim, float* out) const {
    if (!paged()) return LoadKvRow(KvType::kF32, k + j * head_dim, head_dim, out);
    LoadKvRow(type, key_row_at(first_row + j, head_dim), head_dim, out);
  }
  void ValueF32(int64_t j, int head_dim, float* out) const {
    if (!paged()) return LoadKvRow(KvType::kF32, v + j * head_dim, head_dim, out);
    LoadKvRow(type, value_row_at(first_row + j, head_dim), head_dim, out);
  }
  // Token j's key / value in place; fp32 storage only.
  const float* key(int64_t j, int head_dim) const {
    assert(type == KvType::kF32 && "key() reads fp32 rows; use KeyF32 for other storage types");
    if (!paged()) return k + j * head_dim;
    return static_cast<const float*>(key_row_at(first_row + j, head_dim));
  }
  const float* value(int64_t j, int head_dim) const {
    assert(type == KvType::kF32 && "value() reads fp32 rows; use ValueF32 for other storage types");
    if (!paged()) return v + j * head_dim;
    return static_cast<const float*>(value_row_at(first_row + j, head_dim));
  }
};

class KvCache {
 public:
  virtual ~KvCache() = default;

  // Tokens of the sequence seen so far (the next token's position).
  virtual int64_t sequence_length() const = 0;
  // Most tokens this cache can take.
  virtual int64_t capacity() const = 0;
  // Appends K and V of n new tokens at positions [pos0, pos0 + n) for one layer.
  //   k, v: [n, n_kv_heads * head_dim] fp32, keys already rotated.
  // Every layer must be appended for the same tokens before sequence_length() advances (CommitTokens).
  virtual Status Append(int layer, int64_t pos0, int64_t n, const float* k, const float* v) = 0;
  // Announces that the next appends are a prompt of n tokens (prefill). A compressing cache compresses
  // each layer once it holds all of them. Prefill in one Forward call lets it do so layer by layer.
  virtual void BeginPrefill(int64_t n_tokens) {}
  // True when the cache wants the prompt in a single Forward call (so the full KV of at most one layer
  // exists at a time); the generator then skips micro-batching.
  virtual bool wants_single_prefill_call() const { return false; }
  // Called by the model when a layer's attention over newly appended tokens is done (a compressing
  // cache may compress that layer now, so that at most one layer's full KV exists during prefill).
  virtual void OnLayerDone(int layer, bool prefill) {}
  // Marks n appended tokens as part of the sequence.
  virtual void CommitTokens(int64_t n) = 0;
  virtual KvHeadView View(int layer, int kv_head) const = 0;
  // The pool memory Append stores into (nullptr: the cache keeps its own rows); see KvPoolMemory::BeginStores.
  virtual KvPoolMemory* pool_memory() const { return nullptr; }
  // Bytes of K/V storage currently allocated (what the memory pool handed out).
  virtual size_t bytes_allocated() const = 0;
  virtual void Clear() = 0;
};

}  // namespace razor
