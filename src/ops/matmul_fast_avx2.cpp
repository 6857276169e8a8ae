// Tile kernels for AVX2 + FMA + F16C (maddubs dot products), 2 rows x 4 tokens micro-tiles (16 ymm registers).
// The code is matmul_fast_x86_tiles.inc; this file only sets the target and the tile shape. Every
// function here carries the target attribute, so nothing is called unless the CPU has the ISA
// (matmul_fast.cpp checks __builtin_cpu_supports first).
#include "ops/matmul_fast_kernels.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#include <cstddef>
#include <cstring>
#include <type_traits>

#include "ops/quant_blocks.h"
#include "ops/quantize_activations.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

#define RZ_VNNI 0
#define RZ_QUANT_TILE QuantTileAvx2
#define RZ_FLOAT_TILE FloatTileAvx2
#define RZ_MATVEC_TILE MatVecTileAvx2
#define RZ_DEQUANT_TILE DequantTileAvx2
#define RZ_MULTI_MATVEC_TILE MultiMatVecTileAvx2
#define RZ_MULTI_R 1
#define RZ_MULTI_T 8
#define RZ_MR 2
#define RZ_MT 4

namespace razor {
#include "ops/matmul_fast_x86_tiles.inc"
#include "ops/matmul_fast_x86_fp32act.inc"
#include "ops/matmul_fast_x86_multitoken.inc"
}  // namespace razor

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#else  // not x86-64: never selected by the dispatcher
namespace razor {
void QuantTileAvx2(const QuantTileArgs&) {}
void FloatTileAvx2(const FloatTileArgs&) {}
void MatVecTileAvx2(const MatVecArgs&) {}
void DequantTileAvx2(const DequantTileArgs&) {}
void MultiMatVecTileAvx2(const MultiMatVecArgs&) {}
}  // namespace razor
#endif
