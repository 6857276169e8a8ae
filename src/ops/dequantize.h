// Reference dequantization of GGUF block formats to fp32 (scalar; the ground truth for kernels).
#pragma once

#include <cstdint>

#include "core/tensor_type.h"

namespace razor {

// dst[0..n) = value of the n elements starting at src; n must be a multiple of the block size.
// Supported: F32 F16 BF16 Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K.
void DequantizeRow(TensorType type, const void* src, float* dst, int64_t n);

float Fp16ToFp32(uint16_t h);
uint16_t Fp32ToFp16(float f);
float Bf16ToFp32(uint16_t h);

}  // namespace razor
