// Matrix-vector products of decode steps: y = x · Wᵀ for a few input rows (m <= kGemvMaxRows) over bf16 weights,
// up to kGemvMaxMatrices matrices of one input in one launch (q / k / v, gate / up). A decode step is bound by
// reading the weights once; cuBLAS's GEMM kernels at m = 1 read the small projections at 1.4-2.8 TB/s and add
// split-K reduction kernels, and each matrix is its own launch. Here every weight row is read once with 16-byte
// streaming loads, many in flight per lane, and the input rows sit in shared memory.
//
// Numerics as the cuBLAS path's: the input rounded to bf16 (nearest even), bf16 x bf16 products accumulated in
// fp32 (here per lane, then a warp sum).
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cuda/cuda_kernels.h"

namespace razor::cuda {
namespace {

constexpr int kWarps = 8;        // per block
constexpr int kRowsPerWarp = 2;  // weight rows a warp computes together (the input row read once for both)
constexpr int kUnroll = 4;       // 16-byte weight loads in flight per lane and row
constexpr int kRowsPerBlock = kWarps * kRowsPerWarp;

struct GemvArgs {
  GemvMatrix mats[kGemvMaxMatrices];
  int n_mats;
  int64_t cols;  // a multiple of 8
  const float* x;  // [m, cols] fp32
};

// Eight bf16 (one 16-byte word) dotted with eight bf16, accumulated into acc.
__device__ __forceinline__ float Dot8(const uint4& w, const uint4& x, float acc) {
  const uint32_t wa[4] = {w.x, w.y, w.z, w.w}, xa[4] = {x.x, x.y, x.z, x.w};
#pragma unroll
  for (int i = 0; i < 4; ++i) {
    acc = fmaf(__uint_as_float(wa[i] << 16), __uint_as_float(xa[i] << 16), acc);
    acc = fmaf(__uint_as_float(wa[i] & 0xffff0000u), __uint_as_float(xa[i] & 0xffff0000u), acc);
  }
  return acc;
}

__device__ __forceinline__ uint32_t PackBf16(float lo, float hi) {
  const uint32_t l = __bfloat16_as_ushort(__float2bfloat16_rn(lo));
  const uint32_t h = __bfloat16_as_ushort(__float2bfloat16_rn(hi));
  return l | (h << 16);
}

// Grid: one block per kRowsPerBlock rows of the matrices stacked; dynamic shared memory M * cols bf16.
template <int M>
__global__ void __launch_bounds__(kWarps * 32) GemvKernel(GemvArgs a) {
  extern __shared__ uint4 xs[];  // [M, cols / 8]: the input rows as bf16, 8 to a word
  const int64_t cols8 = a.cols / 8;
  for (int64_t i = threadIdx.x; i < M * cols8; i += blockDim.x) {
    const float4* src = reinterpret_cast<const float4*>(a.x) + 2 * i;
    const float4 p = src[0], q = src[1];
    xs[i] = make_uint4(PackBf16(p.x, p.y), PackBf16(p.z, p.w), PackBf16(q.x, q.y), PackBf16(q.z, q.w));
  }
  __syncthreads();

  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const uint4* w[kRowsPerWarp];
  float* y[kRowsPerWarp];
  int64_t y_stride[kRowsPerWarp];
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
    int64_t row = (static_cast<int64_t>(blockIdx.x) * kWarps + warp) * kRowsPerWarp + r;
    w[r] = nullptr;
    y[r] = nullptr;
    y_stride[r] = 0;
    for (int s = 0; s < a.n_mats; ++s) {
      if (row < a.mats[s].rows) {
        w[r] = reinterpret_cast<const uint4*>(a.mats[s].w) + row * cols8;
        y[r] = a.mats[s].y + row;
        y_stride[r] = a.mats[s].rows;
        break;
      }
      row -= a.mats[s].rows;
    }
  }
  if (w[0] == nullptr) return;  // rows fill warps in order: a warp without a first row has none

  float acc[kRowsPerWarp][M] = {};
  for (int64_t c0 = lane; c0 < cols8; c0 += 32 * kUnroll) {
    uint4 wv[kUnroll][kRowsPerWarp];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + 32 * u;
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r)
        wv[u][r] = (c < cols8 && w[r] != nullptr) ? __ldcs(w[r] + c) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + 32 * u;
      if (c >= cols8) break;
#pragma unroll
      for (int i = 0; i < M; ++i) {
        const uint4 xv = xs[i * cols8 + c];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) acc[r][i] = Dot8(wv[u][r], xv, acc[r][i]);
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
#pragma unroll
    for (int i = 0; i < M; ++i) {
      float v = acc[r][i];
      for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0 && y[r] != nullptr) y[r][i * y_stride[r]] = v;
    }
  }
}

template <int M>
int LaunchGemv(const GemvArgs& a, int64_t total_rows, cudaStream_t s) {
  const size_t smem = static_cast<size_t>(M) * a.cols * sizeof(uint16_t);
  static bool opted_in = false;  // one attribute call per instantiation (the backend drives one stream)
  if (!opted_in) {
    int dev = 0, optin = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
    const cudaError_t e = cudaFuncSetAttribute(GemvKernel<M>, cudaFuncAttributeMaxDynamicSharedMemorySize, optin);
    if (e != cudaSuccess) return static_cast<int>(e);
    opted_in = true;
  }
  const auto blocks = static_cast<unsigned>((total_rows + kRowsPerBlock - 1) / kRowsPerBlock);
  GemvKernel<M><<<blocks, kWarps * 32, smem, s>>>(a);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

bool GemvFits(int64_t m, int64_t cols, size_t smem_per_block) {
  return m >= 1 && m <= kGemvMaxRows && cols > 0 && cols % 8 == 0 &&
         static_cast<size_t>(m) * cols * sizeof(uint16_t) <= smem_per_block;
}

int Gemv(const GemvMatrix* mats, int n_mats, const float* x, int64_t m, int64_t cols, cudaStream_t s) {
  if (n_mats < 1 || n_mats > kGemvMaxMatrices || m < 1 || m > kGemvMaxRows || cols % 8 != 0 ||
      reinterpret_cast<uintptr_t>(x) % 16 != 0)
    return static_cast<int>(cudaErrorInvalidValue);
  GemvArgs a{};
  int64_t total = 0;
  for (int i = 0; i < n_mats; ++i) {
    if (reinterpret_cast<uintptr_t>(mats[i].w) % 16 != 0) return static_cast<int>(cudaErrorInvalidValue);
    a.mats[i] = mats[i];
    total += mats[i].rows;
  }
  a.n_mats = n_mats;
  a.cols = cols;
  a.x = x;
  switch (m) {
    case 1: return LaunchGemv<1>(a, total, s);
    case 2: return LaunchGemv<2>(a, total, s);
    case 3: return LaunchGemv<3>(a, total, s);
    case 4: return LaunchGemv<4>(a, total, s);
    case 5: return LaunchGemv<5>(a, total, s);
    case 6: return LaunchGemv<6>(a, total, s);
    case 7: return LaunchGemv<7>(a, total, s);
    default: return LaunchGemv<8>(a, total, s);
  }
}

}  // namespace razor::cuda
