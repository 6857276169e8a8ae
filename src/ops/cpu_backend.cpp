#include "ops/cpu_backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "ops/dequantize.h"
#include "ops/elementwise.h"
#include "ops/rope.h"

namespace razor {
namespace {

class HostBuffer final : public Buffer {
 public:
  explicit HostBuffer(int64_t floats) : storage_(static_cast<size_t>(floats)) {
    data_ = storage_.data();
    size_ = floats;
    device_ = DeviceKind::kCpu;
  }

 private:
  std::vector<float> storage_;
};

}  // namespace

const char* DeviceKindName(DeviceKind d) { return d == DeviceKind::kCuda ? "cuda" : "cpu"; }

std::string CpuBackend::Describe() const {
  const char* mode = mode_ == MathMode::kExact ? "exact" : mode_ == MathMode::kInt8 ? "int8" : "fast";
  return fmt::format("cpu, {} threads, {} kernels ({})", pool_.size(), MatMulIsa(), mode);
}

void CpuBackend::Reserve(std::unique_ptr<Buffer>* b, int64_t floats) {
  if (*b && (*b)->size() >= floats) return;
  *b = std::make_unique<HostBuffer>(std::max<int64_t>(floats, 1));
}

void CpuBackend::ToHost(const float* src, int64_t n, float* host_dst) {
  if (src != host_dst) std::memcpy(host_dst, src, static_cast<size_t>(n) * sizeof(float));
}

std::shared_ptr<KvBlockPool> CpuBackend::NewKvPool(size_t block_bytes, size_t capacity_bytes, size_t) {
  return std::make_shared<KvBlockPool>(block_bytes, KvBlockPoolOptions{.capacity_bytes = capacity_bytes});
}

void CpuBackend::Embed(const TensorView& table, const int32_t* tokens, int64_t n, float* x) {
  const int64_t dim = table.cols();
  pool_.ParallelFor(n, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) DequantizeRow(table.type, table.row(tokens[t]), &x[t * dim], dim);
  });
}

void CpuBackend::MatMul(const TensorView& w, const float* x, int64_t m, float* y) {
  razor::MatMul(mode_, w, x, m, y, pool_);
}

void CpuBackend::Norm(const float* x, int64_t m, int64_t n, const std::vector<float>& gain,
                      const std::vector<float>& bias, bool layer_norm, float eps, float* out) {
  for (int64_t t = 0; t < m; ++t) {
    if (layer_norm) LayerNorm(&x[t * n], gain.data(), bias.data(), n, eps, &out[t * n]);
    else RmsNorm(&x[t * n], gain.data(), n, eps, &out[t * n]);
  }
}

void CpuBackend::HeadNorm(float* x, int64_t m, int heads, int head_dim, const std::vector<float>& gain, float eps) {
  for (int64_t p = 0; p < m * heads; ++p) RmsNorm(x + p * head_dim, gain.data(), head_dim, eps, x + p * head_dim);
}

void CpuBackend::AddBias(float* x, const std::vector<float>& bias, int64_t m, int64_t n) {
  for (int64_t t = 0; t < m; ++t) AddInPlace(&x[t * n], bias.data(), n);
}

void CpuBackend::Add(float* x, const float* y, int64_t n) { AddInPlace(x, y, n); }
void CpuBackend::SiluMul(float* gate, const float* up, int64_t n) { razor::SiluMul(gate, up, n, gate); }
void CpuBackend::Gelu(float* x, int64_t n) { GeluTanhInPlace(x, n); }
void CpuBackend::GeluMul(float* gate, const float* up, int64_t n) { razor::GeluMul(gate, up, n, gate); }
void CpuBackend::Scale(float* x, float a, int64_t n) { razor::Scale(x, a, n); }

void CpuBackend::Rope(float* x, int64_t m, int64_t row_stride, int heads, int head_dim, RopeLayout layout,
                      const float* cos, const float* sin) {
  const int half = head_dim / 2;
  for (int64_t t = 0; t < m; ++t) ApplyRope(x + t * row_stride, heads, head_dim, layout, cos + t * half, sin + t * half);
}

void CpuBackend::GatherColumns(const float* src, int64_t src_stride, int64_t m, const int64_t* cols, int n_segments,
                               int seg, float* dst, int64_t dst_stride) {
  for (int64_t t = 0; t < m; ++t)
    for (int s = 0; s < n_segments; ++s)
      std::copy_n(src + t * src_stride + cols[s], seg, dst + t * dst_stride + static_cast<int64_t>(s) * seg);
}

void CpuBackend::Attend(const std::vector<AttentionItem>& items) {
  // Threads take items round-robin (later tokens see more keys, so striding balances the work).
  const int64_t n = static_cast<int64_t>(items.size());
  const bool exact = mode_ == MathMode::kExact;
  pool_.RunOnAll([&](int ti, int nt) {
    for (int64_t i = ti; i < n; i += nt) {
      if (exact) AttendReference(items[i].kv, items[i].q);
      else AttendFlash(items[i].kv, items[i].q);
    }
  });
}

}  // namespace razor
