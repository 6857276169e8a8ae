// Prefill attention on tensor cores: one CTA per item (a tile of query tokens of one sequence x the query heads
// of one KV head), 16 query rows per warp, keys in tiles of 64 staged in shared memory as bf16 (converted from
// the stored f32 / f16 / bf16), S = Q·Kᵀ and O += P·V by mma.sync m16n8k16 (bf16 in, fp32 accumulate), online
// softmax in registers (FlashAttention-2's layout: the S accumulator fragments become P's A fragments). Every
// K/V tile is read once for all T x G query rows of the item, where the split kernel reads it once per token.
// Items with a compensation token or ALiBi take the split kernel (cuda_attention.cu); one-token items take the
// decode kernel (cuda_attention_decode.cu).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cfloat>

#include "cuda/cuda_kernels.h"
#include "cuda/cuda_kv_load.cuh"
#include "cuda/cuda_mma.cuh"

namespace razor::cuda {
namespace {

constexpr int kTile = 64;      // keys per shared-memory tile
constexpr int kWarps = 8;      // 16 query rows each: at most 128 rows (tokens x group heads) per item
constexpr int kPad = 8;        // bf16 of padding per shared row: conflict-free fragment reads

template <int D, int TYPE>
__global__ void __launch_bounds__(kWarps * 32, 1) AttendPrefillKernel(AttnStep st) {
  const AttnItem it = st.items[blockIdx.x];
  if (it.tc != 1) return;
  __shared__ __align__(16) __nv_bfloat16 ks[kTile][D + kPad];
  __shared__ __align__(16) __nv_bfloat16 vs[kTile][D + kPad];
  const int G = it.n_group_heads, rows = G * it.n_tokens;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g8 = lane >> 2, t4 = lane & 3;
  const int row0 = warp * 16;
  int max_vis = 0;
  for (int t = 0; t < it.n_tokens; ++t) max_vis = max(max_vis, st.visible[it.visible_off + t]);
  // This thread's two rows (g8, g8 + 8 of the warp's 16); a row past the item computes on q = 0 and is not
  // written. Row r is (token r / G, head r % G).
  const int r_lo = row0 + g8, r_hi = row0 + g8 + 8;
  const bool ok_lo = r_lo < rows, ok_hi = r_hi < rows;
  const int vis_lo = ok_lo ? st.visible[it.visible_off + r_lo / G] : max_vis;
  const int vis_hi = ok_hi ? st.visible[it.visible_off + r_hi / G] : max_vis;
  auto q_at = [&](int r, int d) -> float {
    return st.q[it.q_off + static_cast<int64_t>(r / G) * st.q_stride + static_cast<int64_t>(r % G) * D + d] * st.scale;
  };
  uint32_t qa[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const int c = kk * 16 + 2 * t4;
    qa[kk][0] = ok_lo ? Pack<2>(q_at(r_lo, c), q_at(r_lo, c + 1)) : 0u;
    qa[kk][1] = ok_hi ? Pack<2>(q_at(r_hi, c), q_at(r_hi, c + 1)) : 0u;
    qa[kk][2] = ok_lo ? Pack<2>(q_at(r_lo, c + 8), q_at(r_lo, c + 9)) : 0u;
    qa[kk][3] = ok_hi ? Pack<2>(q_at(r_hi, c + 8), q_at(r_hi, c + 9)) : 0u;
  }
  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m_lo = -FLT_MAX, m_hi = -FLT_MAX, l_lo = 0.0f, l_hi = 0.0f;
  constexpr int esize = TYPE == 0 ? 4 : 2;
  const int64_t row_bytes = static_cast<int64_t>(D) * esize;
  const int64_t v_delta = static_cast<int64_t>(st.block_tokens) * row_bytes;
  const int32_t* blocks = st.block_ids + it.blocks_off;
  const bool active = row0 < rows;

  for (int kb = 0; kb < max_vis; kb += kTile) {
    __syncthreads();  // the previous tile is consumed
    for (int i = threadIdx.x; i < kTile * (D / 8); i += kWarps * 32) {
      const int key = i / (D / 8), c8 = (i % (D / 8)) * 8;
      const int j = kb + key;
      float k[8], v[8];
      if (j < max_vis) {
        const uint8_t* kp = PoolRow(st, blocks, it.first_row + j, row_bytes) + static_cast<int64_t>(c8) * esize;
        Load8<TYPE>(kp, k);
        Load8<TYPE>(kp + v_delta, v);
      } else {
#pragma unroll
        for (int e = 0; e < 8; ++e) k[e] = v[e] = 0.0f;
      }
      uint4 pk, pv;
      pk.x = Pack<2>(k[0], k[1]), pk.y = Pack<2>(k[2], k[3]), pk.z = Pack<2>(k[4], k[5]), pk.w = Pack<2>(k[6], k[7]);
      pv.x = Pack<2>(v[0], v[1]), pv.y = Pack<2>(v[2], v[3]), pv.z = Pack<2>(v[4], v[5]), pv.w = Pack<2>(v[6], v[7]);
      *reinterpret_cast<uint4*>(&ks[key][c8]) = pk;
      *reinterpret_cast<uint4*>(&vs[key][c8]) = pv;
    }
    __syncthreads();
    if (!active) continue;
    // S = Q Kᵀ for 8 n-tiles of 8 keys; K's B fragments for two n-tiles per ldmatrix (matrix q = lane / 8:
    // keys of n-tile n + q / 2, dims kk * 16 + (q % 2) * 8).
    float s[kTile / 8][4];
#pragma unroll
    for (int n = 0; n < kTile / 8; ++n) s[n][0] = s[n][1] = s[n][2] = s[n][3] = 0.0f;
    const int lq = lane >> 3, lr = lane & 7;
#pragma unroll
    for (int n = 0; n < kTile / 8; n += 2) {
#pragma unroll
      for (int kk = 0; kk < D / 16; ++kk) {
        uint32_t b[4];
        LdMatrixX4(b, &ks[(n + (lq >> 1)) * 8 + lr][kk * 16 + (lq & 1) * 8]);
        Mma<2>(s[n], qa[kk], b[0], b[1]);
        Mma<2>(s[n + 1], qa[kk], b[2], b[3]);
      }
    }
    // Causal mask (a visible prefix per row), then the online softmax of this tile.
    float mx_lo = -FLT_MAX, mx_hi = -FLT_MAX;
#pragma unroll
    for (int n = 0; n < kTile / 8; ++n) {
      const int j = kb + n * 8 + 2 * t4;
      if (j >= vis_lo) s[n][0] = -INFINITY;
      if (j + 1 >= vis_lo) s[n][1] = -INFINITY;
      if (j >= vis_hi) s[n][2] = -INFINITY;
      if (j + 1 >= vis_hi) s[n][3] = -INFINITY;
      mx_lo = fmaxf(mx_lo, fmaxf(s[n][0], s[n][1]));
      mx_hi = fmaxf(mx_hi, fmaxf(s[n][2], s[n][3]));
    }
    const float mn_lo = fmaxf(m_lo, QuadMax(mx_lo)), mn_hi = fmaxf(m_hi, QuadMax(mx_hi));
    const float a_lo = __expf(m_lo - mn_lo), a_hi = __expf(m_hi - mn_hi);
    m_lo = mn_lo, m_hi = mn_hi;
    float sum_lo = 0.0f, sum_hi = 0.0f;
#pragma unroll
    for (int n = 0; n < kTile / 8; ++n) {
      s[n][0] = __expf(s[n][0] - mn_lo), s[n][1] = __expf(s[n][1] - mn_lo);
      s[n][2] = __expf(s[n][2] - mn_hi), s[n][3] = __expf(s[n][3] - mn_hi);
      sum_lo += s[n][0] + s[n][1];
      sum_hi += s[n][2] + s[n][3];
    }
    l_lo = l_lo * a_lo + sum_lo;  // this thread's share; the quad's shares add up at the end
    l_hi = l_hi * a_hi + sum_hi;
#pragma unroll
    for (int n = 0; n < D / 8; ++n) o[n][0] *= a_lo, o[n][1] *= a_lo, o[n][2] *= a_hi, o[n][3] *= a_hi;
    // O += P V: P's A fragments are two S n-tiles; V's B fragments are read transposed from shared memory.
#pragma unroll
    for (int kk = 0; kk < kTile / 16; ++kk) {
      const uint32_t pa[4] = {Pack<2>(s[2 * kk][0], s[2 * kk][1]), Pack<2>(s[2 * kk][2], s[2 * kk][3]),
                              Pack<2>(s[2 * kk + 1][0], s[2 * kk + 1][1]), Pack<2>(s[2 * kk + 1][2], s[2 * kk + 1][3])};
      // V's B fragments for two n-tiles of 8 dims per ldmatrix.trans (matrix q: keys kk * 16 + (q % 2) * 8,
      // dims (n + q / 2) * 8).
#pragma unroll
      for (int n = 0; n < D / 8; n += 2) {
        uint32_t b[4];
        LdMatrixX4Trans(b, &vs[kk * 16 + (lq & 1) * 8 + lr][(n + (lq >> 1)) * 8]);
        Mma<2>(o[n], pa, b[0], b[1]);
        Mma<2>(o[n + 1], pa, b[2], b[3]);
      }
    }
  }
  if (!active) return;
  l_lo = QuadSum(l_lo);
  l_hi = QuadSum(l_hi);
  const float inv_lo = l_lo > 0.0f ? 1.0f / l_lo : 0.0f, inv_hi = l_hi > 0.0f ? 1.0f / l_hi : 0.0f;
#pragma unroll
  for (int n = 0; n < D / 8; ++n) {
    const int d = n * 8 + 2 * t4;
    if (ok_lo) {
      float* out = st.out + it.out_off + static_cast<int64_t>(r_lo / G) * st.out_stride + static_cast<int64_t>(r_lo % G) * D + d;
      out[0] = o[n][0] * inv_lo;
      out[1] = o[n][1] * inv_lo;
    }
    if (ok_hi) {
      float* out = st.out + it.out_off + static_cast<int64_t>(r_hi / G) * st.out_stride + static_cast<int64_t>(r_hi % G) * D + d;
      out[0] = o[n][2] * inv_hi;
      out[1] = o[n][3] * inv_hi;
    }
  }
}

template <int D>
void LaunchPrefill(const AttnStep& st, cudaStream_t s) {
  const dim3 grid(st.n_items), block(kWarps * 32);
  if (st.kv_type == 0) AttendPrefillKernel<D, 0><<<grid, block, 0, s>>>(st);
  else if (st.kv_type == 1) AttendPrefillKernel<D, 1><<<grid, block, 0, s>>>(st);
  else AttendPrefillKernel<D, 2><<<grid, block, 0, s>>>(st);
}

}  // namespace

bool PrefillTensorCoreHeadDim(int head_dim) { return head_dim == 64 || head_dim == 128; }
int PrefillTensorCoreMaxRows() { return kWarps * 16; }

int AttendPrefill(const AttnStep& st, cudaStream_t s) {
  if (st.n_items == 0) return 0;
  if (st.head_dim == 64) LaunchPrefill<64>(st, s);
  else if (st.head_dim == 128) LaunchPrefill<128>(st, s);
  else return static_cast<int>(cudaErrorInvalidValue);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace razor::cuda
