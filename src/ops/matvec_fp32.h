// Matrix-vector product of quantized weights with fp32 activations (decode): each weight block is
// unpacked to fp32 in registers and multiplied with x in fp32, so the result is the exact path's up to
// summation order (no activation quantization). Memory-bound: it streams the weights once.
#pragma once

#include <cstdint>

#include "core/tensor_view.h"
#include "core/thread_pool.h"

namespace razor {

// y[r] = dot(row r of w, x) for all rows. Any supported type; Q4_0/Q4_1/Q5_0/Q5_1/Q8_0 have fused SIMD
// kernels (AVX2+FMA when the CPU has them), the others dequantize a row to a buffer and dot it.
// use_simd=false runs the scalar twin (tests).
void MatVecFp32(const TensorView& w, const float* x, float* y, ThreadPool& pool, bool use_simd = true);

}  // namespace razor
