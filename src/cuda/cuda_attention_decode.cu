// Decode attention on tensor cores: one CTA per (item, key split) of a one-token item whose K/V are stored in
// f16 or bf16 and whose group has at most 16 query heads. The group's query heads are the 16 rows of one mma
// tile (rows past the group are zeros), so S = Q·Kᵀ and O += P·V run as mma.sync m16n8k16 in the storage type
// with fp32 accumulation, where the SIMT split kernel (cuda_attention.cu) spends ~200 instructions a key. Each
// of the CTA's four warps streams its own 16-key tiles (every fourth tile of the split) through a private
// cp.async pipeline of kStages tiles, keeps its own online softmax, and the warps' states are merged into the
// split's partial (max, sum, unnormalised accumulator) in the split kernel's format, so the same combine kernel
// finishes both; it also adds the compensation token (AttnItem::tc == 2), which this kernel leaves out.
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cfloat>

#include "cuda/cuda_kernels.h"
#include "cuda/cuda_kv_load.cuh"
#include "cuda/cuda_mma.cuh"

namespace razor::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kKeys = 16;   // keys per warp tile: two n-tiles of S, one k-step of P·V
constexpr int kStages = 3;  // tiles in flight per warp
constexpr int kPad = 8;     // elements of padding per shared row: conflict-free ldmatrix

template <int D>
__host__ __device__ constexpr int RowElems() { return D + kPad; }
template <int D>
__host__ __device__ constexpr int TileBytes() { return 2 * kKeys * RowElems<D>() * 2; }  // K rows then V rows, 2-byte elements

template <int D, int TYPE>
__global__ void __launch_bounds__(kWarps * 32, 2) AttendDecodeKernel(AttnStep st) {
  const AttnItem it = st.items[blockIdx.x];
  const int split = blockIdx.y;
  if (it.tc != 2 || split >= it.splits) return;
  const int visible = st.visible[it.visible_off];
  const int kb = split * st.split_keys;
  if (kb >= visible && split > 0) return;  // this split has no keys (its partial slot is never read)
  const int ke = min(visible, kb + st.split_keys);
  const int G = it.n_group_heads;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int g8 = lane >> 2, t4 = lane & 3;
  constexpr int64_t row_bytes = D * 2;
  const int64_t v_delta = static_cast<int64_t>(st.block_tokens) * row_bytes;
  const int32_t* blocks = st.block_ids + it.blocks_off;

  extern __shared__ __align__(16) uint8_t smem[];
  uint8_t* my_stages = smem + warp * kStages * TileBytes<D>();

  // Rows g8 and g8 + 8 are query heads g8, g8 + 8 of the group (zeros past G).
  const bool ok_lo = g8 < G, ok_hi = g8 + 8 < G;
  const float* q = st.q + it.q_off;
  uint32_t qa[D / 16][4];
#pragma unroll
  for (int kk = 0; kk < D / 16; ++kk) {
    const int c = kk * 16 + 2 * t4;
    const float* lo = q + static_cast<int64_t>(g8) * D;
    const float* hi = q + static_cast<int64_t>(g8 + 8) * D;
    qa[kk][0] = ok_lo ? Pack<TYPE>(lo[c] * st.scale, lo[c + 1] * st.scale) : 0u;
    qa[kk][1] = ok_hi ? Pack<TYPE>(hi[c] * st.scale, hi[c + 1] * st.scale) : 0u;
    qa[kk][2] = ok_lo ? Pack<TYPE>(lo[c + 8] * st.scale, lo[c + 9] * st.scale) : 0u;
    qa[kk][3] = ok_hi ? Pack<TYPE>(hi[c + 8] * st.scale, hi[c + 9] * st.scale) : 0u;
  }
  float o[D / 8][4];
#pragma unroll
  for (int n = 0; n < D / 8; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.0f;
  float m_lo = -FLT_MAX, m_hi = -FLT_MAX, l_lo = 0.0f, l_hi = 0.0f;

  // This warp's tiles: i-th is tile warp + i * kWarps of the split.
  const int n_tiles = (ke - kb + kKeys - 1) / kKeys;
  const int my_tiles = n_tiles > warp ? (n_tiles - warp + kWarps - 1) / kWarps : 0;
  auto issue = [&](int i) {
    if (i < my_tiles) {
      uint8_t* stage = my_stages + (i % kStages) * TileBytes<D>();
      const int t0 = kb + (warp + i * kWarps) * kKeys;
      constexpr int pieces = D / 8;  // 16-byte pieces of a row
#pragma unroll
      for (int c = lane; c < kKeys * pieces; c += 32) {
        const int r = c / pieces, piece = c % pieces;
        const int j = t0 + r;
        const uint8_t* src = st.pool_base;
        int bytes = 0;
        if (j < ke) {
          src = PoolRow(st, blocks, it.first_row + j, row_bytes) + piece * 16;
          bytes = 16;
        }
        uint8_t* dst = stage + (r * RowElems<D>() + piece * 8) * 2;
        CpAsync16(dst, src, bytes);
        CpAsync16(dst + kKeys * RowElems<D>() * 2, bytes ? src + v_delta : src, bytes);
      }
    }
    CpAsyncCommit();
  };
#pragma unroll
  for (int p = 0; p < kStages - 1; ++p) issue(p);
  const int lq = lane >> 3, lr = lane & 7;
  for (int i = 0; i < my_tiles; ++i) {
    issue(i + kStages - 1);
    CpAsyncWait<kStages - 1>();
    __syncwarp();
    const uint8_t* stage = my_stages + (i % kStages) * TileBytes<D>();
    const auto* ks = reinterpret_cast<const uint16_t*>(stage);
    const auto* vs = ks + kKeys * RowElems<D>();
    const int t0 = kb + (warp + i * kWarps) * kKeys;
    // S = Q Kᵀ: two n-tiles of 8 keys, one ldmatrix.x4 per k-step (matrix lq: keys (lq / 2) * 8 + lr, dims
    // kk * 16 + (lq % 2) * 8).
    float s[2][4] = {{0.0f, 0.0f, 0.0f, 0.0f}, {0.0f, 0.0f, 0.0f, 0.0f}};
#pragma unroll
    for (int kk = 0; kk < D / 16; ++kk) {
      uint32_t b[4];
      LdMatrixX4(b, ks + ((lq >> 1) * 8 + lr) * RowElems<D>() + kk * 16 + (lq & 1) * 8);
      Mma<TYPE>(s[0], qa[kk], b[0], b[1]);
      Mma<TYPE>(s[1], qa[kk], b[2], b[3]);
    }
    float mx_lo = -FLT_MAX, mx_hi = -FLT_MAX;
#pragma unroll
    for (int n = 0; n < 2; ++n) {
      const int j = t0 + n * 8 + 2 * t4;
      if (j >= ke) s[n][0] = s[n][2] = -INFINITY;
      if (j + 1 >= ke) s[n][1] = s[n][3] = -INFINITY;
      mx_lo = fmaxf(mx_lo, fmaxf(s[n][0], s[n][1]));
      mx_hi = fmaxf(mx_hi, fmaxf(s[n][2], s[n][3]));
    }
    const float mn_lo = fmaxf(m_lo, QuadMax(mx_lo)), mn_hi = fmaxf(m_hi, QuadMax(mx_hi));
    const float a_lo = __expf(m_lo - mn_lo), a_hi = __expf(m_hi - mn_hi);
    m_lo = mn_lo, m_hi = mn_hi;
#pragma unroll
    for (int n = 0; n < 2; ++n) {
      s[n][0] = __expf(s[n][0] - mn_lo), s[n][1] = __expf(s[n][1] - mn_lo);
      s[n][2] = __expf(s[n][2] - mn_hi), s[n][3] = __expf(s[n][3] - mn_hi);
    }
    l_lo = l_lo * a_lo + s[0][0] + s[0][1] + s[1][0] + s[1][1];  // this thread's share of the row sums
    l_hi = l_hi * a_hi + s[0][2] + s[0][3] + s[1][2] + s[1][3];
#pragma unroll
    for (int n = 0; n < D / 8; ++n) o[n][0] *= a_lo, o[n][1] *= a_lo, o[n][2] *= a_hi, o[n][3] *= a_hi;
    // O += P V: P's A fragment is the two S n-tiles; V's B fragments read transposed (matrix lq: keys
    // (lq % 2) * 8 + lr, dims (n + lq / 2) * 8).
    const uint32_t pa[4] = {Pack<TYPE>(s[0][0], s[0][1]), Pack<TYPE>(s[0][2], s[0][3]), Pack<TYPE>(s[1][0], s[1][1]),
                            Pack<TYPE>(s[1][2], s[1][3])};
#pragma unroll
    for (int n = 0; n < D / 8; n += 2) {
      uint32_t b[4];
      LdMatrixX4Trans(b, vs + ((lq & 1) * 8 + lr) * RowElems<D>() + (n + (lq >> 1)) * 8);
      Mma<TYPE>(o[n], pa, b[0], b[1]);
      Mma<TYPE>(o[n + 1], pa, b[2], b[3]);
    }
    __syncwarp();  // every lane is done with this stage before a later issue() overwrites it
  }
  CpAsyncWait<0>();
  l_lo = QuadSum(l_lo);
  l_hi = QuadSum(l_hi);

  // Merge the warps: each publishes its 16 rows' (m, l, o) over the stages (no longer needed), then the CTA
  // writes the split's partial for the group's heads.
  __syncthreads();
  float* sm_m = reinterpret_cast<float*>(smem);  // [kWarps, 16]
  float* sm_l = sm_m + kWarps * 16;               // [kWarps, 16]
  float* sm_o = sm_l + kWarps * 16;               // [kWarps, 16, D]
  if (t4 == 0) {
    sm_m[warp * 16 + g8] = m_lo, sm_m[warp * 16 + g8 + 8] = m_hi;
    sm_l[warp * 16 + g8] = l_lo, sm_l[warp * 16 + g8 + 8] = l_hi;
  }
#pragma unroll
  for (int n = 0; n < D / 8; ++n) {
    const int d = n * 8 + 2 * t4;
    sm_o[(warp * 16 + g8) * D + d] = o[n][0];
    sm_o[(warp * 16 + g8) * D + d + 1] = o[n][1];
    sm_o[(warp * 16 + g8 + 8) * D + d] = o[n][2];
    sm_o[(warp * 16 + g8 + 8) * D + d + 1] = o[n][3];
  }
  __syncthreads();
  const int64_t slot = it.partial_off + split;  // token 0
  for (int i = threadIdx.x; i < G * D; i += kWarps * 32) {
    const int g = i / D, d = i % D;
    float mx = -FLT_MAX;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, sm_m[w * 16 + g]);
    float ls = 0.0f, as = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) {
      const float wt = sm_l[w * 16 + g] > 0.0f ? __expf(sm_m[w * 16 + g] - mx) : 0.0f;
      ls += sm_l[w * 16 + g] * wt;
      as += sm_o[(w * 16 + g) * D + d] * wt;
    }
    const int64_t ps = slot * st.max_group + g;
    st.partial_acc[ps * D + d] = as;
    if (d == 0) {
      st.partial_ml[ps * 2] = mx;
      st.partial_ml[ps * 2 + 1] = ls;
    }
  }
}

template <int D, int TYPE>
void Launch(const AttnStep& st, cudaStream_t s) {
  const size_t smem = static_cast<size_t>(kWarps) * kStages * TileBytes<D>();
  static_assert(kWarps * 16 * (2 + D) * 4 <= kWarps * kStages * TileBytes<D>(), "the merge fits in the stages");
  // Set on every launch: the limit is per kernel and per device (cheap next to the kernel).
  if (cudaFuncSetAttribute(AttendDecodeKernel<D, TYPE>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                           static_cast<int>(smem)) != cudaSuccess)
    return;  // the launch below then fails and its error is returned
  AttendDecodeKernel<D, TYPE><<<dim3(st.n_items, st.max_splits), kWarps * 32, smem, s>>>(st);
}

}  // namespace

bool DecodeTensorCoreFits(int head_dim, int kv_type, int group, size_t smem_per_block) {
  if (!(head_dim == 64 || head_dim == 128) || !(kv_type == 1 || kv_type == 2) || group > 16) return false;
  const size_t need = static_cast<size_t>(kWarps) * kStages * (head_dim == 64 ? TileBytes<64>() : TileBytes<128>());
  return need <= smem_per_block;  // 102 KiB at head_dim 128: Hopper's 227 KiB, not a 99 KiB consumer part
}

int AttendDecode(const AttnStep& st, cudaStream_t s) {
  if (st.n_items == 0) return 0;
  if (st.head_dim == 64) st.kv_type == 1 ? Launch<64, 1>(st, s) : Launch<64, 2>(st, s);
  else if (st.head_dim == 128) st.kv_type == 1 ? Launch<128, 1>(st, s) : Launch<128, 2>(st, s);
  else return static_cast<int>(cudaErrorInvalidValue);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace razor::cuda
