// Next-token choice from logits: repetition penalty -> top-k -> top-p -> min-p -> temperature -> draw.
// temperature <= 0 is greedy (argmax, ties to the lowest id).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace razor {

struct SamplerParams {
  float temperature = 0.0f;
  int top_k = 40;          // <= 0: off
  float top_p = 0.95f;     // >= 1: off
  float min_p = 0.05f;     // <= 0: off
  float repeat_penalty = 1.0f;  // 1: off (llama.cpp / CTRL style: divide positive logits, multiply negative)
  int repeat_last_n = 64;
  uint64_t seed = 0;
};

class Sampler {
 public:
  explicit Sampler(const SamplerParams& params);
  // logits: [vocab]; history: ids so far (prompt + generated) for the repetition penalty.
  int32_t Sample(const float* logits, int32_t vocab, const std::vector<int32_t>& history);

 private:
  SamplerParams p_;
  std::mt19937_64 rng_;
  std::vector<std::pair<float, int32_t>> cand_;  // (logit, id) scratch
};

int32_t ArgMax(const float* logits, int32_t vocab);

}  // namespace razor
