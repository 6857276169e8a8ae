#include "runtime/kv_cache_factory.h"

#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

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
  po.on_progress = o.on_progress;
  RAZOR_ASSIGN_OR_RETURN(HeadProfile profile, ProfileHeads(model, pool, MathMode::kFast, po));
  fs::create_directories(fs::path(path).parent_path(), ec);
  Status saved = profile.Save(path, /*overwrite=*/false);
  if (!saved.ok() && o.log) o.log("could not cache the head profile: " + saved.message());
  return profile;
}

Result<std::unique_ptr<KvCache>> MakeKvCache(const LoadedModel& model, const KvCacheOptions& o, int64_t capacity,
                                             int64_t prompt_tokens, ThreadPool& pool) {
  const ModelConfig& c = model.config;
  if (o.mode == KvMode::kFull) {
    // The same paged per-head storage as razor mode, keeping every token: byte and speed comparisons
    // between modes then differ only in what is kept.
    RazorParams full = o.razor;
    full.mode = KvMode::kFull;
    RAZOR_ASSIGN_OR_RETURN(KvHeadPolicy policy, KvHeadPolicy::Make(full, c.n_layers, c.n_kv_heads, {}));
    return std::unique_ptr<KvCache>(new RazorKvCache(std::move(policy), c.head_dim, capacity));
  }
  RazorParams params = o.razor;
  params.mode = o.mode;
  std::vector<bool> retrieval;
  std::vector<int64_t> head_windows;  // ALiBi: each KV head's span L_h (max over its query heads)
  double r = 0;
  if (o.mode == KvMode::kRazor || o.streaming_window == 0) {
    RAZOR_ASSIGN_OR_RETURN(HeadProfile profile, LoadOrMakeProfile(model, o, pool));
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
    r = double(std::count(retrieval.begin(), retrieval.end(), true)) / retrieval.size();
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
  return std::unique_ptr<KvCache>(new RazorKvCache(std::move(policy), c.head_dim, capacity));
}

}  // namespace razor
