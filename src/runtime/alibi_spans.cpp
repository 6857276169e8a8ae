#include "runtime/alibi_spans.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/dequantize.h"

namespace razor {
namespace {

// Rows [r0, r0 + n) of a weight matrix as fp32, [n, cols].
std::vector<float> Rows(const TensorView& w, int64_t r0, int64_t n) {
  const int64_t cols = w.cols();
  std::vector<float> out(static_cast<size_t>(n * cols));
  for (int64_t r = 0; r < n; ++r) DequantizeRow(w.type, w.row(r0 + r), &out[r * cols], cols);
  return out;
}

// Upper bound on the spectral norm of A [n, cols]: sqrt(min(|A|_F², Gershgorin bound of λ_max(A A^T))).
double SpectralNormBound(const std::vector<float>& a, int64_t n, int64_t cols) {
  std::vector<double> gram(static_cast<size_t>(n * n));
  double frob = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double s = 0;
      for (int64_t c = 0; c < cols; ++c) s += double(a[i * cols + c]) * a[j * cols + c];
      gram[i * n + j] = s;
      if (i == j) frob += s;
    }
  double gersh = 0;
  for (int64_t i = 0; i < n; ++i) {
    double row = 0;
    for (int64_t j = 0; j < n; ++j) row += std::fabs(gram[i * n + j]);
    gersh = std::max(gersh, row);
  }
  return std::sqrt(std::min(frob, gersh));
}

double Norm2(const float* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += double(x[i]) * x[i];
  return std::sqrt(s);
}

}  // namespace

double AlibiSpanLength(double bound, double slope, double epsilon) {
  if (!(slope > 0)) return std::numeric_limits<double>::infinity();
  return (2.0 * bound + std::log(1.0 / epsilon)) / slope;
}

Result<AlibiSpanSummary> ComputeAlibiSpans(const ModelConfig& c, const ModelWeights& w, const AlibiSpanOptions& o,
                                           const std::vector<float>* slopes_in) {
  if (!c.alibi) return Err(fmt::format("{} does not use ALiBi: it has no attention spans", ArchitectureName(c.arch)));
  if (!(o.epsilon > 0 && o.epsilon < 1)) return Err(fmt::format("ALiBi span epsilon {} is not in (0, 1)", o.epsilon));
  const std::vector<float> slopes = slopes_in ? *slopes_in : AlibiSlopes(c.n_heads);
  if (static_cast<int>(slopes.size()) != c.n_heads)
    return Err(fmt::format("{} ALiBi slopes for {} heads", slopes.size(), c.n_heads));
  const int64_t d = c.head_dim, dim = c.dim;
  std::vector<double> bound(c.n_heads, 0.0);
  for (const LayerWeights& L : w.layers) {
    double x = o.activation_norm;
    if (!(x > 0)) {
      double gmax = 0;
      for (float g : L.attn_norm) gmax = std::max(gmax, double(std::fabs(g)));
      x = gmax * std::sqrt(double(dim)) + (L.attn_norm_b.empty() ? 0.0 : Norm2(L.attn_norm_b.data(), dim));
    }
    for (int h = 0; h < c.n_heads; ++h) {
      const int kvh = h / c.group_size();
      const TensorView& wq = c.fused_qkv ? L.wqkv : L.wq;
      const TensorView& wk = c.fused_qkv ? L.wqkv : L.wk;
      const int64_t rq = c.fused_qkv ? c.fused_qkv_row(0, h) : h * d;
      const int64_t rk = c.fused_qkv ? c.fused_qkv_row(1, kvh) : kvh * d;
      const std::vector<float>& bq = c.fused_qkv ? L.bqkv : L.bq;
      const std::vector<float>& bk = c.fused_qkv ? L.bqkv : L.bk;
      const double sq = SpectralNormBound(Rows(wq, rq, d), d, dim);
      const double sk = SpectralNormBound(Rows(wk, rk, d), d, dim);
      const double nbq = bq.empty() ? 0.0 : Norm2(&bq[rq], d);
      const double nbk = bk.empty() ? 0.0 : Norm2(&bk[rk], d);
      bound[h] = std::max(bound[h], (sq * x + nbq) * (sk * x + nbk) / std::sqrt(double(d)));
    }
  }
  AlibiSpanSummary s;
  s.epsilon = o.epsilon;
  s.context = o.context > 0 ? o.context : c.context_length;
  for (int h = 0; h < c.n_heads; ++h) {
    AlibiHeadSpan a;
    a.head = h;
    a.slope = slopes[h];
    a.bound = bound[h];
    a.span = AlibiSpanLength(a.bound, a.slope, o.epsilon);
    a.retrieval = a.span >= static_cast<double>(s.context);
    s.heads.push_back(a);
  }
  return s;
}

}  // namespace razor
