// Small per-token operations of a transformer block (fp32, auto-vectorised).
#pragma once

#include <cstdint>

namespace razor {

// out[i] = x[i] / sqrt(mean(x²) + eps) * gain[i], for one row of n.  (out may alias x)
void RmsNorm(const float* x, const float* gain, int64_t n, float eps, float* out);
// out[i] = (x[i] - mean) / sqrt(var + eps) * gain[i] + bias[i]  (LayerNorm, biased variance; out may alias x)
void LayerNorm(const float* x, const float* gain, const float* bias, int64_t n, float eps, float* out);
// x[i] = gelu(x[i]), tanh approximation with BLOOM's constant: x/2 (1 + tanh(0.79788456 x (1 + 0.044715 x²)))
void GeluTanhInPlace(float* x, int64_t n);
// out[i] = gelu_tanh(gate[i]) * up[i] (Gemma's GeGLU; the same gelu as GeluTanhInPlace).  (out may alias gate)
void GeluMul(const float* gate, const float* up, int64_t n, float* out);
// out[i] = silu(gate[i]) * up[i] = gate / (1 + e^-gate) * up.  (out may alias gate)
void SiluMul(const float* gate, const float* up, int64_t n, float* out);
// x[i] += y[i]
void AddInPlace(float* x, const float* y, int64_t n);
float Dot(const float* a, const float* b, int64_t n);
// Sum and maximum of x[0..n), in 16 interleaved partial results combined in a fixed order (vectorised,
// and the same bits at every SIMD level). MaxOf returns init when n == 0; NaNs are not propagated.
float SumOf(const float* x, int64_t n);
float MaxOf(const float* x, int64_t n, float init);
// y[i] += a * x[i]
void Axpy(float a, const float* x, float* y, int64_t n);
void Scale(float* x, float a, int64_t n);
// x[i] = e^(x[i] - m), vectorised (relative error ~2e-7); x[i] - m below -87 (incl. -inf) gives exactly 0.
void ExpShiftedInPlace(float* x, float m, int64_t n);

}  // namespace razor
