// Attention over ragged, paged per-head KV on the GPU (flash-decoding): every (item, query token, key split)
// is one CTA that streams its keys once for all the query heads of the KV head's group, with an online
// softmax; a second kernel merges the splits. Keys and values reach shared memory in tiles through a cp.async
// pipeline of kStages tiles, so that the next tiles' loads are in flight while one tile is computed on. Keys are read in their stored type (f32 / f16 / bf16) and
// widened in registers; accumulation is fp32. Semantics match ops/attention.h (AttendReference): causal by
// position (the `visible` prefix), the compensation token with its logit bias, optional ALiBi.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cfloat>

#include "cuda/cuda_kernels.h"
#include "cuda/cuda_kv_load.cuh"
#include "cuda/cuda_mma.cuh"

namespace razor::cuda {
namespace {

constexpr int kThreads = 128;  // 4 warps
constexpr int kMaxG = 8;       // query heads handled per pass (larger groups take several passes)
constexpr int kUnroll = 4;     // keys per lane group per tile
constexpr int kStages = 3;     // K/V tiles in shared memory: one computed on, the others loading


// Lanes per key: enough 8-element pieces to cover head_dim, rounded up to a power of two (<= 32).
__device__ __forceinline__ int LanesPerKey(int head_dim) {
  int lpk = 1;
  while (lpk * 8 < head_dim) lpk *= 2;
  return lpk;
}

__device__ __forceinline__ float GroupSum(float v, int lpk) {
  for (int o = lpk / 2; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// G: query heads per pass (4 for groups of up to 4, else 8: fewer registers for the common GQA-4 layouts).
template <int TYPE, int G>
__global__ void __launch_bounds__(kThreads, G <= 4 ? 3 : 1) AttendSplitKernel(AttnStep st) {
  const AttnItem it = st.items[blockIdx.x];
  const int t = blockIdx.y;
  const int split = blockIdx.z;
  if (it.tc != 0 || t >= it.n_tokens || split >= it.splits) return;
  const int visible = st.visible[it.visible_off + t];
  const bool has_comp = it.comp_off >= 0;
  const int kb = split * st.split_keys;
  const int used_splits = max(1, (visible + st.split_keys - 1) / st.split_keys);
  if (split >= used_splits) return;
  const int ke = min(visible, kb + st.split_keys);

  const int D = st.head_dim;
  const int lpk = LanesPerKey(D);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int sub = lane & (lpk - 1);
  const int per_warp = 32 / lpk;
  const int ngroups = (kThreads / 32) * per_warp;
  const int key_lane = lane / lpk;  // which of the warp's per_warp keys this lane works on
  const int grp = warp * per_warp + key_lane;
  const int d0 = sub * 8;
  const bool dims = d0 < D;
  constexpr int esize = TYPE == 0 ? 4 : 2;
  const int64_t row_bytes = static_cast<int64_t>(D) * esize;
  const int64_t v_delta = static_cast<int64_t>(st.block_tokens) * row_bytes;
  const int32_t* blocks = st.block_ids + it.blocks_off;
  const float qpos = it.alibi_off >= 0 ? static_cast<float>(st.positions[it.query_pos_off + t]) : 0.0f;
  const int slot = it.partial_off + t * it.splits + split;

  // Shared memory: kStages tiles of [K rows, V rows] of tile_keys stored rows each, then the merge area.
  const int tile_keys = ngroups * kUnroll;
  const int64_t tile_bytes = 2LL * tile_keys * row_bytes;
  extern __shared__ __align__(16) uint8_t smem_bytes[];
  float* sm_m = reinterpret_cast<float*>(smem_bytes + kStages * tile_bytes);  // [ngroups, G]
  float* sm_l = sm_m + ngroups * G;     // [ngroups, G]
  float* sm_acc = sm_l + ngroups * G;   // [ngroups, G, D]
  const int chunks_per_row = static_cast<int>(row_bytes / 16);
  // Each thread copies the same 16-byte piece of every rows_step-th row of a tile (no division per chunk when
  // chunks_per_row divides kThreads, as for every power-of-two row); else a general loop.
  const bool even = kThreads % chunks_per_row == 0;
  const int my_piece = threadIdx.x % chunks_per_row, my_row = threadIdx.x / chunks_per_row;
  const int rows_step = kThreads / chunks_per_row;
  const int n_tiles = (ke - kb + tile_keys - 1) / tile_keys;
  auto copy_chunk = [&](uint8_t* stage, int t0, int r, int piece) {
    const int j = t0 + r;
    const uint8_t* src = st.pool_base;
    int bytes = 0;
    if (j < ke) {
      src = PoolRow(st, blocks, it.first_row + j, row_bytes) + piece * 16;
      bytes = 16;
    }
    CpAsync16(stage + r * row_bytes + piece * 16, src, bytes);
    CpAsync16(stage + (tile_keys + r) * row_bytes + piece * 16, bytes ? src + v_delta : src, bytes);
  };
  // Starts the copy of tile `tile` (keys kb + tile * tile_keys ...) into its stage; one commit group per call.
  auto issue = [&](int tile) {
    if (tile < n_tiles) {
      uint8_t* stage = smem_bytes + (tile % kStages) * tile_bytes;
      const int t0 = kb + tile * tile_keys;
      if (even) {
        for (int r = my_row; r < tile_keys; r += rows_step) copy_chunk(stage, t0, r, my_piece);
      } else {
        for (int c = threadIdx.x; c < tile_keys * chunks_per_row; c += kThreads)
          copy_chunk(stage, t0, c / chunks_per_row, c % chunks_per_row);
      }
    }
    CpAsyncCommit();
  };

  for (int g0 = 0; g0 < it.n_group_heads; g0 += G) {
    const int gn = min(G, it.n_group_heads - g0);
    float q[G][8], m[G], l[G], acc[G][8], slope[G];
#pragma unroll
    for (int g = 0; g < G; ++g) {
      m[g] = -FLT_MAX;
      l[g] = 0.0f;
      slope[g] = (g < gn && it.alibi_off >= 0) ? st.bias[it.alibi_off + g0 + g] : 0.0f;
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        acc[g][e] = 0.0f;
        q[g][e] = (g < gn && dims)
                      ? st.q[it.q_off + t * st.q_stride + static_cast<int64_t>(g0 + g) * D + d0 + e] * st.scale
                      : 0.0f;
      }
    }
    // Online softmax update with one key (k, v: this lane's 8 dims) and its per-head logit bias.
    auto update = [&](const float* k, const float* v, const float* bias) {
      float s[G];
#pragma unroll
      for (int g = 0; g < G; ++g) {
        float d = 0.0f;
#pragma unroll
        for (int e = 0; e < 8; ++e) d += q[g][e] * k[e];
        s[g] = GroupSum(d, lpk) + bias[g];
      }
#pragma unroll
      for (int g = 0; g < G; ++g) {
        if (g >= gn) continue;
        const float mn = fmaxf(m[g], s[g]);
        const float a = __expf(m[g] - mn), p = __expf(s[g] - mn);
        l[g] = l[g] * a + p;
#pragma unroll
        for (int e = 0; e < 8; ++e) acc[g][e] = acc[g][e] * a + p * v[e];
        m[g] = mn;
      }
    };
    // The shuffles inside update() need every lane of the warp: loops are warp-uniform, and a lane without a
    // key of its own takes part with a -inf logit (no effect on its softmax state).
    if (has_comp && split == 0 && warp == 0) {
      const bool mine = grp == 0;
      float k[8], v[8], b[G];
      const float* c = st.comp + it.comp_off;
#pragma unroll
      for (int e = 0; e < 8; ++e) {
        k[e] = mine && dims ? c[d0 + e] : 0.0f;
        v[e] = mine && dims ? c[D + d0 + e] : 0.0f;
      }
#pragma unroll
      for (int g = 0; g < G; ++g)
        b[g] = mine && g < gn ? st.bias[it.comp_bias_off + t * it.n_group_heads + g0 + g] : -INFINITY;
      update(k, v, b);
    }
    // Tiles of tile_keys keys; within one, each warp takes per_warp * kUnroll consecutive keys (lane group g of
    // the warp: keys warp_base + g + u * per_warp), read from shared memory.
#pragma unroll
    for (int p = 0; p < kStages - 1; ++p) issue(p);
    for (int tile = 0; tile < n_tiles; ++tile) {
      issue(tile + kStages - 1);
      CpAsyncWait<kStages - 1>();  // this tile's group is complete (at most kStages - 1 younger ones pending)
      __syncthreads();
      const uint8_t* stage = smem_bytes + (tile % kStages) * tile_bytes;
      const int base = kb + tile * tile_keys + warp * per_warp * kUnroll;
      float k[kUnroll][8], v[kUnroll][8];
      bool valid[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int r = warp * per_warp * kUnroll + key_lane + u * per_warp;
        valid[u] = base + key_lane + u * per_warp < ke;
        if (dims) {
          Load8<TYPE>(stage + r * row_bytes + static_cast<int64_t>(d0) * esize, k[u]);  // zeros past the end
          Load8<TYPE>(stage + (tile_keys + r) * row_bytes + static_cast<int64_t>(d0) * esize, v[u]);
        } else {
#pragma unroll
          for (int e = 0; e < 8; ++e) k[u][e] = v[u][e] = 0.0f;
        }
      }
      // All kUnroll scores first, then one rescale of the running state per head for the whole batch of keys
      // (the exponentials and the accumulator rescale are what bound this loop, not the loads).
      float sc[kUnroll][G];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int j = base + key_lane + u * per_warp;
        const float kpos = valid[u] && it.alibi_off >= 0 ? static_cast<float>(st.positions[it.key_pos_off + j]) : 0.0f;
#pragma unroll
        for (int g = 0; g < G; ++g) {
          float d = 0.0f;
#pragma unroll
          for (int e = 0; e < 8; ++e) d += q[g][e] * k[u][e];
          const float dot = GroupSum(d, lpk);  // every lane shuffles, valid or not
          sc[u][g] = valid[u] ? dot - slope[g] * (qpos - kpos) : -INFINITY;
        }
      }
#pragma unroll
      for (int g = 0; g < G; ++g) {
        if (g >= gn) continue;
        float mn = m[g];
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) mn = fmaxf(mn, sc[u][g]);
        const float a = __expf(m[g] - mn);
        float p[kUnroll];
        float ps = 0.0f;
#pragma unroll
        for (int u = 0; u < kUnroll; ++u) {
          p[u] = __expf(sc[u][g] - mn);
          ps += p[u];
        }
        l[g] = l[g] * a + ps;
#pragma unroll
        for (int e = 0; e < 8; ++e) {
          float x = acc[g][e] * a;
#pragma unroll
          for (int u = 0; u < kUnroll; ++u) x += p[u] * v[u][e];
          acc[g][e] = x;
        }
        m[g] = mn;
      }
      __syncthreads();  // every warp is done with this stage before a later issue() overwrites it
    }
    CpAsyncWait<0>();
    // Merge the key groups of this CTA.
#pragma unroll
    for (int g = 0; g < G; ++g) {
      if (g >= gn) continue;
      if (sub == 0) {
        sm_m[grp * G + g] = m[g];
        sm_l[grp * G + g] = l[g];
      }
      if (dims)
#pragma unroll
        for (int e = 0; e < 8; ++e) sm_acc[(grp * G + g) * D + d0 + e] = acc[g][e];
    }
    __syncthreads();
    for (int i = threadIdx.x; i < gn * D; i += kThreads) {
      const int g = i / D, d = i % D;
      float mx = -FLT_MAX;
      for (int r = 0; r < ngroups; ++r) mx = fmaxf(mx, sm_m[r * G + g]);
      float ls = 0.0f, as = 0.0f;
      for (int r = 0; r < ngroups; ++r) {
        const float w = sm_l[r * G + g] > 0.0f ? __expf(sm_m[r * G + g] - mx) : 0.0f;
        ls += sm_l[r * G + g] * w;
        as += sm_acc[(r * G + g) * D + d] * w;
      }
      const int64_t ps = static_cast<int64_t>(slot) * st.max_group + g0 + g;
      st.partial_acc[ps * D + d] = as;
      if (d == 0) {
        st.partial_ml[ps * 2] = mx;
        st.partial_ml[ps * 2 + 1] = ls;
      }
    }
    __syncthreads();
  }
}

// One CTA per (item, token, group head): the splits' (max, sum) pairs become one weight per split,
// e^(m_s - M) / L, in shared memory; then thread groups of D / 4 lanes each add every groups-th split's
// accumulator, 4 dims (one float4) a lane, and the groups' sums are added at the end. A long
// context has hundreds of splits for the 32 CTAs of a batch-1 layer: many groups keep the independent loads in
// flight instead of a chain of a few hundred per thread.
constexpr int kCombineThreads = 512;

__device__ __forceinline__ float BlockMax(float v, float* red) {
  for (int o = 16; o > 0; o /= 2) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = red[0];
  for (int w = 1; w < kCombineThreads / 32; ++w) r = fmaxf(r, red[w]);
  __syncthreads();
  return r;
}

__device__ __forceinline__ float BlockAdd(float v, float* red) {
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(0xffffffffu, v, o);
  if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
  __syncthreads();
  float r = 0.0f;
  for (int w = 0; w < kCombineThreads / 32; ++w) r += red[w];
  __syncthreads();
  return r;
}

// The combine's thread groups: head_dim / 4 lanes each, one float4 a lane (K/V rows are 16-byte aligned, so
// head_dim is a multiple of 8 wherever these kernels run).
__host__ __device__ constexpr int CombineGroups(int head_dim) { return kCombineThreads / (head_dim / 4); }

__global__ void __launch_bounds__(kCombineThreads) AttendCombineKernel(AttnStep st) {
  const AttnItem it = st.items[blockIdx.x];
  const int t = blockIdx.y, g = blockIdx.z;
  if (t >= it.n_tokens || g >= it.n_group_heads || it.tc == 1) return;
  const int visible = st.visible[it.visible_off + t];
  const int n = max(1, (visible + st.split_keys - 1) / st.split_keys);
  const int D = st.head_dim;
  const int64_t slot0 = it.partial_off + static_cast<int64_t>(t) * it.splits;
  extern __shared__ float4 smem4[];  // [n] split weights, [n] split sums, then [groups, D] partial sums
  float* weight = reinterpret_cast<float*>(smem4);
  float* lsum = weight + n;
  __shared__ float red[kCombineThreads / 32];
  float mx = -FLT_MAX;
  for (int s = threadIdx.x; s < n; s += kCombineThreads) {
    const float2 ml = *reinterpret_cast<const float2*>(&st.partial_ml[((slot0 + s) * st.max_group + g) * 2]);
    weight[s] = ml.x;
    lsum[s] = ml.y;
    mx = fmaxf(mx, ml.x);
  }
  // The decode tensor-core kernel (tc == 2) leaves the compensation token to this kernel: its logit
  // q·k̂ * scale + bias (-inf while not visible) joins as one more split of weight 1 and value v̂.
  float comp_s = -INFINITY;
  if (it.tc == 2 && it.comp_off >= 0) {
    const float* q = st.q + it.q_off + static_cast<int64_t>(t) * st.q_stride + static_cast<int64_t>(g) * D;
    float dot = 0.0f;
    for (int d = threadIdx.x; d < D; d += kCombineThreads) dot += q[d] * st.comp[it.comp_off + d];
    comp_s = BlockAdd(dot, red) * st.scale + st.bias[it.comp_bias_off + t * it.n_group_heads + g];
    mx = fmaxf(mx, comp_s);
  }
  mx = BlockMax(mx, red);  // its barriers also publish weight[] and lsum[]
  float sum = 0.0f;
  for (int s = threadIdx.x; s < n; s += kCombineThreads) {
    const float l = lsum[s];
    const float w = l > 0.0f ? __expf(weight[s] - mx) : 0.0f;
    weight[s] = w;
    sum += w * l;
  }
  const float comp_w = comp_s > -INFINITY ? __expf(comp_s - mx) : 0.0f;
  if (threadIdx.x == 0) sum += comp_w;
  sum = BlockAdd(sum, red);  // its barrier also publishes weight[]
  const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
  const int lanes = D / 4, groups = kCombineThreads / lanes;
  const int grp = threadIdx.x / lanes, d0 = (threadIdx.x % lanes) * 4;
  float* partial = weight + (2 * n + 3) / 4 * 4;  // [groups, D], 16-byte aligned
  if (grp < groups) {
    float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll 4
    for (int s = grp; s < n; s += groups) {
      const float w = weight[s];
      const float4 v = *reinterpret_cast<const float4*>(&st.partial_acc[((slot0 + s) * st.max_group + g) * D + d0]);
      acc.x += w * v.x;
      acc.y += w * v.y;
      acc.z += w * v.z;
      acc.w += w * v.w;
    }
    *reinterpret_cast<float4*>(&partial[grp * D + d0]) = acc;
  }
  __syncthreads();
  for (int dd = threadIdx.x; dd < D; dd += kCombineThreads) {
    float acc = 0.0f;
    for (int r = 0; r < groups; ++r) acc += partial[r * D + dd];
    if (comp_w > 0.0f) acc += comp_w * st.comp[it.comp_off + D + dd];
    st.out[it.out_off + t * st.out_stride + static_cast<int64_t>(g) * D + dd] = acc * inv;
  }
}

}  // namespace

int Attend(const AttnStep& st, cudaStream_t s, bool split_items, bool decode_items) {
  if (st.n_items == 0) return 0;
  if (decode_items)
    if (int e = AttendDecode(st, s); e != 0) return e;
  if (!split_items) return CombineSplits(st, s);
  int lpk = 1;
  while (lpk * 8 < st.head_dim) lpk *= 2;
  const int ngroups = (kThreads / 32) * (32 / lpk);
  const bool narrow = st.max_group <= 4;
  const size_t row_bytes = static_cast<size_t>(st.head_dim) * (st.kv_type == 0 ? 4 : 2);
  const size_t stages = kStages * 2 * static_cast<size_t>(ngroups) * kUnroll * row_bytes;  // K/V tiles
  const size_t smem =
      stages + sizeof(float) * static_cast<size_t>(ngroups) * (narrow ? 4 : kMaxG) * (2 + st.head_dim);
  const dim3 grid(st.n_items, st.max_tokens, st.max_splits);
  auto launch = [&](auto kernel) {
    // Beyond the default dynamic limit (bf16 head_dim 128: 48 KiB of tiles + 17 KiB). On a device whose
    // opt-in limit is smaller (f32 KV at head_dim 128 needs 113 KiB) the attribute fails and so does the
    // launch, whose error the caller reports.
    if (smem > 48 * 1024 &&
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)) != cudaSuccess)
      return;
    kernel<<<grid, kThreads, smem, s>>>(st);
  };
  switch (st.kv_type) {
    case 0: narrow ? launch(AttendSplitKernel<0, 4>) : launch(AttendSplitKernel<0, 8>); break;
    case 1: narrow ? launch(AttendSplitKernel<1, 4>) : launch(AttendSplitKernel<1, 8>); break;
    default: narrow ? launch(AttendSplitKernel<2, 4>) : launch(AttendSplitKernel<2, 8>); break;
  }
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return static_cast<int>(e);
  return CombineSplits(st, s);
}

int CombineSplits(const AttnStep& st, cudaStream_t s) {
  if (st.head_dim < 4 || st.head_dim % 4 != 0 || st.head_dim > 4 * kCombineThreads)
    return static_cast<int>(cudaErrorInvalidValue);
  const size_t smem = sizeof(float) * ((2 * static_cast<size_t>(st.max_splits) + 3) / 4 * 4 +
                                       static_cast<size_t>(CombineGroups(st.head_dim)) * st.head_dim);
  const dim3 grid(st.n_items, st.max_tokens, st.max_group);
  AttendCombineKernel<<<grid, kCombineThreads, smem, s>>>(st);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace razor::cuda
