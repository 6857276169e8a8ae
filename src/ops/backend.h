// The seam between the forward pass and the hardware: every kernel the model runs, the activation buffers
// it runs them on, and the KV pool's storage. The forward pass (model/transformer.cpp) is written once against
// this interface; CpuBackend (ops/cpu_backend.h) wraps the CPU kernels and thread pool, a device backend
// implements the same calls on device memory.
//
// Pointers passed to the kernels are into the backend's own Buffers (host memory for the CPU backend). Token
// ids, positions and the KV views' index arrays are host data the backend copies where it needs them. Weights
// are TensorViews over the mapped checkpoint plus small fp32 vectors (norm gains, biases) the backend may cache.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/status.h"
#include "core/tensor_view.h"
#include "kv/kv_block_pool.h"
#include "kv/kv_cache.h"
#include "ops/attention.h"
#include "ops/matmul.h"
#include "ops/rope_params.h"

namespace razor {

enum class DeviceKind { kCpu, kCuda };
const char* DeviceKindName(DeviceKind d);  // "cpu" | "cuda"

// A float buffer of one backend: knows where it lives. Contents are undefined after Grow().
class Buffer {
 public:
  virtual ~Buffer() = default;
  float* data() const { return data_; }
  int64_t size() const { return size_; }  // floats
  DeviceKind device() const { return device_; }

 protected:
  float* data_ = nullptr;
  int64_t size_ = 0;
  DeviceKind device_ = DeviceKind::kCpu;
};

// One unit of attention work: the queries of some tokens of one sequence and one KV head's group, over that
// head's ragged view.
struct AttentionItem {
  KvHeadView kv;
  AttentionQuery q;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual DeviceKind device() const = 0;
  virtual std::string Describe() const = 0;  // e.g. "cpu, 2 threads, avx512 kernels (fast)"
  virtual MathMode math_mode() const = 0;

  // Makes these weight matrices resident where the backend computes (a device copies them now, before its KV
  // pool takes the rest of its memory; the CPU reads the mapped file in place). Errors when they do not fit.
  virtual Status PrepareWeights(const std::vector<const TensorView*>& matrices) { return Status::Ok(); }
  // Rows per chunk of a forward step that this backend runs best (the GEMMs' m): 256 on the CPU (activations
  // stay in cache), larger on a GPU (fewer passes over the weights per prompt, more tensor-core work per pass).
  virtual int64_t preferred_chunk_tokens() const { return 256; }
  // Bytes of device memory free now (0 for the CPU backend, whose pool sizes itself from the machine).
  virtual size_t FreeDeviceBytes() const { return 0; }
  // Bytes of device memory in all (0 for the CPU backend).
  virtual size_t TotalDeviceBytes() const { return 0; }

  // A buffer of at least `floats` floats (a new one when *b is null or smaller).
  virtual void Reserve(std::unique_ptr<Buffer>* b, int64_t floats) = 0;
  // Copies n floats of a buffer back to host memory (the logits), and host floats into a buffer.
  virtual void ToHost(const float* src, int64_t n, float* host_dst) = 0;
  virtual void FromHost(const float* host_src, int64_t n, float* dst) = 0;
  // The KV block pool, in this backend's memory. capacity_bytes 0: the backend's default (a device: what is
  // free now, less a margin and less keep_free_bytes, the activations that will be allocated later).
  virtual std::shared_ptr<KvBlockPool> NewKvPool(size_t block_bytes, size_t capacity_bytes,
                                                 size_t keep_free_bytes = 0) = 0;

  // x[t, :] = row tokens[t] of the embedding table, widened to fp32.   x: [n, dim]
  virtual void Embed(const TensorView& table, const int32_t* tokens, int64_t n, float* x) = 0;
  // y[m, rows(w)] = x[m, cols(w)] · wᵀ
  virtual void MatMul(const TensorView& w, const float* x, int64_t m, float* y) = 0;
  // ys[i][m, rows(ws[i])] = x[m, cols] · ws[i]ᵀ for n matrices of one input (q / k / v, gate / up): a device
  // may run them as one pass over the input. By default, n MatMuls.
  virtual void MatMuls(const TensorView* const* ws, int n, const float* x, int64_t m, float* const* ys) {
    for (int i = 0; i < n; ++i) MatMul(*ws[i], x, m, ys[i]);
  }
  // The fused forms of a layer's steps, for backends that save launches and passes by fusing them (the CUDA
  // backend does at decode sizes). By default each runs the unfused calls, so the CPU's numbers do not change.
  //   NormMatMuls: xn = Norm(x) ([m, dim]), then MatMuls(ws, n, xn, m, ys). A fused backend may leave xn
  //                unwritten: its contents are undefined afterwards.
  virtual void NormMatMuls(const float* x, int64_t m, int64_t dim, const std::vector<float>& gain,
                           const std::vector<float>& bias, bool layer_norm, float eps, float* xn,
                           const TensorView* const* ws, int n, float* const* ys) {
    Norm(x, m, dim, gain, bias, layer_norm, eps, xn);
    MatMuls(ws, n, xn, m, ys);
  }
  //   MatMulAdd: x[m, rows(w)] += a[m, cols(w)] · wᵀ through proj ([m, rows(w)] scratch, undefined afterwards).
  virtual void MatMulAdd(const TensorView& w, const float* a, int64_t m, float* proj, float* x) {
    MatMul(w, a, m, proj);
    Add(x, proj, m * w.rows());
  }
  //   SiluMulMatMulAdd: x[m, rows(w)] += (silu(gate) * up)[m, cols(w)] · wᵀ through proj as above; gate is
  //                     left either as it was or as silu(gate) * up.
  virtual void SiluMulMatMulAdd(float* gate, const float* up, const TensorView& w, int64_t m, float* proj, float* x) {
    SiluMul(gate, up, m * w.cols());
    MatMulAdd(w, gate, m, proj, x);
  }
  // m rows of width n: RMSNorm (bias empty) or LayerNorm (bias given).  out may alias x.
  virtual void Norm(const float* x, int64_t m, int64_t n, const std::vector<float>& gain,
                    const std::vector<float>& bias, bool layer_norm, float eps, float* out) = 0;
  // RMSNorm of every head_dim-wide piece of m rows of heads pieces each, in place (QK-norm).
  virtual void HeadNorm(float* x, int64_t m, int heads, int head_dim, const std::vector<float>& gain, float eps) = 0;
  // x[t, :] += bias for m rows of width n.
  virtual void AddBias(float* x, const std::vector<float>& bias, int64_t m, int64_t n) = 0;
  virtual void Add(float* x, const float* y, int64_t n) = 0;           // x += y
  virtual void SiluMul(float* gate, const float* up, int64_t n) = 0;   // gate = silu(gate) * up
  virtual void Gelu(float* x, int64_t n) = 0;                          // tanh approximation
  virtual void GeluMul(float* gate, const float* up, int64_t n) = 0;   // gate = gelu_tanh(gate) * up (Gemma)
  virtual void Scale(float* x, float a, int64_t n) = 0;                // x *= a
  // Rotates m rows of heads x head_dim in place; row t uses cos/sin [t, head_dim/2] (host arrays).
  virtual void Rope(float* x, int64_t m, int64_t row_stride, int heads, int head_dim, RopeLayout layout,
                    const float* cos, const float* sin) = 0;
  // dst[t, s * seg + i] = src[t, cols[s] + i] for s < n_segments, i < seg, t < m (BLOOM's fused QKV split).
  virtual void GatherColumns(const float* src, int64_t src_stride, int64_t m, const int64_t* cols, int n_segments,
                             int seg, float* dst, int64_t dst_stride) = 0;
  // Runs every item; items are independent (each writes its own output rows).
  virtual void Attend(const std::vector<AttentionItem>& items) = 0;
};

}  // namespace razor
