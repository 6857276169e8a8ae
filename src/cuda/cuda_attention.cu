// Attention over ragged, paged per-head KV on the GPU (flash-decoding): every (item, query token, key split)
// is one CTA that streams its keys once for all the query heads of the KV head's group, with an online
// softmax; a second kernel merges the splits. Keys are read in their stored type (f32 / f16 / bf16) and
// widened in registers; accumulation is fp32. Semantics match ops/attention.h (AttendReference): causal by
// position (the `visible` prefix), the compensation token with its logit bias, optional ALiBi.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cfloat>

#include "cuda/cuda_kernels.h"
#include "cuda/cuda_kv_load.cuh"

namespace razor::cuda {
namespace {

constexpr int kThreads = 128;  // 4 warps
constexpr int kMaxG = 8;       // query heads handled per pass (larger groups take several passes)
constexpr int kUnroll = 4;     // keys per lane group per iteration: their loads all issue before any use

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
__global__ void __launch_bounds__(kThreads) AttendSplitKernel(AttnStep st) {
  const AttnItem it = st.items[blockIdx.x];
  const int t = blockIdx.y;
  const int split = blockIdx.z;
  if (t >= it.n_tokens || split >= it.splits) return;
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
  const int grp = warp * per_warp + lane / lpk;
  const int d0 = sub * 8;
  const bool dims = d0 < D;
  constexpr int esize = TYPE == 0 ? 4 : 2;
  const int64_t row_bytes = static_cast<int64_t>(D) * esize;
  const int64_t v_delta = static_cast<int64_t>(st.block_tokens) * row_bytes;
  const int32_t* blocks = st.block_ids + it.blocks_off;
  const float qpos = it.alibi_off >= 0 ? static_cast<float>(st.positions[it.query_pos_off + t]) : 0.0f;
  const int slot = it.partial_off + t * it.splits + split;

  extern __shared__ float smem[];
  float* sm_m = smem;                       // [ngroups, G]
  float* sm_l = sm_m + ngroups * G;     // [ngroups, G]
  float* sm_acc = sm_l + ngroups * G;   // [ngroups, G, D]

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
    // Each warp takes per_warp * kUnroll consecutive keys per iteration (lane group g of the warp: keys
    // base + g + u * per_warp), all loads first.
    for (int base = kb + warp * per_warp * kUnroll; base < ke; base += ngroups * kUnroll) {
      float k[kUnroll][8], v[kUnroll][8];
      bool valid[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        const int j = base + lane / lpk + u * per_warp;
        valid[u] = j < ke;
        if (valid[u] && dims) {
          const int row = it.first_row + j;
          const uint8_t* kp = st.pool_base + static_cast<int64_t>(blocks[row / st.block_tokens]) * st.block_bytes +
                              static_cast<int64_t>(row % st.block_tokens) * row_bytes +
                              static_cast<int64_t>(d0) * esize;
          Load8<TYPE>(kp, k[u]);
          Load8<TYPE>(kp + v_delta, v[u]);
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
        const int j = base + lane / lpk + u * per_warp;
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
    }
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

// One CTA per (item, token): the splits' (max, sum) pairs go to shared memory first and become one weight
// per (split, head) — e^(m_s - M) / L — so that the loop over splits reads only the accumulators, as
// independent loads (the splits of a 128K-token context number in the hundreds).
__global__ void __launch_bounds__(kThreads) AttendCombineKernel(AttnStep st) {
  const AttnItem it = st.items[blockIdx.x];
  const int t = blockIdx.y;
  if (t >= it.n_tokens || it.tc) return;
  const int visible = st.visible[it.visible_off + t];
  const int n = max(1, (visible + st.split_keys - 1) / st.split_keys);
  const int D = st.head_dim;
  const int G = it.n_group_heads;
  const int slot0 = it.partial_off + t * it.splits;
  extern __shared__ float weight[];  // [n, G]: e^(m_s - M_g) / L_g
  for (int i = threadIdx.x; i < n * G; i += kThreads) {
    const int s = i / G, g = i % G;
    weight[i] = st.partial_ml[(static_cast<int64_t>(slot0 + s) * st.max_group + g) * 2];  // m for now
  }
  __syncthreads();
  // A warp per head: M = max m, L = sum l e^(m - M); then weights in place.
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  for (int g = warp; g < G; g += kThreads / 32) {
    float mx = -FLT_MAX;
    for (int s = lane; s < n; s += 32) mx = fmaxf(mx, weight[s * G + g]);
    for (int o = 16; o > 0; o /= 2) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, o));
    float sum = 0.0f;
    for (int s = lane; s < n; s += 32) {
      const float l = st.partial_ml[(static_cast<int64_t>(slot0 + s) * st.max_group + g) * 2 + 1];
      const float w = l > 0.0f ? __expf(weight[s * G + g] - mx) : 0.0f;
      weight[s * G + g] = w;
      sum += w * l;
    }
    for (int o = 16; o > 0; o /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, o);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    __syncwarp();
    for (int s = lane; s < n; s += 32) weight[s * G + g] *= inv;
  }
  __syncthreads();
  for (int i = threadIdx.x; i < G * D; i += kThreads) {
    const int g = i / D, d = i % D;
    float acc = 0.0f;
#pragma unroll 8
    for (int s = 0; s < n; ++s)
      acc += weight[s * G + g] * st.partial_acc[(static_cast<int64_t>(slot0 + s) * st.max_group + g) * D + d];
    st.out[it.out_off + t * st.out_stride + static_cast<int64_t>(g) * D + d] = acc;
  }
}

}  // namespace

int Attend(const AttnStep& st, cudaStream_t s) {
  if (st.n_items == 0) return 0;
  int lpk = 1;
  while (lpk * 8 < st.head_dim) lpk *= 2;
  const int ngroups = (kThreads / 32) * (32 / lpk);
  const bool narrow = st.max_group <= 4;
  const size_t smem = sizeof(float) * static_cast<size_t>(ngroups) * (narrow ? 4 : kMaxG) * (2 + st.head_dim);
  const dim3 grid(st.n_items, st.max_tokens, st.max_splits);
  auto launch = [&](auto kernel) {
    if (smem > 48 * 1024) {  // beyond the default dynamic limit (head_dim 16: 36 KiB, 128: 33 KiB; never so far)
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem));
    }
    kernel<<<grid, kThreads, smem, s>>>(st);
  };
  switch (st.kv_type) {
    case 0: narrow ? launch(AttendSplitKernel<0, 4>) : launch(AttendSplitKernel<0, 8>); break;
    case 1: narrow ? launch(AttendSplitKernel<1, 4>) : launch(AttendSplitKernel<1, 8>); break;
    default: narrow ? launch(AttendSplitKernel<2, 4>) : launch(AttendSplitKernel<2, 8>); break;
  }
  if (cudaError_t e = cudaGetLastError(); e != cudaSuccess) return static_cast<int>(e);
  const size_t combine_smem = sizeof(float) * static_cast<size_t>(st.max_splits) * st.max_group;
  AttendCombineKernel<<<dim3(st.n_items, st.max_tokens), kThreads, combine_smem, s>>>(st);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace razor::cuda
