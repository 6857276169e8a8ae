// What every fuzz target checks about a config the parser accepted: the arithmetic a loader does with it
// (dimensions, GQA group, fused-QKV rows, KV bytes, ALiBi slopes) runs without overflow or division by zero.
// UBSan turns a violation into a crash report; the asserts catch a config Validate should have refused.
#pragma once

#include <cassert>
#include <cstdlib>

#include "model/model_config.h"

inline void CheckConfigInvariants(const razor::ModelConfig& c) {
  if (c.n_heads <= 0 || c.n_kv_heads <= 0 || c.head_dim <= 0 || c.n_heads % c.n_kv_heads != 0) std::abort();
  volatile int64_t sink = 0;
  sink = sink + c.q_dim() + c.kv_dim() + c.group_size() + c.fused_qkv_row(2, c.n_heads - 1);
  sink = sink + static_cast<int64_t>(c.kv_bytes_per_token(4) / 4);
  if (c.alibi && razor::AlibiSlopes(c.n_heads).size() != static_cast<size_t>(c.n_heads)) std::abort();
}
