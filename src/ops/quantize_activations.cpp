#include "ops/quantize_activations.h"

#include <cmath>
#include <cstring>

namespace razor {

namespace {

// Round half to even without libm (vectorizes; identical on every ISA).
inline int RoundToInt(float v) {
  const float magic = 12582912.0f;  // 1.5 * 2^23: adding it rounds |v| < 2^22 to an integer in the mantissa
  return static_cast<int>((v + magic) - magic);
}

}  // namespace

void QuantizeRowActQ8(const float* x, int64_t n, uint8_t* dst) {
  const int64_t nb = n / kQK;
  int8_t* qs = reinterpret_cast<int8_t*>(dst);
  float* d = reinterpret_cast<float*>(dst + n);
  float* s = d + nb;
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * kQK;
    float amax = 0.0f;
    for (int i = 0; i < kQK; ++i) amax = std::fmax(amax, std::fabs(xb[i]));
    const float db = amax / 127.0f;
    const float id = db != 0.0f ? 127.0f / amax : 0.0f;
    int sum = 0;
    for (int i = 0; i < kQK; ++i) {
      int q = RoundToInt(xb[i] * id);
      q = q > 127 ? 127 : (q < -127 ? -127 : q);
      qs[b * kQK + i] = static_cast<int8_t>(q);
      sum += q;
    }
    d[b] = db;
    s[b] = db * static_cast<float>(sum);
  }
}

void QuantizeRowQ8_K(const float* x, int64_t n, BlockQ8_K* dst) {
  for (int64_t b = 0; b < n / kQK_K; ++b, x += kQK_K) {
    float max = 0.0f, amax = 0.0f;
    for (int i = 0; i < kQK_K; ++i) {
      const float ax = std::fabs(x[i]);
      if (ax > amax) {
        amax = ax;
        max = x[i];
      }
    }
    BlockQ8_K& y = dst[b];
    if (amax == 0.0f) {
      std::memset(&y, 0, sizeof(y));
      continue;
    }
    const float iscale = -127.0f / max;
    for (int i = 0; i < kQK_K; ++i) {
      const int v = static_cast<int>(std::nearbyint(iscale * x[i]));
      y.qs[i] = static_cast<int8_t>(v > 127 ? 127 : v);
    }
    for (int g = 0; g < kQK_K / 16; ++g) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += y.qs[g * 16 + i];
      y.bsums[g] = static_cast<int16_t>(sum);
    }
    y.d = 1.0f / iscale;
  }
}

}  // namespace razor
