#include "core/tensor_type.h"

#include <cassert>

namespace razor {

std::optional<TensorTypeInfo> GetTensorTypeInfo(uint32_t id) {
  switch (static_cast<TensorType>(id)) {
    case TensorType::F32: return TensorTypeInfo{"F32", 1, 4, true};
    case TensorType::F16: return TensorTypeInfo{"F16", 1, 2, true};
    case TensorType::BF16: return TensorTypeInfo{"BF16", 1, 2, true};
    case TensorType::Q4_0: return TensorTypeInfo{"Q4_0", 32, 18, true};
    case TensorType::Q4_1: return TensorTypeInfo{"Q4_1", 32, 20, true};
    case TensorType::Q5_0: return TensorTypeInfo{"Q5_0", 32, 22, true};
    case TensorType::Q5_1: return TensorTypeInfo{"Q5_1", 32, 24, true};
    case TensorType::Q8_0: return TensorTypeInfo{"Q8_0", 32, 34, true};
    case TensorType::Q8_1: return TensorTypeInfo{"Q8_1", 32, 36, false};
    case TensorType::Q2_K: return TensorTypeInfo{"Q2_K", 256, 84, false};
    case TensorType::Q3_K: return TensorTypeInfo{"Q3_K", 256, 110, false};
    case TensorType::Q4_K: return TensorTypeInfo{"Q4_K", 256, 144, true};
    case TensorType::Q5_K: return TensorTypeInfo{"Q5_K", 256, 176, true};
    case TensorType::Q6_K: return TensorTypeInfo{"Q6_K", 256, 210, true};
    case TensorType::Q8_K: return TensorTypeInfo{"Q8_K", 256, 292, false};
  }
  return std::nullopt;
}

const char* TensorTypeName(TensorType t) {
  auto info = GetTensorTypeInfo(static_cast<uint32_t>(t));
  return info ? info->name : "unknown";
}

int BlockElems(TensorType t) {
  auto info = GetTensorTypeInfo(static_cast<uint32_t>(t));
  assert(info);
  return info->block_elems;
}

size_t RowBytes(TensorType t, int64_t n) {
  auto info = GetTensorTypeInfo(static_cast<uint32_t>(t));
  assert(info && n % info->block_elems == 0);
  return static_cast<size_t>(n / info->block_elems) * static_cast<size_t>(info->block_bytes);
}

}  // namespace razor
