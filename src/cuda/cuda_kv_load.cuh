// Device helpers shared by the attention kernels: where a stored row lives, and 8 consecutive K/V elements of it
// widened to fp32.
// TYPE follows KvType's order: 0 f32, 1 f16, 2 bf16. p is 16-byte aligned (32 for f32).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "cuda/cuda_kernels.h"

namespace razor::cuda {

// Start of physical row `row` of a head's block list (K rows; its V row is block_tokens rows further on).
__device__ __forceinline__ const uint8_t* PoolRow(const AttnStep& st, const int32_t* blocks, int row,
                                                  int64_t row_bytes) {
  const int blk = st.block_shift >= 0 ? row >> st.block_shift : row / st.block_tokens;
  return st.pool_base + static_cast<int64_t>(blocks[blk]) * st.block_bytes +
         static_cast<int64_t>(row - blk * st.block_tokens) * row_bytes;
}

template <int TYPE>
__device__ __forceinline__ void Load8(const uint8_t* p, float* f) {
  if constexpr (TYPE == 0) {
    const float4 a = reinterpret_cast<const float4*>(p)[0];
    const float4 b = reinterpret_cast<const float4*>(p)[1];
    f[0] = a.x; f[1] = a.y; f[2] = a.z; f[3] = a.w; f[4] = b.x; f[5] = b.y; f[6] = b.z; f[7] = b.w;
  } else {
    const uint4 u = *reinterpret_cast<const uint4*>(p);
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      if constexpr (TYPE == 1) {
        const float2 v = __half22float2(*reinterpret_cast<const __half2*>(&w[i]));
        f[2 * i] = v.x;
        f[2 * i + 1] = v.y;
      } else {
        f[2 * i] = __uint_as_float(w[i] << 16);
        f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
      }
    }
  }
}

}  // namespace razor::cuda
