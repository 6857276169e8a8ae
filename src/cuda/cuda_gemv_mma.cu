// Matrix products of batched decode steps: y = x · Wᵀ for 3..16 input rows (one per sequence) over bf16 weights,
// on tensor cores. Like the one- and two-row GEMV (cuda_gemv.cu) the step is bound by reading the weights once;
// that kernel's CUDA-core dot products and shared-memory input reads grow with the rows, and cuBLAS's GEMMs at
// m = 3..16 read the weights at well under the bandwidth (measured on the H200: batch 8 at 11.97 ms/step against
// a 4.84 ms floor). Here each warp streams 16 weight rows with 16-byte loads straight into the A operands of
// mma.m16n8k16 (the dot product's column order is free, so each lane's 16-byte word serves as its slots of two
// k-steps), the input rows are the B operand read from a bf16 copy staged once per launch, and the columns are
// split over the block's warps, whose partial sums meet in shared memory (a fixed order: results do not vary
// between runs).
//
// Numerics as the unfused path's: the input made by the same formulas in fp32, rounded to bf16 (nearest even),
// bf16 x bf16 products accumulated in fp32.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include "cuda/cuda_kernels.h"
#include "cuda/cuda_mma.cuh"

namespace razor::cuda {
namespace {

constexpr int kWarps = 8;        // per block; they split the columns
constexpr int kUnroll = 4;       // 32-column groups a lane loads per step (two 16-byte weight words each)
constexpr int kRowsPerBlock = 16;  // one mma row tile
constexpr int kStageThreads = 256;

struct MmaArgs {
  GemvMatrix mats[kGemvMaxMatrices];
  int n_mats;
  int64_t cols;      // a multiple of 8
  const uint4* xb;   // [m, cols / 8]: the staged input rows as bf16, 8 to a word
  int m;
  bool accumulate;   // y += x · Wᵀ instead of y = x · Wᵀ
};

// Row `row` of the matrices stacked: its weights, output and the output's row stride; past the last matrix,
// w is its last row (read, never written: every load of the main loop stays unconditional) and y nullptr.
struct RowRef {
  const uint4* w;
  float* y;
  int64_t y_stride;
};
__device__ __forceinline__ RowRef Row(const MmaArgs& a, int64_t row) {
  RowRef r{nullptr, nullptr, 0};
  const int64_t cols8 = a.cols / 8;
#pragma unroll
  for (int s = 0; s < kGemvMaxMatrices; ++s) {
    if (s < a.n_mats && r.w == nullptr) {
      if (row < a.mats[s].rows) {
        r.w = reinterpret_cast<const uint4*>(a.mats[s].w) + row * cols8;
        r.y = a.mats[s].y + row;
        r.y_stride = a.mats[s].rows;
      } else if (s == a.n_mats - 1) {
        r.w = reinterpret_cast<const uint4*>(a.mats[s].w) + (a.mats[s].rows - 1) * cols8;
      }
      row -= a.mats[s].rows;
    }
  }
  return r;
}

__device__ __forceinline__ uint32_t PackBf16(float lo, float hi) {
  const uint32_t l = __bfloat16_as_ushort(__float2bfloat16_rn(lo));
  const uint32_t h = __bfloat16_as_ushort(__float2bfloat16_rn(hi));
  return l | (h << 16);
}

// Grid: one block per input row; writes xb[row] = f(x[row]) as bf16 (f: GemvInput), as cuda_gemv.cu's StageInput.
__global__ void __launch_bounds__(kStageThreads) StageKernel(const float* x, int64_t cols, GemvInput in, uint4* xb) {
  const int64_t cols8 = cols / 8;
  const float4* row = reinterpret_cast<const float4*>(x + blockIdx.x * cols);
  float inv_rms = 1.0f;
  if (in.kind == GemvInput::kRmsNorm) {
    __shared__ float partial[kStageThreads / 32];
    float ss = 0.0f;
    for (int64_t c = threadIdx.x; c < cols8; c += blockDim.x) {
      const float4 p = row[2 * c], q = row[2 * c + 1];
      ss += p.x * p.x + p.y * p.y + p.z * p.z + p.w * p.w + q.x * q.x + q.y * q.y + q.z * q.z + q.w * q.w;
    }
    for (int o = 16; o > 0; o /= 2) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if (threadIdx.x % 32 == 0) partial[threadIdx.x / 32] = ss;
    __syncthreads();
    ss = 0.0f;
    for (int w = 0; w < kStageThreads / 32; ++w) ss += partial[w];
    inv_rms = 1.0f / sqrtf(ss / static_cast<float>(cols) + in.eps);
  }
  for (int64_t c = threadIdx.x; c < cols8; c += blockDim.x) {
    const float4 p = row[2 * c], q = row[2 * c + 1];
    float v[8] = {p.x, p.y, p.z, p.w, q.x, q.y, q.z, q.w};
    if (in.kind == GemvInput::kRmsNorm) {
      const float4 g0 = reinterpret_cast<const float4*>(in.gain)[2 * c];
      const float4 g1 = reinterpret_cast<const float4*>(in.gain)[2 * c + 1];
      const float g[8] = {g0.x, g0.y, g0.z, g0.w, g1.x, g1.y, g1.z, g1.w};
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = (v[j] * inv_rms) * g[j];
    } else if (in.kind == GemvInput::kSiluMul) {
      const float4* up = reinterpret_cast<const float4*>(in.up + blockIdx.x * cols);
      const float4 u0 = up[2 * c], u1 = up[2 * c + 1];
      const float u[8] = {u0.x, u0.y, u0.z, u0.w, u1.x, u1.y, u1.z, u1.w};
#pragma unroll
      for (int j = 0; j < 8; ++j) v[j] = v[j] / (1.0f + expf(-v[j])) * u[j];
    }
    xb[blockIdx.x * cols8 + c] =
        make_uint4(PackBf16(v[0], v[1]), PackBf16(v[2], v[3]), PackBf16(v[4], v[5]), PackBf16(v[6], v[7]));
  }
}

// Grid: one block per 16 rows of the matrices stacked. Lane (g, t) = (lane / 4, lane % 4) loads, for each
// 32-column group, word t (columns 8t..8t+7) of rows g and g + 8 and of input rows g, g + 8 (< m): the A
// fragment of m16n8k16 wants row g's k-slots {2t, 2t+1, 2t+8, 2t+9} from lane (g, t), B wants input row g's
// same slots, so mapping slots 2t, 2t+1, 2t+8, 2t+9 to columns 8t..8t+3 (first k-step) and 8t+4..8t+7 (second)
// in both makes the two mma sum every column of the group once. NT: n-tiles of 8 input rows (m <= 8 NT).
template <int NT>
__global__ void __launch_bounds__(kWarps * 32) GemvMmaKernel(const __grid_constant__ MmaArgs a) {
  __shared__ float4 partial[kWarps][NT][32];  // each warp's accumulators, lane order
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g = lane / 4, t = lane % 4;
  const int64_t cols8 = a.cols / 8;
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock;
  const uint4* wlo = Row(a, row0 + g).w;
  const uint4* whi = Row(a, row0 + g + 8).w;
  // Input rows past m read row m - 1: their products land in output columns never written.
  const uint4* xr[NT];
#pragma unroll
  for (int n = 0; n < NT; ++n) xr[n] = a.xb + min(n * 8 + g, a.m - 1) * cols8;

  float acc[NT][4] = {};
  // Words (j0 + u) * 4 + t of kUnroll groups: the weights of rows g, g + 8 and the input rows' same columns.
  struct Step {
    uint4 lo[kUnroll], hi[kUnroll], x[kUnroll][NT];
  };
  const auto load = [&](int64_t j0, Step& st) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = (j0 + u) * 4 + t;
      st.lo[u] = __ldcs(wlo + c);
      st.hi[u] = __ldcs(whi + c);
#pragma unroll
      for (int n = 0; n < NT; ++n) st.x[u][n] = __ldg(xr[n] + c);
    }
  };
  const auto multiply = [&](const Step& st) {
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const uint32_t a0[4] = {st.lo[u].x, st.hi[u].x, st.lo[u].y, st.hi[u].y};
      const uint32_t a1[4] = {st.lo[u].z, st.hi[u].z, st.lo[u].w, st.hi[u].w};
#pragma unroll
      for (int n = 0; n < NT; ++n) {
        Mma<2>(acc[n], a0, st.x[u][n].x, st.x[u][n].y);
        Mma<2>(acc[n], a1, st.x[u][n].z, st.x[u][n].w);
      }
    }
  };
  // Whole steps (every word inside the row), two in flight: the next step loads while this one multiplies.
  const int64_t full_groups = cols8 / 4, stride = kWarps * kUnroll;
  int64_t j0 = static_cast<int64_t>(warp) * kUnroll;
  if (j0 + kUnroll <= full_groups) {
    Step cur, next;
    load(j0, cur);
    for (; j0 + stride + kUnroll <= full_groups; j0 += stride) {
      load(j0 + stride, next);
      multiply(cur);
      cur = next;
    }
    multiply(cur);
    j0 += stride;
  }
  // The steps above cover groups [0, tail): the rest one group at a time over the warps, words past the row's
  // end zero.
  const int64_t tail = full_groups / kUnroll * kUnroll;
  for (int64_t j = tail + warp; j * 4 < cols8; j += kWarps) {
    const int64_t c = j * 4 + t;
    const uint4 zero = make_uint4(0, 0, 0, 0);
    const bool in = c < cols8;
    const uint4 lo = in ? __ldcs(wlo + c) : zero, hi = in ? __ldcs(whi + c) : zero;
    const uint32_t a0[4] = {lo.x, hi.x, lo.y, hi.y};
    const uint32_t a1[4] = {lo.z, hi.z, lo.w, hi.w};
#pragma unroll
    for (int n = 0; n < NT; ++n) {
      const uint4 x = in ? __ldg(xr[n] + c) : zero;
      Mma<2>(acc[n], a0, x.x, x.y);
      Mma<2>(acc[n], a1, x.z, x.w);
    }
  }
#pragma unroll
  for (int n = 0; n < NT; ++n) partial[warp][n][lane] = make_float4(acc[n][0], acc[n][1], acc[n][2], acc[n][3]);
  __syncthreads();
  // Thread k < 128 NT sums accumulator k % 4 of lane (k / 4) % 32, n-tile k / 128, over the warps in order. The
  // accumulator layout: c0, c1 are row g, input rows 2t, 2t+1; c2, c3 row g + 8.
  for (int k = threadIdx.x; k < 128 * NT; k += blockDim.x) {
    const int n = k / 128, l = (k / 4) % 32, i = k % 4;
    float v = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) v += reinterpret_cast<const float*>(&partial[w][n][l])[i];
    const int tok = n * 8 + 2 * (l % 4) + (i & 1);
    const RowRef r = Row(a, row0 + l / 4 + (i >= 2 ? 8 : 0));
    if (tok < a.m && r.y != nullptr) {
      float* out = r.y + tok * r.y_stride;
      *out = a.accumulate ? *out + v : v;
    }
  }
}

}  // namespace

int StageGemvInput(const float* x, int64_t m, int64_t cols, const GemvInput& input, uint16_t* xb, cudaStream_t s) {
  const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
  if (m < 1 || cols % 8 != 0 || !aligned(x) || !aligned(xb) ||
      (input.kind == GemvInput::kRmsNorm && !aligned(input.gain)) ||
      (input.kind == GemvInput::kSiluMul && !aligned(input.up)))
    return static_cast<int>(cudaErrorInvalidValue);
  StageKernel<<<static_cast<unsigned>(m), kStageThreads, 0, s>>>(x, cols, input, reinterpret_cast<uint4*>(xb));
  return static_cast<int>(cudaGetLastError());
}

int GemvMma(const GemvMatrix* mats, int n_mats, const uint16_t* xb, int64_t m, int64_t cols, bool accumulate,
            cudaStream_t s) {
  if (n_mats < 1 || n_mats > kGemvMaxMatrices || m < 1 || m > kGemvMmaMaxRows || cols % 8 != 0 ||
      reinterpret_cast<uintptr_t>(xb) % 16 != 0)
    return static_cast<int>(cudaErrorInvalidValue);
  MmaArgs a{};
  int64_t total = 0;
  for (int i = 0; i < n_mats; ++i) {
    if (reinterpret_cast<uintptr_t>(mats[i].w) % 16 != 0) return static_cast<int>(cudaErrorInvalidValue);
    a.mats[i] = mats[i];
    total += mats[i].rows;
  }
  a.n_mats = n_mats;
  a.cols = cols;
  a.xb = reinterpret_cast<const uint4*>(xb);
  a.m = static_cast<int>(m);
  a.accumulate = accumulate;
  const auto blocks = static_cast<unsigned>((total + kRowsPerBlock - 1) / kRowsPerBlock);
  if (m <= 8)
    GemvMmaKernel<1><<<blocks, kWarps * 32, 0, s>>>(a);
  else
    GemvMmaKernel<2><<<blocks, kWarps * 32, 0, s>>>(a);
  static_assert(kGemvMmaMaxRows == 16, "two n-tiles at most");
  return static_cast<int>(cudaGetLastError());
}

}  // namespace razor::cuda
