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
  // Optional ALiBi: slope of each group head ([n_group_heads]). The score of a key at position pk for a
  // query at pq gets - slope * (pq - pk) (transformers adds + slope * pk; equal after the per-query
  // softmax shift, but bounded). The compensation token gets the exact ALiBi mass of the contiguous
  // dropped range it stands for (AlibiCompensationBias).
  const float* alibi_slopes = nullptr;
  // Optional sliding window (Gemma 3's local layers): > 0 hides keys at positions <= p - window from a query
  // at p (it sees (p - window, p]), and the compensation token with them (it stands for old tokens). 0: none.
  int32_t window = 0;
};

// ln Σ_{pk in dropped} e^{-slope (pq - pk)} for the compensation token of `kv` seen from a query at pq:
// what replaces ln(comp_count) in its logit under ALiBi. The dropped tokens of a razor head are the
// contiguous positions (comp_max_position - comp_count, comp_max_position] (sinks stay, the window follows,
// decode folding drops the next position), so the sum is a geometric series:
//   - slope (pq - b) + ln((1 - e^{-slope Nd}) / (1 - e^{-slope})),  b = comp_max_position, Nd = comp_count;
// slope == 0 gives ln Nd.
float AlibiCompensationBias(const KvHeadView& kv, float slope, int32_t pq);

// What every attention kernel (CPU and GPU) agrees on, per query at position p:
// keys with position <= p are visible; positions ascend, so they form a prefix [0, VisibleKeys).
int64_t VisibleKeys(const KvHeadView& kv, int32_t p);
// Under a sliding window the visible keys are [FirstVisibleKey, VisibleKeys): the first key at a position
// > p - window (0 when window == 0).
int64_t FirstVisibleKey(const KvHeadView& kv, int32_t p, int32_t window);
// The compensation token is visible only after every token it stands for.
bool CompensationVisible(const KvHeadView& kv, int32_t p);
// Its logit bias for group head g: ln(comp_count), or the ALiBi form (AlibiCompensationBias).
float CompensationBias(const KvHeadView& kv, const AttentionQuery& a, int g, int32_t pq);

// Query tokens AttendFlash takes together in one tile (fewer when the group is so large that tokens x group
// heads would pass its row limit); callers that split a prompt into work items use the same number, so a
// work item is one whole tile.
inline constexpr int kAttnTileTokens = 16;

// Plain softmax over all visible keys, scores materialised per query (the readable reference).
void AttendReference(const KvHeadView& kv, const AttentionQuery& q);
// Flash-style: keys in blocks, online softmax, no score row stored; same result up to fp32 rounding.
void AttendFlash(const KvHeadView& kv, const AttentionQuery& q);

}  // namespace razor
