#include "eval/compensation_probe.h"

#include <cmath>

#include "kv/kv_cache.h"

namespace razor::eval {
namespace {

double Dot(const float* a, const float* b, int d) {
  double s = 0;
  for (int i = 0; i < d; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

double Norm(const float* a, int d) { return std::sqrt(Dot(a, a, d)); }

// |a - b| / |b| over d doubles.
double RelativeError(const std::vector<double>& a, const std::vector<double>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) num += (a[i] - b[i]) * (a[i] - b[i]), den += b[i] * b[i];
  return den > 0 ? std::sqrt(num / den) : 0.0;
}

}  // namespace

CompensationProbe::CompensationProbe(int n_layers, int n_heads, int n_kv_heads, int head_dim,
                                     std::vector<bool> compressed, int64_t sinks, int64_t window, int64_t prefix,
                                     ThreadPool* pool)
    : n_layers_(n_layers), n_heads_(n_heads), n_kv_heads_(n_kv_heads), head_dim_(head_dim),
      compressed_(std::move(compressed)), sinks_(sinks), window_(window), prefix_(prefix), pool_(pool),
      sums_(static_cast<size_t>(n_layers) * n_heads), spreads_(static_cast<size_t>(n_layers) * n_kv_heads),
      k_mean_(static_cast<size_t>(n_layers) * n_kv_heads * head_dim),
      v_mean_(static_cast<size_t>(n_layers) * n_kv_heads * head_dim), means_ready_(n_layers, false) {}

void CompensationProbe::MakeMeans(int layer, const KvCache& cache) {
  const int d = head_dim_;
  const int64_t b = dropped_begin(), e = dropped_end();
  for (int g = 0; g < n_kv_heads_; ++g) {
    const size_t hk = static_cast<size_t>(layer) * n_kv_heads_ + g;
    if (!compressed_[hk] || e <= b) continue;
    const KvHeadView v = cache.View(layer, g);
    std::vector<double> sk(d, 0.0), sv(d, 0.0);
    double knorm = 0, vnorm = 0;
    for (int64_t j = b; j < e; ++j) {
      const float* k = v.key(j, d);
      const float* val = v.value(j, d);
      for (int i = 0; i < d; ++i) sk[i] += k[i], sv[i] += val[i];
      knorm += Norm(k, d), vnorm += Norm(val, d);
    }
    const double cnt = static_cast<double>(e - b);
    float* km = &k_mean_[hk * d];
    float* vm = &v_mean_[hk * d];
    for (int i = 0; i < d; ++i) km[i] = static_cast<float>(sk[i] / cnt), vm[i] = static_cast<float>(sv[i] / cnt);
    const double km_norm = Norm(km, d);
    double cos_sum = 0;
    for (int64_t j = b; j < e; ++j) {
      const float* k = v.key(j, d);
      const double kn = Norm(k, d);
      if (kn > 0 && km_norm > 0) cos_sum += Dot(k, km, d) / (kn * km_norm);
    }
    DroppedSpread& s = spreads_[hk];
    s.dropped = e - b;
    s.key_cos = cos_sum / cnt;
    s.key_norm_ratio = knorm > 0 ? km_norm / (knorm / cnt) : 0;
    s.value_norm_ratio = vnorm > 0 ? Norm(vm, d) / (vnorm / cnt) : 0;
  }
  means_ready_[layer] = true;
}

void CompensationProbe::OnAttention(int layer, const float* q, const int32_t* positions, int64_t n, const float* lse,
                                    const KvCache& cache) {
  const int64_t b = dropped_begin(), e = dropped_end();
  if (e <= b) return;
  std::vector<int64_t> scored;  // the rows of this call at positions >= prefix: the only ones with work
  for (int64_t t = 0; t < n; ++t)
    if (positions[t] >= prefix_) scored.push_back(t);
  if (scored.empty()) return;
  if (!means_ready_[layer]) MakeMeans(layer, cache);
  const int group = n_heads_ / n_kv_heads_;
  const int d = head_dim_;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<KvHeadView> views(n_kv_heads_);
  for (int g = 0; g < n_kv_heads_; ++g) views[g] = cache.View(layer, g);
  scratch_.assign(static_cast<size_t>(n) * n_heads_, CompensationHeadSums{});
  const double ln_count = std::log(static_cast<double>(e - b));

  auto score = [&](int64_t sb, int64_t se) {
    std::vector<double> o_full(d), o_kept(d), o(d);
    for (int64_t si = sb; si < se; ++si) {
      const int64_t t = scored[si];
      const int64_t i = positions[t];
      for (int h = 0; h < n_heads_; ++h) {
        const int g = h / group;
        const size_t hk = static_cast<size_t>(layer) * n_kv_heads_ + g;
        if (!compressed_[hk]) continue;
        const KvHeadView& v = views[g];
        const float* qh = q + (t * n_heads_ + h) * d;
        const double norm = lse[t * n_heads_ + h];
        std::fill(o_full.begin(), o_full.end(), 0.0);
        std::fill(o_kept.begin(), o_kept.end(), 0.0);
        double m_drop = 0, z_kept = 0;
        for (int64_t j = 0; j <= i && j < v.len; ++j) {
          const float* k = v.key(j, d);
          const float* val = v.value(j, d);
          const double p = std::exp(Dot(qh, k, d) * scale - norm);
          const bool dropped = j >= b && j < e;
          for (int x = 0; x < d; ++x) o_full[x] += p * val[x];
          if (dropped) {
            m_drop += p;
          } else {
            z_kept += p;
            for (int x = 0; x < d; ++x) o_kept[x] += p * val[x];
          }
        }
        const float* km = &k_mean_[hk * d];
        const float* vm = &v_mean_[hk * d];
        const double c = std::exp(Dot(qh, km, d) * scale + ln_count - norm);
        CompensationHeadSums& s = scratch_[t * n_heads_ + h];
        s.queries = 1;
        s.dropped_mass = m_drop;
        s.token_mass = c;
        s.token_share = c / (z_kept + c);
        for (int x = 0; x < d; ++x) o[x] = (o_kept[x] + c * vm[x]) / (z_kept + c);
        s.err_token = RelativeError(o, o_full);
        for (int x = 0; x < d; ++x) o[x] = z_kept > 0 ? o_kept[x] / z_kept : 0.0;
        s.err_none = RelativeError(o, o_full);
        for (int x = 0; x < d; ++x) o[x] = (o_kept[x] + m_drop * vm[x]) / (z_kept + m_drop);
        s.err_ideal_weight = RelativeError(o, o_full);
        s.token_better = s.err_token < s.err_none ? 1 : 0;
      }
    }
  };
  const int64_t n_scored = static_cast<int64_t>(scored.size());
  if (pool_ != nullptr) pool_->ParallelFor(n_scored, score);
  else score(0, n_scored);
  for (int64_t t = 0; t < n; ++t)  // in token order: the sums do not depend on the thread count
    for (int h = 0; h < n_heads_; ++h) {
      const CompensationHeadSums& x = scratch_[t * n_heads_ + h];
      if (x.queries == 0) continue;
      CompensationHeadSums& s = sums_[static_cast<size_t>(layer) * n_heads_ + h];
      s.queries += x.queries;
      s.dropped_mass += x.dropped_mass, s.token_share += x.token_share, s.token_mass += x.token_mass;
      s.err_token += x.err_token, s.err_none += x.err_none, s.err_ideal_weight += x.err_ideal_weight;
      s.token_better += x.token_better;
    }
}

CompensationSummary Summarise(const std::vector<CompensationHeadSums>& sums,
                              const std::vector<DroppedSpread>& spreads) {
  CompensationSummary r;
  double token_mass = 0;
  for (const auto& s : sums) {
    if (s.queries == 0) continue;
    ++r.heads;
    r.queries += s.queries;
    r.dropped_mass += s.dropped_mass, r.token_share += s.token_share, token_mass += s.token_mass;
    r.err_token += s.err_token, r.err_none += s.err_none, r.err_ideal_weight += s.err_ideal_weight;
    r.token_better += static_cast<double>(s.token_better);
  }
  if (r.queries > 0) {
    const double q = static_cast<double>(r.queries);
    r.captured = r.dropped_mass > 0 ? token_mass / r.dropped_mass : 0;
    r.dropped_mass /= q, r.token_share /= q;
    r.err_token /= q, r.err_none /= q, r.err_ideal_weight /= q, r.token_better /= q;
  }
  int64_t kv = 0;
  for (const auto& s : spreads) {
    if (s.dropped == 0) continue;
    ++kv;
    r.key_cos += s.key_cos, r.key_norm_ratio += s.key_norm_ratio, r.value_norm_ratio += s.value_norm_ratio;
  }
  if (kv > 0) r.key_cos /= kv, r.key_norm_ratio /= kv, r.value_norm_ratio /= kv;
  return r;
}

nlohmann::json ToJson(const CompensationSummary& s) {
  return {{"query_heads", s.heads},        {"queries", s.queries},
          {"dropped_mass", s.dropped_mass}, {"token_share", s.token_share},
          {"captured", s.captured},         {"err_token", s.err_token},
          {"err_none", s.err_none},         {"err_ideal_weight", s.err_ideal_weight},
          {"token_better", s.token_better}, {"key_cos", s.key_cos},
          {"key_norm_ratio", s.key_norm_ratio}, {"value_norm_ratio", s.value_norm_ratio}};
}

}  // namespace razor::eval
