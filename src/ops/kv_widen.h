// Widening of stored K/V rows (f16 / bf16) to fp32 for the attention kernels: a key block's rows are widened
// into an L1-resident scratch once, then every query row of the tile reads them as fp32. F16C / AVX2 where the
// CPU has them (bit-exact with the scalar conversion: widening is exact), scalar otherwise.
#pragma once

#include <cstdint>

#include "kv/kv_type.h"

namespace razor {

// out[0 .. n) = float(src[0 .. n)) for src of type t (t == kF32 copies).
void WidenKvValues(KvType t, const void* src, int64_t n, float* out);

}  // namespace razor
