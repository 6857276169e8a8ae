// A non-owning view of one weight tensor as stored in a file (GGUF or safetensors), mmapped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor_type.h"

namespace razor {

struct TensorView {
  std::string name;
  TensorType type = TensorType::F32;
  // GGUF order: shape[0] is the contiguous (innermost) dimension. A Linear weight of
  // PyTorch shape [out, in] has shape = {in, out}: rows() = out, cols() = in.
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // first byte of element 0
  size_t nbytes = 0;

  int64_t cols() const { return shape.empty() ? 1 : shape[0]; }
  int64_t rows() const {
    int64_t r = 1;
    for (size_t i = 1; i < shape.size(); ++i) r *= shape[i];
    return r;
  }
  int64_t elements() const { return rows() * cols(); }
  size_t row_bytes() const { return RowBytes(type, cols()); }
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes(); }
};

}  // namespace razor
