// Matrix-vector products of decode steps: y = x · Wᵀ for one or two input rows (m <= kGemvMaxRows) over bf16 weights,
// up to kGemvMaxMatrices matrices of one input in one launch (q / k / v, gate / up). A decode step is bound by
// reading the weights once; cuBLAS's GEMM kernels at m = 1 read the small projections at 1.4-2.8 TB/s and add
// split-K reduction kernels, and each matrix is its own launch. Here every weight row is read once with 16-byte
// streaming loads, many in flight per lane, and the input rows sit in shared memory.
//
// The input pass may also be the step's RMSNorm (x / rms(x) * gain) or SwiGLU's silu(gate) * up, and the output
// may be added to y (the residual stream): each saves a kernel launch and a pass over the activations.
//
// Numerics as the unfused path's: the input made by the same formulas in fp32 (the RMS sum in another order),
// rounded to bf16 (nearest even), bf16 x bf16 products accumulated in fp32 (per lane, then a warp sum).
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
  int64_t cols;      // a multiple of 8
  const float* x;    // [m, cols] fp32
  GemvInput input;   // what the kernel makes of x before rounding it to bf16
  bool accumulate;   // y += x · Wᵀ instead of y = x · Wᵀ
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

__device__ __forceinline__ uint4 Pack8(const float (&v)[8]) {
  return make_uint4(PackBf16(v[0], v[1]), PackBf16(v[2], v[3]), PackBf16(v[4], v[5]), PackBf16(v[6], v[7]));
}

__device__ __forceinline__ void Load8(const float* p, float (&v)[8]) {
  const float4 a = reinterpret_cast<const float4*>(p)[0], b = reinterpret_cast<const float4*>(p)[1];
  v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
}

// The input rows as bf16 in shared memory: xs[i * cols8 + c] holds columns 8c..8c+7 of row i, made as the
// unfused kernels would (cuda_kernels.cu: RmsNormKernel, SiluMulKernel) and rounded to nearest even.
template <int M>
__device__ void StageInput(const GemvArgs& a, uint4* xs) {
  const int64_t cols8 = a.cols / 8;
  __shared__ float partial[M][kWarps];
  __shared__ float inv_rms[M];
  if (a.input.kind == GemvInput::kRmsNorm) {
#pragma unroll
    for (int i = 0; i < M; ++i) {
      float ss = 0.0f;
      for (int64_t c = threadIdx.x; c < cols8; c += blockDim.x) {
        float v[8];
        Load8(a.x + i * a.cols + 8 * c, v);
#pragma unroll
        for (int j = 0; j < 8; ++j) ss += v[j] * v[j];
      }
      for (int o = 16; o > 0; o /= 2) ss += __shfl_xor_sync(0xffffffffu, ss, o);
      if (threadIdx.x % 32 == 0) partial[i][threadIdx.x / 32] = ss;
    }
    __syncthreads();
    if (threadIdx.x < M) {
      float ss = 0.0f;
      for (int w = 0; w < kWarps; ++w) ss += partial[threadIdx.x][w];
      inv_rms[threadIdx.x] = 1.0f / sqrtf(ss / static_cast<float>(a.cols) + a.input.eps);
    }
    __syncthreads();
  }
  for (int64_t k = threadIdx.x; k < M * cols8; k += blockDim.x) {
    const int64_t i = k / cols8, c = k % cols8;
    float v[8];
    Load8(a.x + i * a.cols + 8 * c, v);
    if (a.input.kind == GemvInput::kRmsNorm) {
      float g[8];
      Load8(a.input.gain + 8 * c, g);
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = (v[j] * inv_rms[i]) * g[j];
    } else if (a.input.kind == GemvInput::kSiluMul) {
      float u[8];
      Load8(a.input.up + i * a.cols + 8 * c, u);
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = v[j] / (1.0f + expf(-v[j])) * u[j];
    }
    xs[k] = Pack8(v);
  }
  __syncthreads();
}

// Grid: one block per kRowsPerBlock rows of the matrices stacked; dynamic shared memory M * cols bf16. Each
// lane keeps two sets of kUnroll x kRowsPerWarp weight words: the next set loads while the current one is
// used, and the first set loads before the input is staged (the weights do not wait for the input).
template <int M>
__global__ void __launch_bounds__(kWarps * 32) GemvKernel(GemvArgs a) {
  extern __shared__ uint4 xs[];  // [M, cols / 8]: the input rows as bf16, 8 to a word
  const int64_t cols8 = a.cols / 8;
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
  uint4 cur[kUnroll][kRowsPerWarp], next[kUnroll][kRowsPerWarp];
  auto load = [&](int64_t c0, uint4 (&wv)[kUnroll][kRowsPerWarp]) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + 32 * u;
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r)
        wv[u][r] = (c < cols8 && w[r] != nullptr) ? __ldcs(w[r] + c) : make_uint4(0, 0, 0, 0);
    }
  };
  load(lane, cur);
  StageInput<M>(a, xs);
  if (w[0] == nullptr) return;  // rows fill warps in order: a warp without a first row has none

  float acc[kRowsPerWarp][M] = {};
  for (int64_t c0 = lane; c0 < cols8; c0 += 32 * kUnroll) {
    load(c0 + 32 * kUnroll, next);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + 32 * u;
      if (c >= cols8) break;
#pragma unroll
      for (int i = 0; i < M; ++i) {
        const uint4 xv = xs[i * cols8 + c];
#pragma unroll
        for (int r = 0; r < kRowsPerWarp; ++r) acc[r][i] = Dot8(cur[u][r], xv, acc[r][i]);
      }
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
#pragma unroll
      for (int r = 0; r < kRowsPerWarp; ++r) cur[u][r] = next[u][r];
  }
#pragma unroll
  for (int r = 0; r < kRowsPerWarp; ++r) {
#pragma unroll
    for (int i = 0; i < M; ++i) {
      float v = acc[r][i];
      for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
      if (lane == 0 && y[r] != nullptr) {
        float* out = y[r] + i * y_stride[r];
        *out = a.accumulate ? *out + v : v;
      }
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
    cudaFuncAttributes attr{};
    cudaError_t e = cudaFuncGetAttributes(&attr, GemvKernel<M>);
    if (e != cudaSuccess) return static_cast<int>(e);
    // The dynamic part may take what the static reductions leave of the opt-in limit.
    e = cudaFuncSetAttribute(GemvKernel<M>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             optin - static_cast<int>(attr.sharedSizeBytes));
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
         static_cast<size_t>(m) * cols * sizeof(uint16_t) + 1024 <= smem_per_block;  // + the static reductions
}

int Gemv(const GemvMatrix* mats, int n_mats, const float* x, int64_t m, int64_t cols, const GemvInput& input,
         bool accumulate, cudaStream_t s) {
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  if (n_mats < 1 || n_mats > kGemvMaxMatrices || m < 1 || m > kGemvMaxRows || cols % 8 != 0 || !aligned(x) ||
      (input.kind == GemvInput::kRmsNorm && !aligned(input.gain)) ||
      (input.kind == GemvInput::kSiluMul && !aligned(input.up)))
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
  a.input = input;
  a.accumulate = accumulate;
  switch (m) {
    case 1: return LaunchGemv<1>(a, total, s);
    default: return LaunchGemv<2>(a, total, s);
  }
  static_assert(kGemvMaxRows == 2, "one instantiation per m");
}

}  // namespace razor::cuda
