// The element type K/V rows are stored in (--kv-type). Attention reads the stored type and widens it to fp32
// per key block; the compensation token and every accumulation stay fp32 / double whatever the storage.
#pragma once

#include <cstddef>
#include <string_view>

#include "core/status.h"

namespace razor {

enum class KvType { kF32, kF16, kBF16 };

inline size_t KvTypeBytes(KvType t) { return t == KvType::kF32 ? 4 : 2; }
const char* KvTypeName(KvType t);  // "f32" | "f16" | "bf16"
Result<KvType> ParseKvType(std::string_view name);

// One row of n values: fp32 -> stored type (round to nearest even), and back (exact widening).
void StoreKvRow(KvType t, const float* src, int n, void* dst);
void LoadKvRow(KvType t, const void* src, int n, float* dst);

}  // namespace razor
