// Causal attention of the query heads that share one KV head (GQA resolved here), over that head's
// KvHeadView (which may be ragged: its own length, positions and a compensation token).
#pragma once

#include <cstdint>

#include "kv/kv_cache.h"

namespace razor {

struct AttentionQuery {
  const float* q = nullptr;          // q of (token t, group head g) at q + t*q_token_stride + g*head_dim
  int64_t q_token_stride = 0;        // floats
  const int32_t* positions = nullptr;  // [n_tokens] absolute position of each query token
  int64_t n_tokens = 0;
  int n_group_heads = 1;             // query heads sharing this KV head
  int head_dim = 0;
  float scale = 0.0f;                // usually 1/sqrt(head_dim)
  float* out = nullptr;              // same layout as q (out_token_stride)
  int64_t out_token_stride = 0;
  // Optional: log-sum-exp of the (scaled) scores of each (token, group head), written at
  // lse[t * lse_token_stride + g]. Lets a profiler turn any score into a probability without an N x N matrix.
  float* lse = nullptr;
  int64_t lse_token_stride = 0;
};

// Plain softmax over all visible keys, scores materialised per query (the readable reference).
void AttendReference(const KvHeadView& kv, const AttentionQuery& q);
// Flash-style: keys in blocks, online softmax, no score row stored; same result up to fp32 rounding.
void AttendFlash(const KvHeadView& kv, const AttentionQuery& q);

}  // namespace razor
