// The compensation token of a compressed head (RazorAttention §3): mean key and mean value of every dropped
// token, standing for `count` tokens in the softmax (the kernel adds ln(count) to its logit). Sums are
// accumulated in double; they are kept only when more tokens may be folded in later (decode_fold).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace razor {

class CompensationToken {
 public:
  CompensationToken() = default;
  explicit CompensationToken(int head_dim) : head_dim_(head_dim) {}

  // Adds `count` dropped tokens at once from their sums (double, [head_dim] each); the last is at `max_position`.
  void AddSums(const double* sum_k, const double* sum_v, int64_t count, int32_t max_position);
  // Recomputes the fp32 mean from the sums; call after a run of Add().
  void Publish();
  // Frees the double sums once no more tokens will be added (the fp32 mean stays valid).
  void DropSums();
  void Clear();

  int64_t count() const { return count_; }
  int32_t max_position() const { return max_position_; }
  const float* k() const { return count_ ? k_.data() : nullptr; }  // [head_dim] mean key
  const float* v() const { return count_ ? v_.data() : nullptr; }  // [head_dim] mean value
  // Bytes held: the fp32 token plus the double sums while kept.
  size_t bytes() const;

 private:
  int head_dim_ = 0;
  int64_t count_ = 0;
  int32_t max_position_ = -1;
  std::vector<double> sum_k_, sum_v_;  // [head_dim]
  std::vector<float> k_, v_;           // [head_dim]
};

}  // namespace razor
