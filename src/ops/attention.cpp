#include "ops/attention.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <vector>

#include "ops/elementwise.h"

namespace razor {
namespace {

inline int32_t KeyPosition(const KvHeadView& kv, int64_t j) {
  return kv.positions ? kv.positions[j] : static_cast<int32_t>(j);
}

// Keys with position <= p are visible; positions ascend, so they form a prefix [0, n).
int64_t VisibleKeys(const KvHeadView& kv, int32_t p) {
  if (kv.positions == nullptr) return std::min<int64_t>(kv.len, static_cast<int64_t>(p) + 1);
  return std::upper_bound(kv.positions, kv.positions + kv.len, p) - kv.positions;
}

bool CompensationVisible(const KvHeadView& kv, int32_t p) {
  return kv.comp_count > 0 && kv.comp_max_position < p;
}

}  // namespace

void AttendReference(const KvHeadView& kv, const AttentionQuery& a) {
  const int d = a.head_dim;
  std::vector<float> scores;
  for (int64_t t = 0; t < a.n_tokens; ++t) {
    const int32_t p = a.positions[t];
    const int64_t n = VisibleKeys(kv, p);
    const bool comp = CompensationVisible(kv, p);
    for (int g = 0; g < a.n_group_heads; ++g) {
      const float* q = a.q + t * a.q_token_stride + static_cast<int64_t>(g) * d;
      float* o = a.out + t * a.out_token_stride + static_cast<int64_t>(g) * d;
      scores.assign(n + (comp ? 1 : 0), 0.0f);
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t j = 0; j < n; ++j) {
        float s = 0.0f;
        for (int i = 0; i < d; ++i) s += q[i] * kv.key(j, d)[i];
        scores[j] = s * a.scale;
        m = std::max(m, scores[j]);
      }
      if (comp) {
        float s = 0.0f;
        for (int i = 0; i < d; ++i) s += q[i] * kv.comp_k[i];
        scores[n] = s * a.scale + std::log(static_cast<float>(kv.comp_count));
        m = std::max(m, scores[n]);
      }
      float sum = 0.0f;
      for (auto& s : scores) sum += (s = std::exp(s - m));
      if (a.lse) a.lse[t * a.lse_token_stride + g] = m + std::log(sum);
      for (int i = 0; i < d; ++i) o[i] = 0.0f;
      for (int64_t j = 0; j < n; ++j)
        for (int i = 0; i < d; ++i) o[i] += scores[j] / sum * kv.value(j, d)[i];
      if (comp)
        for (int i = 0; i < d; ++i) o[i] += scores[n] / sum * kv.comp_v[i];
    }
  }
}

void AttendFlash(const KvHeadView& kv, const AttentionQuery& a) {
  constexpr int kBlock = 64;  // keys per block: scores of a block stay in registers / L1
  constexpr int kMaxHeadDim = 512;
  const int d = a.head_dim;
  assert(d <= kMaxHeadDim);
  float acc_buf[kMaxHeadDim];
  float* acc = acc_buf;
  float s[kBlock];
  for (int64_t t = 0; t < a.n_tokens; ++t) {
    const int32_t p = a.positions[t];
    const int64_t n = VisibleKeys(kv, p);
    const bool comp = CompensationVisible(kv, p);
    for (int g = 0; g < a.n_group_heads; ++g) {
      const float* q = a.q + t * a.q_token_stride + static_cast<int64_t>(g) * d;
      float* o = a.out + t * a.out_token_stride + static_cast<int64_t>(g) * d;
      float m = -std::numeric_limits<float>::infinity();
      float l = 0.0f;
      std::fill(acc, acc + d, 0.0f);
      if (comp) {
        m = Dot(q, kv.comp_k, d) * a.scale + std::log(static_cast<float>(kv.comp_count));
        l = 1.0f;
        for (int i = 0; i < d; ++i) acc[i] = kv.comp_v[i];
      }
      for (int64_t j0 = 0; j0 < n; j0 += kBlock) {
        const int nb = static_cast<int>(std::min<int64_t>(kBlock, n - j0));
        float bm = m;
        for (int j = 0; j < nb; ++j) {
          s[j] = Dot(q, kv.key(j0 + j, d), d) * a.scale;
          bm = std::max(bm, s[j]);
        }
        const float correction = std::exp(m - bm);  // rescale what was accumulated under the old max
        if (correction != 1.0f) {
          l *= correction;
          Scale(acc, correction, d);
        }
        m = bm;
        for (int j = 0; j < nb; ++j) {
          const float w = std::exp(s[j] - m);
          l += w;
          Axpy(w, kv.value(j0 + j, d), acc, d);
        }
      }
      const float inv = 1.0f / l;
      if (a.lse) a.lse[t * a.lse_token_stride + g] = m + std::log(l);
      for (int i = 0; i < d; ++i) o[i] = acc[i] * inv;
    }
  }
}

}  // namespace razor
