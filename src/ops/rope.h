// Rotary position embedding: per-pair frequencies (with Llama-3 scaling or per-pair divisors) and the
// rotation of q/k rows in either pair layout. Math in fp32 in the same order as Hugging Face.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/rope_params.h"

namespace razor {

class RopeTable {
 public:
  // freq_divisors: optional [head_dim/2] divisors (GGUF rope_freqs.weight), applied after scaling.
  RopeTable(const RopeParams& c, const std::vector<float>& freq_divisors);
  // cos/sin for positions: out [n_positions, head_dim/2] each.
  void Angles(const int32_t* positions, int64_t n, std::vector<float>* cos_out, std::vector<float>* sin_out) const;
  const std::vector<float>& inv_freq() const { return inv_freq_; }
  int half() const { return half_; }
  RopeLayout layout() const { return layout_; }

 private:
  std::vector<float> inv_freq_;  // [head_dim/2]
  int half_;
  RopeLayout layout_;
};

// Rotates n_heads rows of head_dim in place, with cos/sin [head_dim/2] for this token's position.
void ApplyRope(float* x, int n_heads, int head_dim, RopeLayout layout, const float* cos, const float* sin);

}  // namespace razor
