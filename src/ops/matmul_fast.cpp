// Fast matmul driver: picks the ISA, splits work over threads and cache tiles, and calls the per-ISA
// kernels (matmul_fast_kernels.h). Two entry points:
//
// MatMulFp32Act (MathMode::kFast, the default): activations stay fp32, so results are the exact path's
// up to fp32 summation order.
//   F32 F16 BF16                 fp32 tile kernel on the weights as stored (FloatPath)
//   Q4_0 Q4_1 Q5_0 Q5_1 Q8_0     decode: fused matrix-vector kernel, blocks unpacked to fp32 in registers
//                                (MatVecPath); 2-12 tokens (batched decode): blocks dequantized in registers
//                                once per micro-tile of tokens (MultiMatVecPath); more tokens (prefill):
//                                DequantTilePath
//   Q4_K Q6_K                    decode: MatVecPath (K-quant row kernels); prefill: DequantTilePath
//   Q5_K                         DequantTilePath (decode too)
// DequantTilePath dequantizes a tile of weight rows (~128 KiB of fp32, L2) once and runs the fp32 tile
// kernel over every token block against it: the dequantization is amortised over the tokens.
//
// MatMulFast (MathMode::kInt8): Q4_0 Q4_1 Q5_0 Q5_1 Q4_K Q6_K decode meets the token's activations quantized
// to int8 per 32-block (ActQ8) in integer dot products (QuantPath: row tiles of kRowTile rows handed out
// dynamically; two blocks per 512-bit vpdpbusd on AVX-512); everything else (prefill, Q8_0 and Q5_K decode,
// float weights) takes MatMulFp32Act's paths.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <cpuid.h>
#endif

#include "ops/dequantize.h"
#include "ops/matmul.h"
#include "ops/matmul_fast_kernels.h"
#include "ops/quantize_activations.h"

namespace razor {

namespace {

constexpr int kRowTile = 16;    // weight rows per work unit
constexpr int kTokenBlock = 64;  // tokens per work unit of the float-weight tile kernels
constexpr int64_t kMultiTokenMax = 12;  // most tokens of MultiMatVecPath (see there)

Isa BestIsa() {
#if defined(__x86_64__) && defined(__GNUC__)
  __builtin_cpu_init();
  // F16C through CPUID leaf 1 (ECX bit 29): not every compiler's __builtin_cpu_supports knows "f16c".
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29)) != 0;
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
  if (avx512) return Isa::kAvx512;
  if (avx2) return Isa::kAvx2;
#endif
  return Isa::kScalar;
}

bool ParseIsa(const char* s, Isa* out) {
  if (s == nullptr) return false;
  if (std::strcmp(s, "scalar") == 0) *out = Isa::kScalar;
  else if (std::strcmp(s, "avx2") == 0) *out = Isa::kAvx2;
  else if (std::strcmp(s, "avx512") == 0) *out = Isa::kAvx512;
  else return false;
  return true;
}

Isa InitialIsa() {
  const Isa best = BestIsa();
  Isa want;
  const char* env = std::getenv("RAZOR_ISA");
  if (env == nullptr || *env == '\0') return best;
  if (!ParseIsa(env, &want)) {
    std::fprintf(stderr, "razor: ignoring RAZOR_ISA=%s (expected scalar, avx2 or avx512)\n", env);
    return best;
  }
  if (static_cast<int>(want) > static_cast<int>(best)) {
    std::fprintf(stderr, "razor: RAZOR_ISA=%s is not supported by this CPU; using the best it has\n", env);
    return best;
  }
  return want;
}

std::atomic<int> g_isa{-1};

Isa CurrentIsa() {
  int v = g_isa.load(std::memory_order_relaxed);
  if (v < 0) {
    v = static_cast<int>(InitialIsa());
    g_isa.store(v, std::memory_order_relaxed);
  }
  return static_cast<Isa>(v);
}

const char* IsaName(Isa isa) {
  switch (isa) {
    case Isa::kAvx512: return "avx512";
    case Isa::kAvx2: return "avx2";
    default: return "scalar";
  }
}

void QuantTile(Isa isa, const QuantTileArgs& a) {
  if (isa == Isa::kAvx512) QuantTileAvx512(a);
  else if (isa == Isa::kAvx2) QuantTileAvx2(a);
  else QuantTileScalar(a);
}

void FloatTile(Isa isa, const FloatTileArgs& a) {
  if (isa == Isa::kAvx512) FloatTileAvx512(a);
  else if (isa == Isa::kAvx2) FloatTileAvx2(a);
  else FloatTileScalar(a);
}

bool IsLegacyQuant(TensorType t) {
  return t == TensorType::Q4_0 || t == TensorType::Q4_1 || t == TensorType::Q5_0 || t == TensorType::Q5_1 ||
         t == TensorType::Q8_0;
}
bool IsFloat(TensorType t) { return t == TensorType::F32 || t == TensorType::F16 || t == TensorType::BF16; }
bool IsKQuant(TensorType t) { return t == TensorType::Q4_K || t == TensorType::Q5_K || t == TensorType::Q6_K; }
// K-quants with fused decode kernels, fp32 (MatVecPath) and int8 (QuantPath) activations; Q5_K dequantizes
// a tile first.
bool HasMatVecKernel(TensorType t) { return t == TensorType::Q4_K || t == TensorType::Q6_K; }

struct Tiling {
  int64_t rows, n_tokens, n_row_tiles, n_token_blocks;
  int RowsIn(int64_t rt) const { return static_cast<int>(std::min<int64_t>(kRowTile, rows - rt * kRowTile)); }
  int TokensIn(int64_t tb) const {
    return static_cast<int>(std::min<int64_t>(kTokenBlock, n_tokens - tb * kTokenBlock));
  }
};

Tiling MakeTiling(int64_t rows, int64_t n_tokens) {
  return {rows, n_tokens, (rows + kRowTile - 1) / kRowTile, (n_tokens + kTokenBlock - 1) / kTokenBlock};
}

// Units per grab of ParallelForDynamic in the streaming (memory-bound) paths: about 8 grabs per thread,
// so a thread that the shared machine slows down hands the rest of its share to the others, while each
// grab stays a long contiguous run of rows for the hardware prefetcher.
int64_t DecodeGrain(int64_t units, const ThreadPool& pool) {
  return std::max<int64_t>(1, units / (8 * static_cast<int64_t>(pool.size())));
}

// Streaming paths (decode): threads take contiguous runs of whole kRowTile row tiles (DecodeGrain tiles
// a grab) and run fn(r0, r1) on rows [r0, r1).
template <class Fn>
void ForEachRowRun(int64_t rows, ThreadPool& pool, Fn&& fn) {
  const int64_t n_row_tiles = (rows + kRowTile - 1) / kRowTile;
  pool.ParallelForDynamic(n_row_tiles, DecodeGrain(n_row_tiles, pool), [&](int64_t rt0, int64_t rt1) {
    fn(rt0 * kRowTile, std::min(rows, rt1 * kRowTile));
  });
}

// Decode with 8-bit activations: the token quantized once (ActQ8), then threads take contiguous runs of
// row tiles (DecodeGrain) through the integer kernels.
void QuantPath(Isa isa, const TensorView& w, const float* x, float* y, ThreadPool& pool) {
  const int64_t cols = w.cols();
  thread_local std::vector<uint8_t> act;  // one ActQ8 row; the caller's, reused
  act.resize(ActQ8RowBytes(cols));
  QuantizeRowActQ8(x, cols, act.data());
  const uint8_t* act_data = act.data();
  const Tiling tl = MakeTiling(w.rows(), 1);
  pool.ParallelForDynamic(tl.n_row_tiles, DecodeGrain(tl.n_row_tiles, pool), [&](int64_t rt0, int64_t rt1) {
    for (int64_t rt = rt0; rt < rt1; ++rt) {
      const int64_t r0 = rt * kRowTile;
      QuantTile(isa, QuantTileArgs{w.type, cols / 32, w.row(r0), w.row_bytes(), tl.RowsIn(rt), act_data,
                                   act.size(), 1, y + r0, tl.rows});
    }
  });
}

void FloatPath(Isa isa, const TensorView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool) {
  const int64_t cols = w.cols();
  const Tiling tl = MakeTiling(w.rows(), n_tokens);
  pool.ParallelFor(tl.n_token_blocks * tl.n_row_tiles, [&](int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u) {
      const int64_t tb = u / tl.n_row_tiles, rt = u % tl.n_row_tiles;
      const int64_t r0 = rt * kRowTile, t0 = tb * kTokenBlock;
      FloatTile(isa, FloatTileArgs{w.type, cols, w.row(r0), w.row_bytes(), tl.RowsIn(rt), x + t0 * cols, cols,
                                   tl.TokensIn(tb), y + t0 * tl.rows + r0, tl.rows});
    }
  });
}

void PanelTile(Isa isa, const PanelTileArgs& a) {
  if (isa == Isa::kAvx512) PanelTileAvx512(a);
  else PanelTileAvx2(a);
}

void MatVecTile(Isa isa, const MatVecArgs& a) {
  if (isa == Isa::kAvx512) MatVecTileAvx512(a);
  else if (isa == Isa::kAvx2) MatVecTileAvx2(a);
  else MatVecTileScalar(a);
}

void DequantTile(Isa isa, const DequantTileArgs& a) {
  if (isa == Isa::kAvx512) DequantTileAvx512(a);
  else if (isa == Isa::kAvx2) DequantTileAvx2(a);
  else DequantTileScalar(a);
}

// Decode with fp32 activations: threads take contiguous runs of rows (DecodeGrain) through the fused
// matrix-vector kernel (4 rows at a time for legacy quants, one for K-quants).
void MatVecPath(Isa isa, const TensorView& w, const float* x, float* y, ThreadPool& pool) {
  const int64_t rows = w.rows(), cols = w.cols();
  // Q4_K's mins meet the sums of x over its 32-element sub-blocks: once per product, not per row or grab.
  thread_local std::vector<float> xs;  // the caller's, read by the workers through xs_data
  const float* xs_data = nullptr;
  if (w.type == TensorType::Q4_K) {
    xs.resize(static_cast<size_t>(cols / 32));
    for (int64_t c = 0; c < cols / 32; ++c) {
      float sum = 0.0f;
      for (int i = 0; i < 32; ++i) sum += x[c * 32 + i];
      xs[c] = sum;
    }
    xs_data = xs.data();
  }
  ForEachRowRun(rows, pool, [&](int64_t r0, int64_t r1) {
    MatVecTile(isa, MatVecArgs{w.type, cols / 32, cols, w.row(r0), w.row_bytes(), static_cast<int>(r1 - r0), x,
                               y + r0, xs_data});
  });
}

void MultiMatVecTile(Isa isa, const MultiMatVecArgs& a) {
  if (isa == Isa::kAvx512) MultiMatVecTileAvx512(a);
  else if (isa == Isa::kAvx2) MultiMatVecTileAvx2(a);
  else MultiMatVecTileScalar(a);
}

// Batched decode with fp32 activations (2 .. kMultiTokenMax tokens, legacy quants; both MathModes): threads
// take contiguous runs of rows (ForEachRowRun) and multiply each run with every token, its blocks dequantized
// in registers once per micro-tile of tokens (the scalar level: a row, then every token). Above
// kMultiTokenMax the dequantized tile of DequantTilePath, reused by many more tokens, costs less
// (bench/matmul_bench.cpp, Q4_1 1536 x 576, 1 thread, AVX-512: 8 tokens 184 us here, 9-16 tokens ~300 us
// there, so they meet near 13; measured at 16: 369 us here, 304 there).
void MultiMatVecPath(Isa isa, const TensorView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool) {
  const int64_t rows = w.rows(), cols = w.cols();
  ForEachRowRun(rows, pool, [&](int64_t r0, int64_t r1) {
    MultiMatVecTile(isa, MultiMatVecArgs{w.type, cols / 32, cols, w.row(r0), w.row_bytes(),
                                         static_cast<int>(r1 - r0), x, cols, static_cast<int>(n_tokens), y + r0,
                                         rows});
  });
}

// Asks for the n bytes at p in L2 (one request per 64-byte line; the x86 kernels' PrefetchBytes asks for L1):
// the next tile's weights arrive from memory while this tile's products run.
void PrefetchToL2(const uint8_t* p, size_t n) {
  for (size_t o = 0; o < n; o += 64) __builtin_prefetch(p + o, 0, 2);
}

// Rows per dequantized tile: as many as fit ~kDequantTileBytes of fp32 (an L2-resident buffer that every
// token block reuses), a multiple of kRowTile, at least kRowTile.
constexpr int64_t kDequantTileBytes = 128 * 1024;
int64_t DequantTileRows(int64_t cols) {
  const int64_t fit = kDequantTileBytes / (4 * cols) / kRowTile * kRowTile;
  return std::max<int64_t>(kRowTile, fit);
}

// Activations of n_tokens tokens in panels of kPanelTokens (matmul_fast_kernels.h), zero-padded:
// xp[(p * cols + k) * kPanelTokens + t] = x[(p * kPanelTokens + t) * cols + k].
void PackPanels(const float* x, int64_t n_tokens, int64_t cols, std::vector<float>* xp, ThreadPool& pool) {
  const int64_t n_panels = (n_tokens + kPanelTokens - 1) / kPanelTokens;
  xp->assign(static_cast<size_t>(n_panels * cols * kPanelTokens), 0.0f);
  float* out = xp->data();
  pool.ParallelFor(n_panels, [&](int64_t p0, int64_t p1) {
    for (int64_t p = p0; p < p1; ++p) {
      const int64_t nt = std::min<int64_t>(kPanelTokens, n_tokens - p * kPanelTokens);
      float* panel = out + p * cols * kPanelTokens;
      for (int64_t t = 0; t < nt; ++t) {
        const float* row = x + (p * kPanelTokens + t) * cols;
        for (int64_t k = 0; k < cols; ++k) panel[k * kPanelTokens + t] = row[k];
      }
    }
  });
}

// Quantized weights with fp32 activations (prefill; decode of Q5_K; batched decode of K-quants and of more
// than kMultiTokenMax tokens): a tile of weight rows is
// dequantized once (SIMD for legacy quants) into an fp32 buffer, then multiplied with every token:
// on AVX2 / AVX-512 against activation panels packed once per call (PanelTile), on the scalar
// level by the fp32 tile kernel per token block. Units are row tiles, so each tile is dequantized by
// one thread, once.
void DequantTilePath(Isa isa, const TensorView& w, const float* x, int64_t n_tokens, float* y,
                     ThreadPool& pool) {
  const int64_t rows = w.rows(), cols = w.cols();
  const int64_t tile_rows = DequantTileRows(cols);
  const int64_t n_tiles = (rows + tile_rows - 1) / tile_rows;
  const Tiling tl = MakeTiling(rows, n_tokens);
  const bool panels = isa != Isa::kScalar && n_tokens >= kPanelTokens / 2;
  // Packed activations: the calling thread's buffer, read by the workers through xpd (a thread_local
  // named inside the lambda would be each worker's own).
  thread_local std::vector<float> xp;
  if (panels) PackPanels(x, n_tokens, cols, &xp, pool);
  const float* xpd = xp.data();
  pool.ParallelFor(n_tiles, [&](int64_t i0, int64_t i1) {
    thread_local std::vector<float> tile;  // [tile_rows][cols] dequantized rows
    tile.resize(static_cast<size_t>(tile_rows * cols));
    for (int64_t i = i0; i < i1; ++i) {
      const int64_t r0 = i * tile_rows;
      const int nr = static_cast<int>(std::min(tile_rows, rows - r0));
      DequantTile(isa, DequantTileArgs{w.type, cols, w.row(r0), w.row_bytes(), nr, tile.data(), cols});
      if (i + 1 < i1) {  // the next tile is this thread's too (i + 1 < i1 <= n_tiles: rows r0 + nr.. exist)
        PrefetchToL2(w.row(r0 + nr), static_cast<size_t>(std::min(tile_rows, rows - r0 - nr)) * w.row_bytes());
      }
      if (panels) {
        PanelTile(isa, PanelTileArgs{cols, tile.data(), cols, nr, xpd, n_tokens, y + r0, rows});
        continue;
      }
      const auto* tile_bytes = reinterpret_cast<const uint8_t*>(tile.data());
      for (int64_t tb = 0; tb < tl.n_token_blocks; ++tb) {
        const int64_t t0 = tb * kTokenBlock;
        FloatTile(isa, FloatTileArgs{TensorType::F32, cols, tile_bytes, static_cast<size_t>(cols) * 4, nr,
                                     x + t0 * cols, cols, tl.TokensIn(tb), y + t0 * rows + r0, rows});
      }
    }
  });
}

bool UseMultiMatVec(TensorType type, int64_t n_tokens) {
  return IsLegacyQuant(type) && n_tokens >= 2 && n_tokens <= kMultiTokenMax;
}

}  // namespace

void MatMulFp32Act(const TensorView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool) {
  if (n_tokens <= 0 || w.rows() == 0) return;
  const Isa isa = CurrentIsa();
  if (IsFloat(w.type)) FloatPath(isa, w, x, n_tokens, y, pool);
  else if (n_tokens == 1 && (IsLegacyQuant(w.type) || HasMatVecKernel(w.type))) MatVecPath(isa, w, x, y, pool);
  else if (UseMultiMatVec(w.type, n_tokens)) MultiMatVecPath(isa, w, x, n_tokens, y, pool);
  else if (IsLegacyQuant(w.type) || IsKQuant(w.type)) DequantTilePath(isa, w, x, n_tokens, y, pool);
  else MatMulReference(w, x, n_tokens, y, pool);
}

const char* MatMulIsa() { return IsaName(CurrentIsa()); }

bool SetMatMulIsa(const char* name) {
  Isa want;
  if (!ParseIsa(name, &want) || static_cast<int>(want) > static_cast<int>(BestIsa())) return false;
  g_isa.store(static_cast<int>(want), std::memory_order_relaxed);
  return true;
}

void MatMulFast(const TensorView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool) {
  if (n_tokens <= 0 || w.rows() == 0) return;
  const Isa isa = CurrentIsa();
  // Where 8-bit activations are not the better way, the fp32-activation kernels run instead: prefill (the
  // panel GEMM is faster), batched decode of a few tokens (MultiMatVecPath) and Q8_0 decode. Q8_0 is mostly
  // the output head, bound by memory either way (Qwen's 151936 x 896 head, 1 thread, Zen 5: 21.2 GB/s int8,
  // 21.1 fp32), so the logits keep fp32 activations for free. Q4_K / Q6_K decode takes the integer path
  // (QuantRowQ4_K / QuantRowQ6_K: one maddubs per 32 weights instead of 4 conversions + 4 FMAs). The choice
  // does not depend on the ISA level, so the scalar level stays the SIMD levels' twin.
  const bool decode = n_tokens == 1;
  if (decode && w.type == TensorType::Q8_0) MatVecPath(isa, w, x, y, pool);
  else if (decode && (IsLegacyQuant(w.type) || HasMatVecKernel(w.type))) QuantPath(isa, w, x, y, pool);
  else if (UseMultiMatVec(w.type, n_tokens)) MultiMatVecPath(isa, w, x, n_tokens, y, pool);
  else if (IsLegacyQuant(w.type) || IsKQuant(w.type)) DequantTilePath(isa, w, x, n_tokens, y, pool);
  else if (IsFloat(w.type)) FloatPath(isa, w, x, n_tokens, y, pool);
  else MatMulReference(w, x, n_tokens, y, pool);
}

}  // namespace razor
