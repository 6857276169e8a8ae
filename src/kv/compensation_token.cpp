#include "kv/compensation_token.h"

#include <cassert>

namespace razor {

void CompensationToken::AddSums(const double* sum_k, const double* sum_v, int64_t count, int32_t max_position) {
  if (count == 0) return;
  if (sum_k_.empty()) {
    assert(count_ == 0 && "tokens added after DropSums()");
    sum_k_.assign(head_dim_, 0.0);
    sum_v_.assign(head_dim_, 0.0);
  }
  for (int i = 0; i < head_dim_; ++i) {
    sum_k_[i] += sum_k[i];
    sum_v_[i] += sum_v[i];
  }
  count_ += count;
  max_position_ = max_position;
}

void CompensationToken::Publish() {
  if (count_ == 0) return;
  k_.resize(head_dim_);
  v_.resize(head_dim_);
  const double n = static_cast<double>(count_);
  for (int i = 0; i < head_dim_; ++i) {
    k_[i] = static_cast<float>(sum_k_[i] / n);
    v_[i] = static_cast<float>(sum_v_[i] / n);
  }
}

void CompensationToken::DropSums() {
  std::vector<double>().swap(sum_k_);
  std::vector<double>().swap(sum_v_);
}

void CompensationToken::Clear() {
  count_ = 0;
  max_position_ = -1;
  DropSums();
  std::vector<float>().swap(k_);
  std::vector<float>().swap(v_);
}

size_t CompensationToken::bytes() const {
  return (sum_k_.capacity() + sum_v_.capacity()) * sizeof(double) + (k_.capacity() + v_.capacity()) * sizeof(float);
}

}  // namespace razor
