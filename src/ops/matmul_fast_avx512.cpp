// Tile kernels for AVX-512 F/BW/VL/VNNI on 256-bit vectors (vpdpbusd dot products), 4 x 4 micro-tiles (32 registers).
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
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")
// GCC 12's avx512fintrin.h reads an _mm512_undefined_* value inside _mm512_cvtepi8_epi32 and
// _mm512_reduce_add_ps: false -Wuninitialized reports at every use.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#define RZ_VNNI 1
#define RZ_QUANT_TILE QuantTileAvx512
#define RZ_FLOAT_TILE FloatTileAvx512
#define RZ_MATVEC_TILE MatVecTileAvx512
#define RZ_DEQUANT_TILE DequantTileAvx512
#define RZ_MULTI_MATVEC_TILE MultiMatVecTileAvx512
#define RZ_MULTI_R 4
#define RZ_MULTI_T 4
#define RZ_MR 4
#define RZ_MT 4

namespace razor {
#include "ops/matmul_fast_x86_tiles.inc"
#include "ops/matmul_fast_x86_fp32act.inc"
#include "ops/matmul_fast_x86_multitoken.inc"
}  // namespace razor

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif

#else  // not x86-64: never selected by the dispatcher
namespace razor {
void QuantTileAvx512(const QuantTileArgs&) {}
void FloatTileAvx512(const FloatTileArgs&) {}
void MatVecTileAvx512(const MatVecArgs&) {}
void DequantTileAvx512(const DequantTileArgs&) {}
void MultiMatVecTileAvx512(const MultiMatVecArgs&) {}
}  // namespace razor
#endif
