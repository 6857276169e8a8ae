// The elementwise, normalisation, RoPE and KV-row kernels of the CUDA backend. Each matches its CPU
// counterpart in ops/elementwise.cpp, ops/rope.cpp and kv/kv_type.cpp (same formulas, fp32 arithmetic;
// LayerNorm's statistics in double as on the CPU).
#include <algorithm>

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "cuda/cuda_kernels.h"

namespace razor::cuda {
namespace {

int Check() { return static_cast<int>(cudaGetLastError()); }

unsigned Blocks(int64_t n, int threads) {
  const int64_t b = (n + threads - 1) / threads;
  return static_cast<unsigned>(b < 1 ? 1 : (b > 1048576 ? 1048576 : b));  // grid-stride loops cover the rest
}

__device__ __forceinline__ float Bf16ToFloat(uint16_t b) { return __uint_as_float(static_cast<uint32_t>(b) << 16); }

__device__ __forceinline__ uint16_t FloatToBf16(float f) {
  uint32_t u = __float_as_uint(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);  // quiet NaN
  u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest even
  return static_cast<uint16_t>(u >> 16);
}

__global__ void EmbedKernel(const uint16_t* table, int64_t dim, const int32_t* tokens, int64_t n, float* x) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n * dim;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / dim, c = i % dim;
    x[i] = Bf16ToFloat(table[static_cast<int64_t>(tokens[t]) * dim + c]);
  }
}

__global__ void ToBf16Kernel(const float* x, int64_t n, uint16_t* y) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    y[i] = FloatToBf16(x[i]);
}

__global__ void FillRandomKernel(uint16_t* w, int64_t n, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    uint64_t z = seed + static_cast<uint64_t>(i) * 0x9e3779b97f4a7c15ull;  // splitmix64
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    const float u = static_cast<float>(z >> 40) * (1.0f / 16777216.0f);  // [0, 1)
    w[i] = FloatToBf16((2.0f * u - 1.0f) * scale);
  }
}

// Block-wide sum of one value per thread (blockDim.x a multiple of 32, at most 1024).
template <typename T>
__device__ T BlockSum(T v, T* shared) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  __syncthreads();
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T total = 0;
  for (int w = 0; w < static_cast<int>(blockDim.x / 32); ++w) total += shared[w];
  return total;
}

// One block per row.
__global__ void RmsNormKernel(const float* x, int64_t n, const float* gain, float eps, float* out) {
  __shared__ float shared[32];
  const float* r = x + blockIdx.x * n;
  float ss = 0.0f;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) ss += r[i] * r[i];
  ss = BlockSum(ss, shared);
  const float inv = 1.0f / sqrtf(ss / static_cast<float>(n) + eps);
  float* o = out + blockIdx.x * n;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) o[i] = (r[i] * inv) * gain[i];
}

__global__ void LayerNormKernel(const float* x, int64_t n, const float* gain, const float* bias, float eps,
                                float* out) {
  __shared__ double shared[32];
  const float* r = x + blockIdx.x * n;
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) s += r[i];
  const double mean = BlockSum(s, shared) / static_cast<double>(n);
  double v = 0.0;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x) v += (r[i] - mean) * (r[i] - mean);
  const double inv = 1.0 / sqrt(BlockSum(v, shared) / static_cast<double>(n) + eps);
  float* o = out + blockIdx.x * n;
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    o[i] = static_cast<float>((r[i] - mean) * inv) * gain[i] + bias[i];
}

__global__ void AddBiasKernel(float* x, const float* bias, int64_t m, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < m * n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] += bias[i % n];
}

__global__ void AddKernel(float* x, const float* y, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] += y[i];
}

__global__ void SiluMulKernel(float* gate, const float* up, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = gate[i];
    gate[i] = g / (1.0f + expf(-g)) * up[i];
  }
}

__global__ void GeluKernel(float* x, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = x[i];
    x[i] = v * 0.5f * (1.0f + tanhf(0.79788456f * v * (1.0f + 0.044715f * v * v)));
  }
}

__global__ void GeluMulKernel(float* gate, const float* up, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float v = gate[i];
    gate[i] = v * 0.5f * (1.0f + tanhf(0.79788456f * v * (1.0f + 0.044715f * v * v))) * up[i];
  }
}

__global__ void ScaleKernel(float* x, float a, int64_t n) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x)
    x[i] *= a;
}

// One thread per (row, head, pair).
__global__ void RopeKernel(float* x, int64_t m, int64_t row_stride, int heads, int head_dim, bool interleaved,
                           const float* cos, const float* sin) {
  const int half = head_dim / 2;
  const int64_t total = m * heads * half;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int p = static_cast<int>(i % half);
    const int h = static_cast<int>((i / half) % heads);
    const int64_t t = i / (static_cast<int64_t>(half) * heads);
    float* r = x + t * row_stride + static_cast<int64_t>(h) * head_dim;
    float* a = interleaved ? &r[2 * p] : &r[p];
    float* b = interleaved ? &r[2 * p + 1] : &r[p + half];
    const float c = cos[t * half + p], s = sin[t * half + p];
    const float x0 = *a, x1 = *b;
    *a = x0 * c - x1 * s;
    *b = x1 * c + x0 * s;
  }
}

__global__ void GatherColumnsKernel(const float* src, int64_t src_stride, int64_t m, const int64_t* cols,
                                    int n_segments, int seg, float* dst, int64_t dst_stride) {
  const int64_t w = static_cast<int64_t>(n_segments) * seg;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < m * w;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t t = i / w, c = i % w;
    dst[t * dst_stride + c] = src[t * src_stride + cols[c / seg] + c % seg];
  }
}

template <int TYPE>
__device__ __forceinline__ void StoreElem(uint8_t* row, int i, float f) {
  if constexpr (TYPE == 0) reinterpret_cast<float*>(row)[i] = f;
  else if constexpr (TYPE == 1) reinterpret_cast<__half*>(row)[i] = __float2half_rn(f);
  else reinterpret_cast<uint16_t*>(row)[i] = FloatToBf16(f);
}

template <int TYPE>
__device__ __forceinline__ float LoadElem(const uint8_t* row, int i) {
  if constexpr (TYPE == 0) return reinterpret_cast<const float*>(row)[i];
  else if constexpr (TYPE == 1) return __half2float(reinterpret_cast<const __half*>(row)[i]);
  else return Bf16ToFloat(reinterpret_cast<const uint16_t*>(row)[i]);
}

// One block per row pair (K and V of row i).
template <int TYPE>
__global__ void StoreKvRowsKernel(uint8_t* base, int head_dim, const float* k, const float* v,
                                  const int64_t* key_offsets, int64_t value_delta) {
  const int64_t i = blockIdx.x;
  uint8_t* kr = base + key_offsets[i];
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) {
    StoreElem<TYPE>(kr, d, k[i * head_dim + d]);
    StoreElem<TYPE>(kr + value_delta, d, v[i * head_dim + d]);
  }
}

template <int TYPE>
__global__ void LoadKvRowsKernel(const uint8_t* base, int head_dim, const int64_t* offsets, float* out) {
  const int64_t i = blockIdx.x;
  for (int d = threadIdx.x; d < head_dim; d += blockDim.x) out[i * head_dim + d] = LoadElem<TYPE>(base + offsets[i], d);
}

// Block b adds rows b, b + gridDim.x, ...; thread d owns dimension d (blockDim.x = head_dim).
template <int TYPE>
__global__ void SumKvRowsKernel(const uint8_t* base, int head_dim, const int64_t* key_offsets, int64_t value_delta,
                                int64_t n, double* sums) {
  const int d = threadIdx.x;
  double k = 0.0, v = 0.0;
  for (int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    k += LoadElem<TYPE>(base + key_offsets[i], d);
    v += LoadElem<TYPE>(base + key_offsets[i] + value_delta, d);
  }
  atomicAdd(&sums[d], k);
  atomicAdd(&sums[head_dim + d], v);
}

__global__ void GatherRowsKernel(const uint8_t* base, size_t row_bytes, const int64_t* offsets, uint8_t* staging) {
  const int64_t i = blockIdx.x;
  const uint32_t* s = reinterpret_cast<const uint32_t*>(base + offsets[i]);
  uint32_t* d = reinterpret_cast<uint32_t*>(staging + i * row_bytes);
  for (size_t w = threadIdx.x; w < row_bytes / 4; w += blockDim.x) d[w] = s[w];
}

__global__ void ScatterRowsKernel(uint8_t* base, size_t row_bytes, const int64_t* offsets, const uint8_t* staging) {
  const int64_t i = blockIdx.x;
  const uint32_t* s = reinterpret_cast<const uint32_t*>(staging + i * row_bytes);
  uint32_t* d = reinterpret_cast<uint32_t*>(base + offsets[i]);
  for (size_t w = threadIdx.x; w < row_bytes / 4; w += blockDim.x) d[w] = s[w];
}

constexpr int kThreads = 256;

}  // namespace

int Embed(const uint16_t* table, int64_t dim, const int32_t* tokens, int64_t n, float* x, cudaStream_t s) {
  EmbedKernel<<<Blocks(n * dim, kThreads), kThreads, 0, s>>>(table, dim, tokens, n, x);
  return Check();
}

int ToBf16(const float* x, int64_t n, uint16_t* y, cudaStream_t s) {
  ToBf16Kernel<<<Blocks(n, kThreads), kThreads, 0, s>>>(x, n, y);
  return Check();
}

int FillRandomBf16(uint16_t* w, int64_t n, uint64_t seed, float scale, cudaStream_t s) {
  FillRandomKernel<<<Blocks(n, kThreads), kThreads, 0, s>>>(w, n, seed, scale);
  return Check();
}

int Norm(const float* x, int64_t m, int64_t n, const float* gain, const float* bias, float eps, float* out,
         cudaStream_t s) {
  if (m == 0) return 0;
  const int threads = n >= 1024 ? 1024 : n >= 256 ? 256 : 32;
  if (bias) LayerNormKernel<<<static_cast<unsigned>(m), threads, 0, s>>>(x, n, gain, bias, eps, out);
  else RmsNormKernel<<<static_cast<unsigned>(m), threads, 0, s>>>(x, n, gain, eps, out);
  return Check();
}

int AddBias(float* x, const float* bias, int64_t m, int64_t n, cudaStream_t s) {
  AddBiasKernel<<<Blocks(m * n, kThreads), kThreads, 0, s>>>(x, bias, m, n);
  return Check();
}

int Add(float* x, const float* y, int64_t n, cudaStream_t s) {
  AddKernel<<<Blocks(n, kThreads), kThreads, 0, s>>>(x, y, n);
  return Check();
}

int SiluMul(float* gate, const float* up, int64_t n, cudaStream_t s) {
  SiluMulKernel<<<Blocks(n, kThreads), kThreads, 0, s>>>(gate, up, n);
  return Check();
}

int Gelu(float* x, int64_t n, cudaStream_t s) {
  GeluKernel<<<Blocks(n, kThreads), kThreads, 0, s>>>(x, n);
  return Check();
}

int GeluMul(float* gate, const float* up, int64_t n, cudaStream_t s) {
  GeluMulKernel<<<Blocks(n, kThreads), kThreads, 0, s>>>(gate, up, n);
  return Check();
}

int Scale(float* x, float a, int64_t n, cudaStream_t s) {
  ScaleKernel<<<Blocks(n, kThreads), kThreads, 0, s>>>(x, a, n);
  return Check();
}

int Rope(float* x, int64_t m, int64_t row_stride, int heads, int head_dim, bool interleaved, const float* cos,
         const float* sin, cudaStream_t s) {
  RopeKernel<<<Blocks(m * heads * (head_dim / 2), kThreads), kThreads, 0, s>>>(x, m, row_stride, heads, head_dim,
                                                                              interleaved, cos, sin);
  return Check();
}

int GatherColumns(const float* src, int64_t src_stride, int64_t m, const int64_t* cols, int n_segments, int seg,
                  float* dst, int64_t dst_stride, cudaStream_t s) {
  GatherColumnsKernel<<<Blocks(m * n_segments * seg, kThreads), kThreads, 0, s>>>(src, src_stride, m, cols,
                                                                                 n_segments, seg, dst, dst_stride);
  return Check();
}

int StoreKvRows(uint8_t* base, int type, int head_dim, const float* k, const float* v, const int64_t* key_offsets,
                int64_t value_delta, int64_t n, cudaStream_t s) {
  if (n == 0) return 0;
  const unsigned b = static_cast<unsigned>(n);
  const int threads = head_dim >= 128 ? 128 : 32;
  if (type == 0) StoreKvRowsKernel<0><<<b, threads, 0, s>>>(base, head_dim, k, v, key_offsets, value_delta);
  else if (type == 1) StoreKvRowsKernel<1><<<b, threads, 0, s>>>(base, head_dim, k, v, key_offsets, value_delta);
  else StoreKvRowsKernel<2><<<b, threads, 0, s>>>(base, head_dim, k, v, key_offsets, value_delta);
  return Check();
}

int LoadKvRows(const uint8_t* base, int type, int head_dim, const int64_t* offsets, int64_t n, float* out,
               cudaStream_t s) {
  if (n == 0) return 0;
  const unsigned b = static_cast<unsigned>(n);
  if (type == 0) LoadKvRowsKernel<0><<<b, 32, 0, s>>>(base, head_dim, offsets, out);
  else if (type == 1) LoadKvRowsKernel<1><<<b, 32, 0, s>>>(base, head_dim, offsets, out);
  else LoadKvRowsKernel<2><<<b, 32, 0, s>>>(base, head_dim, offsets, out);
  return Check();
}

int SumKvRows(const uint8_t* base, int type, int head_dim, const int64_t* key_offsets, int64_t value_delta, int64_t n,
              double* sums, cudaStream_t s) {
  if (n == 0) return 0;
  const unsigned b = static_cast<unsigned>(std::min<int64_t>(n, 1024));
  const unsigned t = static_cast<unsigned>(head_dim);
  if (type == 0) SumKvRowsKernel<0><<<b, t, 0, s>>>(base, head_dim, key_offsets, value_delta, n, sums);
  else if (type == 1) SumKvRowsKernel<1><<<b, t, 0, s>>>(base, head_dim, key_offsets, value_delta, n, sums);
  else SumKvRowsKernel<2><<<b, t, 0, s>>>(base, head_dim, key_offsets, value_delta, n, sums);
  return Check();
}

int GatherRows(const uint8_t* base, size_t row_bytes, const int64_t* offsets, int64_t n, uint8_t* staging,
               cudaStream_t s) {
  if (n == 0) return 0;
  GatherRowsKernel<<<static_cast<unsigned>(n), 32, 0, s>>>(base, row_bytes, offsets, staging);
  return Check();
}

int ScatterRows(uint8_t* base, size_t row_bytes, const int64_t* offsets, int64_t n, const uint8_t* staging,
                cudaStream_t s) {
  if (n == 0) return 0;
  ScatterRowsKernel<<<static_cast<unsigned>(n), 32, 0, s>>>(base, row_bytes, offsets, staging);
  return Check();
}

}  // namespace razor::cuda
