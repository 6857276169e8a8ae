#include "runtime/kv_cache_factory.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <optional>

#include "kv/razor_kv_cache.h"
#include "runtime/head_profiler.h"

namespace razor {
namespace fs = std::filesystem;

std::string DefaultProfilePath(const LoadedModel& model) {
  fs::path p(model.path);
  const std::string file = p.filename().string() + ".razor-profile.json";
  fs::path dir = fs::is_directory(p) ? p : p.parent_path();
  if (dir.empty()) dir = ".";
  if (::access(dir.c_str(), W_OK) == 0) return (dir / file).string();
  const char* home = std::getenv("RAZOR_HOME");
  fs::path base = home ? fs::path(home) : fs::path(std::getenv("HOME") ? std::getenv("HOME") : ".") / ".cache/razor";
  return (base / "profiles" / file).string();
}

Result<HeadProfile> LoadOrMakeProfile(const LoadedModel& model, const KvCacheOptions& o, ThreadPool& pool) {
  const ModelIdentity identity = ModelIdentityOf(model);
  const bool explicit_path = !o.profile_path.empty();
  const std::string path = explicit_path ? o.profile_path : DefaultProfilePath(model);
  std::error_code ec;
  if (fs::exists(path, ec)) {
    RAZOR_ASSIGN_OR_RETURN(HeadProfile profile, HeadProfile::Load(path));
    RAZOR_RETURN_IF_ERROR(profile.CheckMatches(identity));
    if (o.log && o.verbose) o.log(fmt::format("head profile: {} ({} retrieval KV heads of {})", path,
                                              profile.retrieval.size(), profile.total_kv_heads()));
    return profile;
  }
  if (explicit_path) return Err(path + ": no such profile (make one with `razor profile -o " + path + "`)");
  if (o.log) o.log("no head profile for this model yet: profiling it once (cached at " + path + ")");
  HeadProfilerOptions po;
  po.on_progress = o.on_profile_progress;  // the front end shows it; the library never prints
  RAZOR_ASSIGN_OR_RETURN(HeadProfile profile, ProfileHeads(model, pool, MathMode::kFast, po));
  fs::create_directories(fs::path(path).parent_path(), ec);
  Status saved = profile.Save(path, /*overwrite=*/false);
  if (!saved.ok() && o.log) o.log("could not cache the head profile: " + saved.message());
  return profile;
}

bool KvOptionsNeedProfile(const KvCacheOptions& o) {
  return o.mode == KvMode::kRazor || (o.mode == KvMode::kStreaming && o.streaming_window == 0);
}

Result<std::unique_ptr<KvCache>> MakeKvCache(const LoadedModel& model, const KvCacheOptions& o, int64_t capacity,
                                             int64_t prompt_tokens, ThreadPool& pool) {
  std::optional<HeadProfile> profile;
  if (KvOptionsNeedProfile(o)) {
    RAZOR_ASSIGN_OR_RETURN(HeadProfile p, LoadOrMakeProfile(model, o, pool));
    profile = std::move(p);
  }
  RAZOR_ASSIGN_OR_RETURN(KvHeadPolicy policy,
                         MakeKvPolicy(model, o, capacity, prompt_tokens, profile ? &*profile : nullptr));
  return std::unique_ptr<KvCache>(new RazorKvCache(std::move(policy), model.config.head_dim, capacity, o.kv_type));
}

namespace {

// Sliding-window models (Gemma 3): only the global layers' heads can retrieve beyond the window, so the
// retrieval heads are the best-scoring of them, the profile's ratios applied to their count; a local head
// keeps its window (its attention never sees further: exact), marked in head_windows.
std::vector<bool> GlobalRetrievalHeads(const ModelConfig& c, const HeadProfile& profile, bool use_echo,
                                       std::vector<int64_t>* head_windows) {
  const size_t heads = static_cast<size_t>(c.n_layers) * c.n_kv_heads;
  std::vector<bool> retrieval(heads, false);
  head_windows->assign(heads, 0);
  std::vector<size_t> global;
  for (int l = 0; l < c.n_layers; ++l)
    for (int kh = 0; kh < c.n_kv_heads; ++kh) {
      const size_t i = static_cast<size_t>(l) * c.n_kv_heads + kh;
      if (c.is_local_layer(l)) (*head_windows)[i] = c.sliding_window;
      else global.push_back(i);
    }
  auto pick = [&](const std::vector<float>& score, double ratio) {
    std::vector<size_t> order = global;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return score[a] > score[b]; });
    const int n = HeadsForRatio(ratio, static_cast<int>(order.size()));
    for (int k = 0; k < n; ++k) retrieval[order[k]] = true;
  };
  if (profile.kv_induction.size() == heads) pick(profile.kv_induction, profile.params.induction_ratio);
  if (use_echo && profile.kv_echo.size() == heads) pick(profile.kv_echo, profile.params.echo_ratio);
  return retrieval;
}

}  // namespace

Result<KvHeadPolicy> MakeKvPolicy(const LoadedModel& model, const KvCacheOptions& o, int64_t capacity,
                                  int64_t prompt_tokens, const HeadProfile* profile_in) {
  const ModelConfig& c = model.config;
  if (o.mode == KvMode::kFull) {
    // The same paged per-head storage as razor mode, keeping every token: byte and speed comparisons
    // between modes then differ only in what is kept.
    RazorParams full = o.razor;
    full.mode = KvMode::kFull;
    return KvHeadPolicy::Make(full, c.n_layers, c.n_kv_heads, {});
  }
  RazorParams params = o.razor;
  params.mode = o.mode;
  std::vector<bool> retrieval;
  std::vector<int64_t> head_windows;  // ALiBi: each KV head's span L_h (max over its query heads)
  double r = 0;
  if (KvOptionsNeedProfile(o)) {
    if (profile_in == nullptr) return Err("internal: this KV policy needs the head profile, and none was loaded");
    HeadProfile profile = *profile_in;
    if (o.induction_ratio > 0) {  // ablation: same scores, another share of induction heads
      profile.params.induction_ratio = o.induction_ratio;
      profile.SelectRetrievalHeads();
    }
    retrieval.assign(static_cast<size_t>(c.n_layers) * c.n_kv_heads, false);
    for (const auto& h : profile.by_induction) retrieval[h.layer * c.n_kv_heads + h.kv_head] = true;
    if (o.use_echo_heads)
      for (const auto& h : profile.by_echo) retrieval[h.layer * c.n_kv_heads + h.kv_head] = true;
    if (o.mode == KvMode::kRazor && !profile.alibi_spans.heads.empty()) {
      // ALiBi (RazorAttention §2): a head whose span L_h covers this cache's context is a retrieval head too;
      // every other head keeps its own L_h most recent tokens instead of W (plus sinks + compensation).
      std::vector<double> span(c.n_kv_heads, 0.0);
      for (const auto& h : profile.alibi_spans.heads)
        if (h.head >= 0 && h.head < c.n_heads) {
          double& s = span[h.head / c.group_size()];
          s = std::max(s, h.span);
        }
      head_windows.assign(retrieval.size(), 0);
      for (int l = 0; l < c.n_layers; ++l)
        for (int kh = 0; kh < c.n_kv_heads; ++kh) {
          const size_t i = static_cast<size_t>(l) * c.n_kv_heads + kh;
          if (!(span[kh] < static_cast<double>(capacity))) retrieval[i] = true;  // inf / NaN spans too
          else head_windows[i] = std::max<int64_t>(1, static_cast<int64_t>(std::ceil(span[kh])));
        }
    }
    if (c.sliding_window > 0) retrieval = GlobalRetrievalHeads(c, profile, o.use_echo_heads, &head_windows);
    // r: over the heads the budget is about (the global ones under a sliding window: local heads keep
    // their window in every mode).
    int n_global = 0;
    for (int l = 0; l < c.n_layers; ++l) n_global += c.is_local_layer(l) ? 0 : c.n_kv_heads;
    r = n_global > 0 ? double(std::count(retrieval.begin(), retrieval.end(), true)) / n_global : 0.0;
  } else if (c.sliding_window > 0) {
    HeadProfile none;
    retrieval = GlobalRetrievalHeads(c, none, false, &head_windows);
  }
  if (o.mode == KvMode::kStreaming) {
    // StreamingLLM at razor's budget: per head razor keeps on average r*N + (1-r)(N0 + 1 + W) tokens;
    // streaming keeps N0 + W_s on every head.
    int64_t ws = o.streaming_window;
    if (ws == 0) {
      RAZOR_ASSIGN_OR_RETURN(KvHeadPolicy razor_policy,
                             KvHeadPolicy::Make([&] { RazorParams p = o.razor; p.mode = KvMode::kRazor; return p; }(),
                                                c.n_layers, c.n_kv_heads, retrieval));
      const int64_t n = std::max<int64_t>(1, prompt_tokens);
      const int64_t w = razor_policy.Window(n);
      const double kept = razor_policy.WouldCompress(n) ? r * n + (1 - r) * (params.sinks + 1 + w) : double(n);
      ws = std::max<int64_t>(1, static_cast<int64_t>(kept) - params.sinks);
    }
    params.window_min = ws;
    params.window_frac = 0.0;
    params.compensation = false;
    retrieval.clear();
  }
  RAZOR_ASSIGN_OR_RETURN(KvHeadPolicy policy, KvHeadPolicy::Make(params, c.n_layers, c.n_kv_heads, retrieval));
  if (!head_windows.empty()) RAZOR_RETURN_IF_ERROR(policy.SetHeadWindows(std::move(head_windows)));
  if (o.log && o.verbose) o.log("kv policy: " + policy.Describe());
  if (o.log && o.verbose && !policy.WouldCompress(std::max<int64_t>(1, prompt_tokens)))
    o.log(fmt::format("kv: the prompt ({} tokens) fits in sinks + window ({} + {}): nothing is compressed",
                      prompt_tokens, params.sinks, policy.Window(std::max<int64_t>(1, prompt_tokens))));
  return policy;
}

}  // namespace razor
