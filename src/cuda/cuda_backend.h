// The CUDA backend: the whole forward pass on one NVIDIA GPU behind the Backend seam (ops/backend.h).
//  - weights: every matrix is made resident in device memory as bf16 by PrepareWeights (GGUF quant types are
//    dequantized on the host first: kept-quantized decode kernels are not written yet); a TensorView whose
//    data is null is a synthetic weight, filled on the device with uniform random values (razor bench
//    --synthetic); norm gains and biases are copied on first use.
//  - activations: fp32 device buffers; matmuls round their input to bf16 and accumulate bf16 products in fp32:
//    decode rows (m <= 2) through razor's GEMV kernel (cuda_gemv.cu; q / k / v and gate / up in one launch),
//    more rows through cuBLAS's tensor-core GEMM.
//  - KV: one device allocation per pool (CudaKvPoolMemory), the same block ids and RazorKvCache as on the CPU.
//  - attention: ragged paged flash-decoding kernel (cuda_attention.cu); the step's block tables, causal
//    limits and compensation tokens are copied to the device with each Attend.
// One stream; every host-visible result (ToHost) synchronises it. Not thread-safe: one engine drives it.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "ops/backend.h"

namespace razor {

// Whether a CUDA device can be used; *why says why not (no driver, no device, a driver too old).
bool CudaDeviceAvailable(std::string* why);

// Device-to-device copy bandwidth, bytes/s counting bytes read plus written: median of 10 copies of 2 GiB.
double MeasureCudaCopyBandwidth();

// The backend on device 0. Errors when no device is usable.
Result<std::unique_ptr<Backend>> MakeCudaBackend(MathMode mode);

}  // namespace razor
