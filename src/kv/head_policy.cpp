#include "kv/head_policy.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace razor {

const char* KvModeName(KvMode mode) {
  switch (mode) {
    case KvMode::kFull: return "full";
    case KvMode::kRazor: return "razor";
    case KvMode::kStreaming: return "streaming";
  }
  return "?";
}

Result<KvMode> ParseKvMode(std::string_view name) {
  if (name == "full") return KvMode::kFull;
  if (name == "razor") return KvMode::kRazor;
  if (name == "streaming") return KvMode::kStreaming;
  return Err(fmt::format("unknown KV cache mode '{}' (expected full, razor or streaming)", name));
}

double ExpectedKeptFraction(double r, int64_t n, int64_t sinks, int64_t window, bool compensation) {
  if (n <= 0 || n <= sinks + window) return 1.0;
  const double kept = static_cast<double>(sinks + window + (compensation ? 1 : 0)) / static_cast<double>(n);
  return r + (1.0 - r) * std::min(1.0, kept);
}

Result<KvHeadPolicy> KvHeadPolicy::Make(const RazorParams& p, int n_layers, int n_kv_heads,
                                        std::vector<bool> retrieval) {
  if (n_layers <= 0 || n_kv_heads <= 0)
    return Err(fmt::format("KV head policy for {} layers x {} KV heads", n_layers, n_kv_heads));
  if (p.sinks < 0) return Err(fmt::format("sinks (N0) must be >= 0, got {}", p.sinks));
  if (p.window_min < 1) return Err(fmt::format("window_min (S0) must be >= 1, got {}", p.window_min));
  if (!(p.window_frac >= 0.0 && p.window_frac <= 1.0))
    return Err(fmt::format("window_frac (1/C) must be in [0, 1], got {}", p.window_frac));
  if (p.block_tokens < 1 || p.block_tokens > (1 << 20))
    return Err(fmt::format("block_tokens must be in [1, 2^20], got {}", p.block_tokens));
  const size_t heads = static_cast<size_t>(n_layers) * n_kv_heads;
  KvHeadPolicy policy;
  policy.params_ = p;
  policy.n_layers_ = n_layers;
  policy.n_kv_heads_ = n_kv_heads;
  if (p.mode == KvMode::kRazor) {
    if (retrieval.size() != heads)
      return Err(fmt::format("razor KV mode needs a head profile of {} layers x {} KV heads = {} flags, got {}",
                             n_layers, n_kv_heads, heads, retrieval.size()));
    policy.retrieval_ = std::move(retrieval);
  }
  if (p.mode == KvMode::kStreaming) policy.params_.compensation = false;
  return policy;
}

bool KvHeadPolicy::is_retrieval(int layer, int kv_head) const {
  switch (params_.mode) {
    case KvMode::kFull: return true;
    case KvMode::kStreaming: return false;
    case KvMode::kRazor: return retrieval_[static_cast<size_t>(layer) * n_kv_heads_ + kv_head];
  }
  return true;
}

bool KvHeadPolicy::compresses(int layer, int kv_head) const { return !is_retrieval(layer, kv_head); }

int64_t KvHeadPolicy::Window(int64_t n) const {
  const auto by_frac = static_cast<int64_t>(std::floor(static_cast<double>(n) * params_.window_frac));
  return std::max(params_.window_min, by_frac);
}

int64_t KvHeadPolicy::HeadWindow(int layer, int kv_head, int64_t n) const {
  if (!head_windows_.empty()) {
    const int64_t w = head_windows_[static_cast<size_t>(layer) * n_kv_heads_ + kv_head];
    if (w > 0) return w;
  }
  return Window(n);
}

Status KvHeadPolicy::SetHeadWindows(std::vector<int64_t> windows) {
  const size_t heads = static_cast<size_t>(n_layers_) * n_kv_heads_;
  if (windows.size() != heads)
    return Err(fmt::format("per-head windows for {} layers x {} KV heads = {} heads, got {}", n_layers_,
                           n_kv_heads_, heads, windows.size()));
  for (int64_t w : windows)
    if (w < 0) return Err(fmt::format("per-head window must be >= 0 (0 = the policy's W), got {}", w));
  head_windows_ = std::move(windows);
  return Status::Ok();
}

double KvHeadPolicy::retrieval_fraction() const {
  switch (params_.mode) {
    case KvMode::kFull: return 1.0;
    case KvMode::kStreaming: return 0.0;
    case KvMode::kRazor: break;
  }
  const auto kept = std::count(retrieval_.begin(), retrieval_.end(), true);
  return static_cast<double>(kept) / static_cast<double>(retrieval_.size());
}

double KvHeadPolicy::ExpectedKeptFraction(int64_t n) const {
  return razor::ExpectedKeptFraction(retrieval_fraction(), n, params_.sinks, Window(n), compensation());
}

std::string KvHeadPolicy::Describe() const {
  const int heads = n_layers_ * n_kv_heads_;
  const auto full_heads = static_cast<int>(std::lround(retrieval_fraction() * heads));
  const auto own = std::count_if(head_windows_.begin(), head_windows_.end(), [](int64_t w) { return w > 0; });
  return fmt::format("kv {}: {}/{} KV heads keep every token; others keep N0={} sinks + W=max({}, {:.3g}*N) window{}{}{}",
                     KvModeName(params_.mode), full_heads, heads, params_.sinks, params_.window_min,
                     params_.window_frac, own ? fmt::format(" ({} heads: their own window, an ALiBi span L_h or a sliding window)", own) : "",
                     compensation() ? " + compensation token" : "", decode_fold() ? ", decode folds into it" : "");
}

int64_t KvHeadPolicy::PlannedPeakBlocks(int64_t prompt_tokens, int64_t total_tokens) const {
  const int64_t bt = std::max<int64_t>(1, params_.block_tokens);
  const int64_t n = std::max<int64_t>(0, prompt_tokens);
  const int64_t total = std::max(n, total_tokens);
  auto blocks = [&](int64_t rows) { return (rows + bt - 1) / bt; };
  const int64_t n0 = params_.sinks;
  const bool compressing = mode() != KvMode::kFull && n > 0;
  int64_t prefill_peak = 0, compressed_before = 0, end_of_decode = 0;
  for (int l = 0; l < n_layers_; ++l) {
    int64_t layer_during = 0, layer_after = 0;  // blocks of this layer while it is compressed, and after
    for (int hi = 0; hi < n_kv_heads_; ++hi) {
      const int64_t w = HeadWindow(l, hi, n);
      if (compressing && compresses(l, hi) && n <= n0 + w && decode_fold()) {
        // Left whole by a short prompt; decode_fold cuts it at the first length t with t > N0 + W(t)
        // (RazorKvCache::OnLayerDone), then it holds SteadyBlocks for W(t). t - W(t) grows with t: bisect.
        int64_t lo = n + 1, hi_t = total + 1;  // the first cut length in [lo, hi_t); total + 1: never cut
        while (lo < hi_t) {
          const int64_t mid = lo + (hi_t - lo) / 2;
          if (mid > n0 + HeadWindow(l, hi, mid)) hi_t = mid;
          else lo = mid + 1;
        }
        end_of_decode += lo > total ? blocks(total) : blocks(n0 + HeadWindow(l, hi, lo) + bt);
        layer_during += blocks(n);
        layer_after += blocks(n);
        continue;
      }
      if (!compressing || !compresses(l, hi) || n <= n0 + w) {
        end_of_decode += blocks(total);
        layer_during += blocks(n);
        layer_after += blocks(n);
        continue;
      }
      // Fold: SteadyBlocks (N0 + W from a first row < bt, plus the decode token before its fold).
      const int64_t after = decode_fold() ? blocks(n0 + w + bt) : blocks(n0 + w);
      end_of_decode += decode_fold() ? after : blocks(n0 + w + total - n);
      layer_during += std::max(blocks(n), after);
      layer_after += after;
    }
    prefill_peak = std::max(prefill_peak, compressed_before + layer_during);
    compressed_before += layer_after;
  }
  return std::max(prefill_peak, end_of_decode);
}

}  // namespace razor
