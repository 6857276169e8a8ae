// Storage types of weight tensors, numbered as in GGUF (ggml_type), with their block geometry.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace razor {

enum class TensorType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
};

struct TensorTypeInfo {
  const char* name;
  int block_elems;    // elements per block (1 for plain float types)
  int block_bytes;    // bytes per block
  bool supported;     // this build can compute with it
};

// Info for a raw GGUF type id; nullopt for ids we do not know at all.
std::optional<TensorTypeInfo> GetTensorTypeInfo(uint32_t type_id);
const char* TensorTypeName(TensorType t);
// Bytes of one row of `n` elements; n must be a multiple of the block size.
size_t RowBytes(TensorType t, int64_t n);
int BlockElems(TensorType t);

}  // namespace razor
