// y = x · Wᵀ for a weight matrix W stored in its file format (quantized or float).
//   W: rows() = out features, cols() = in features (TensorView, GGUF order)
//   x: [n_tokens, in]  fp32, row-major
//   y: [n_tokens, out] fp32, row-major (overwritten)
#pragma once

#include <cstdint>

#include "core/tensor_view.h"
#include "core/thread_pool.h"

namespace razor {

enum class MathMode {
  kExact,  // weights dequantized row by row to fp32, fp32 products, fp32 accumulation (reference)
  kFast,   // SIMD kernels with fp32 activations: quantized weights unpacked in registers (decode) or per
           // cache tile (prefill); the exact path's numbers up to summation order. The default.
  kInt8,   // llama.cpp-style decode: for Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q6_K matrix-vector products, activations
           // quantized to 8 bits per 32-block and integer dot products (faster decode, less exact);
           // everything else (prefill, Q8_0 and Q5_K decode) as kFast, which is faster there
};

// Reference path: exact fp32 math, scalar. Threads split output features.
void MatMulReference(const TensorView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool);
// Int8 path (MathMode::kInt8 above): run-time dispatched SIMD (AVX-512 / AVX2 / scalar).
void MatMulFast(const TensorView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool);
// Default fast path: fp32 activations for every weight type (see MathMode::kFast).
void MatMulFp32Act(const TensorView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool);

inline void MatMul(MathMode mode, const TensorView& w, const float* x, int64_t n_tokens, float* y,
                   ThreadPool& pool) {
  if (mode == MathMode::kExact) MatMulReference(w, x, n_tokens, y, pool);
  else if (mode == MathMode::kInt8) MatMulFast(w, x, n_tokens, y, pool);
  else MatMulFp32Act(w, x, n_tokens, y, pool);
}

// Name of the SIMD level the fast path dispatched to on this machine ("avx512", "avx2", "scalar").
// The best level the CPU supports, unless the environment variable RAZOR_ISA=scalar|avx2|avx512 asks
// for a lower one (read at first use).
const char* MatMulIsa();
// Forces a level ("scalar", "avx2", "avx512") for later calls (tests run every level); false, with no
// change, if the name is unknown or the CPU lacks that level. Not thread-safe against running matmuls.
bool SetMatMulIsa(const char* name);

}  // namespace razor
