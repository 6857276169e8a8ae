#include "ops/rope.h"

#include <cmath>

namespace razor {

RopeTable::RopeTable(const RopeParams& c, const std::vector<float>& divisors)
    : half_(c.dim / 2), layout_(c.layout) {
  inv_freq_.resize(half_);
  const float base = static_cast<float>(c.theta);
  for (int i = 0; i < half_; ++i) {
    // HF: 1.0 / (base ** (arange(0, dim, 2).float() / dim)), in fp32.
    const float e = static_cast<float>(2 * i) / static_cast<float>(c.dim);
    const float p = static_cast<float>(std::pow(static_cast<double>(base), static_cast<double>(e)));
    inv_freq_[i] = 1.0f / p;
  }
  if (c.scaling.kind == RopeScaling::Kind::kLlama3) {
    // HF _compute_llama3_parameters: long wavelengths are slowed by `factor`, short ones kept,
    // and the band between is interpolated.
    const auto& s = c.scaling;
    const float factor = static_cast<float>(s.factor);
    const float lo = static_cast<float>(s.low_freq_factor), hi = static_cast<float>(s.high_freq_factor);
    const float old_ctx = static_cast<float>(s.original_max_positions);
    const float low_wavelen = old_ctx / lo, high_wavelen = old_ctx / hi;
    const float two_pi = static_cast<float>(2.0 * M_PI);
    for (int i = 0; i < half_; ++i) {
      const float f = inv_freq_[i];
      const float wavelen = two_pi / f;
      float g = wavelen > low_wavelen ? f / factor : f;
      if (!(wavelen < high_wavelen) && !(wavelen > low_wavelen)) {
        const float smooth = (old_ctx / wavelen - lo) / (hi - lo);
        g = (1.0f - smooth) * g / factor + smooth * g;
      }
      inv_freq_[i] = g;
    }
  }
  if (!divisors.empty())
    for (int i = 0; i < half_; ++i) inv_freq_[i] = inv_freq_[i] / divisors[i];
}

void RopeTable::Angles(const int32_t* positions, int64_t n, std::vector<float>* cos_out,
                       std::vector<float>* sin_out) const {
  cos_out->resize(n * half_);
  sin_out->resize(n * half_);
  for (int64_t t = 0; t < n; ++t) {
    const float pos = static_cast<float>(positions[t]);
    for (int i = 0; i < half_; ++i) {
      const float angle = pos * inv_freq_[i];  // fp32 product, as HF's inv_freq @ position_ids
      (*cos_out)[t * half_ + i] = static_cast<float>(std::cos(static_cast<double>(angle)));
      (*sin_out)[t * half_ + i] = static_cast<float>(std::sin(static_cast<double>(angle)));
    }
  }
}

void ApplyRope(float* x, int n_heads, int head_dim, RopeLayout layout, const float* cos, const float* sin) {
  const int half = head_dim / 2;
  for (int h = 0; h < n_heads; ++h) {
    float* r = x + static_cast<int64_t>(h) * head_dim;
    for (int i = 0; i < half; ++i) {
      float* a = layout == RopeLayout::kInterleaved ? &r[2 * i] : &r[i];
      float* b = layout == RopeLayout::kInterleaved ? &r[2 * i + 1] : &r[i + half];
      const float x0 = *a, x1 = *b;
      *a = x0 * cos[i] - x1 * sin[i];
      *b = x1 * cos[i] + x0 * sin[i];
    }
  }
}

}  // namespace razor
