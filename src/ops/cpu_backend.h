// The CPU backend: today's SIMD kernels on a thread pool, host buffers, an mmap'ed KV pool.
#pragma once

#include "core/thread_pool.h"
#include "ops/backend.h"

namespace razor {

class CpuBackend final : public Backend {
 public:
  CpuBackend(ThreadPool& pool, MathMode mode) : pool_(pool), mode_(mode) {}

  DeviceKind device() const override { return DeviceKind::kCpu; }
  std::string Describe() const override;
  MathMode math_mode() const override { return mode_; }
  ThreadPool& thread_pool() { return pool_; }

  void Reserve(std::unique_ptr<Buffer>* b, int64_t floats) override;
  void ToHost(const float* src, int64_t n, float* host_dst) override;
  void FromHost(const float* host_src, int64_t n, float* dst) override { ToHost(host_src, n, dst); }
  std::shared_ptr<KvBlockPool> NewKvPool(size_t block_bytes, size_t capacity_bytes,
                                         size_t keep_free_bytes = 0) override;

  void Embed(const TensorView& table, const int32_t* tokens, int64_t n, float* x) override;
  void MatMul(const TensorView& w, const float* x, int64_t m, float* y) override;
  void Norm(const float* x, int64_t m, int64_t n, const std::vector<float>& gain, const std::vector<float>& bias,
            bool layer_norm, float eps, float* out) override;
  void HeadNorm(float* x, int64_t m, int heads, int head_dim, const std::vector<float>& gain, float eps) override;
  void AddBias(float* x, const std::vector<float>& bias, int64_t m, int64_t n) override;
  void Add(float* x, const float* y, int64_t n) override;
  void SiluMul(float* gate, const float* up, int64_t n) override;
  void Gelu(float* x, int64_t n) override;
  void GeluMul(float* gate, const float* up, int64_t n) override;
  void Scale(float* x, float a, int64_t n) override;
  void Rope(float* x, int64_t m, int64_t row_stride, int heads, int head_dim, RopeLayout layout, const float* cos,
            const float* sin) override;
  void GatherColumns(const float* src, int64_t src_stride, int64_t m, const int64_t* cols, int n_segments, int seg,
                     float* dst, int64_t dst_stride) override;
  void Attend(const std::vector<AttentionItem>& items) override;

 private:
  ThreadPool& pool_;
  MathMode mode_;
};

}  // namespace razor
