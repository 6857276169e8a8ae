#include "kv/kv_type.h"

#include <cstdint>
#include <cstring>
#include <string>

#include "core/fp16.h"

namespace razor {

const char* KvTypeName(KvType t) {
  switch (t) {
    case KvType::kF32: return "f32";
    case KvType::kF16: return "f16";
    case KvType::kBF16: return "bf16";
  }
  return "?";
}

Result<KvType> ParseKvType(std::string_view name) {
  if (name == "f32") return KvType::kF32;
  if (name == "f16") return KvType::kF16;
  if (name == "bf16") return KvType::kBF16;
  return Err("unknown KV type '" + std::string(name) + "' (expected f32, f16 or bf16)");
}

void StoreKvRow(KvType t, const float* src, int n, void* dst) {
  auto* h = static_cast<uint16_t*>(dst);
  switch (t) {
    case KvType::kF32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); return;
    case KvType::kF16: for (int i = 0; i < n; ++i) h[i] = FloatToHalf(src[i]); return;
    case KvType::kBF16: for (int i = 0; i < n; ++i) h[i] = FloatToBfloat(src[i]); return;
  }
}

void LoadKvRow(KvType t, const void* src, int n, float* dst) {
  const auto* h = static_cast<const uint16_t*>(src);
  switch (t) {
    case KvType::kF32: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float)); return;
    case KvType::kF16: for (int i = 0; i < n; ++i) dst[i] = HalfToFloat(h[i]); return;
    case KvType::kBF16: for (int i = 0; i < n; ++i) dst[i] = BfloatToFloat(h[i]); return;
  }
}

}  // namespace razor
