#include "ops/elementwise.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "ops/simd_dispatch.h"

namespace razor {

RAZOR_VECTOR_CLONES void RmsNorm(const float* x, const float* gain, int64_t n, float eps, float* out) {
  float ss = 0.0f;
  for (int64_t i = 0; i < n; ++i) ss += x[i] * x[i];
  const float inv = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = (x[i] * inv) * gain[i];
}

void LayerNorm(const float* x, const float* gain, const float* bias, int64_t n, float eps, float* out) {
  // Two passes in double: the mean of a residual stream can be large next to its spread.
  double mean = 0.0;
  for (int64_t i = 0; i < n; ++i) mean += x[i];
  mean /= static_cast<double>(n);
  double var = 0.0;
  for (int64_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
  var /= static_cast<double>(n);
  const double inv = 1.0 / std::sqrt(var + eps);
  for (int64_t i = 0; i < n; ++i) out[i] = static_cast<float>((x[i] - mean) * inv) * gain[i] + bias[i];
}

void GeluTanhInPlace(float* x, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    x[i] = v * 0.5f * (1.0f + std::tanh(0.79788456f * v * (1.0f + 0.044715f * v * v)));
  }
}

void GeluMul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = gate[i];
    out[i] = v * 0.5f * (1.0f + std::tanh(0.79788456f * v * (1.0f + 0.044715f * v * v))) * up[i];
  }
}

RAZOR_VECTOR_CLONES void SiluMul(const float* gate, const float* up, int64_t n, float* out) {
  for (int64_t i = 0; i < n; ++i) {
    const float g = gate[i];
    out[i] = g / (1.0f + std::exp(-g)) * up[i];
  }
}

RAZOR_VECTOR_CLONES void AddInPlace(float* x, const float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] += y[i];
}

RAZOR_VECTOR_CLONES float Dot(const float* a, const float* b, int64_t n) {
  // 16 partial sums so the compiler can keep independent vector accumulators.
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += a[i + j] * b[i + j];
  float s = 0.0f;
  for (int j = 0; j < 16; ++j) s += acc[j];
  for (; i < n; ++i) s += a[i] * b[i];
  return s;
}

RAZOR_VECTOR_CLONES float SumOf(const float* x, int64_t n) {
  float acc[16] = {};
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] += x[i + j];
  float s = 0.0f;
  for (int j = 0; j < 16; ++j) s += acc[j];
  for (; i < n; ++i) s += x[i];
  return s;
}

RAZOR_VECTOR_CLONES float MaxOf(const float* x, int64_t n, float init) {
  float acc[16];
  for (int j = 0; j < 16; ++j) acc[j] = init;
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    for (int j = 0; j < 16; ++j) acc[j] = x[i + j] > acc[j] ? x[i + j] : acc[j];
  float m = init;
  for (int j = 0; j < 16; ++j) m = acc[j] > m ? acc[j] : m;
  for (; i < n; ++i) m = x[i] > m ? x[i] : m;
  return m;
}

RAZOR_VECTOR_CLONES void Axpy(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

RAZOR_VECTOR_CLONES void Scale(float* x, float a, int64_t n) {
  for (int64_t i = 0; i < n; ++i) x[i] *= a;
}

}  // namespace razor

namespace razor {

RAZOR_VECTOR_CLONES void ExpShiftedInPlace(float* x, float m, int64_t n) {
  // Cody-Waite range reduction e^v = 2^k e^r, |r| <= ln2/2, and a degree-6 polynomial for e^r (Cephes expf).
  for (int64_t i = 0; i < n; ++i) {
    const float v0 = x[i] - m;
    const float v = std::min(std::max(v0, -87.0f), 88.0f);
    // Round to nearest with the 1.5 * 2^23 trick (branch-free, so the loop vectorises).
    const float k = (v * 1.44269504088896341f + 12582912.0f) - 12582912.0f;
    const float r = v - k * 0.693359375f + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float y = p * r * r + r + 1.0f;
    const int32_t bits = (static_cast<int32_t>(k) + 127) << 23;
    float scale;
    std::memcpy(&scale, &bits, sizeof scale);
    x[i] = y * scale * static_cast<float>(v0 >= -87.0f);
  }
}

}  // namespace razor
