// razor profile: find a model's retrieval heads (RazorAttention §1) and save them as a versioned JSON
// profile, optionally with a PNG heatmap of every head's induction and echo score.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <optional>

#include "cli_common.h"
#include "output_path.h"
#include "progress.h"
#include "core/thread_pool.h"
#include "runtime/alibi_spans.h"
#include "runtime/head_profiler.h"
#include "runtime/kv_cache_factory.h"
#include "runtime/heatmap_png.h"

namespace razor::cli {
namespace {

struct ProfileOptions {
  CommonOptions common;
  std::string output;  // empty: <model stem>.heads.json in the current directory
  std::string plot;
  bool force = false;
  bool quiet = false;
  HeadProfilerOptions profiler;
  std::vector<int32_t> token_range;
  double alibi_epsilon = 1e-5;
};

double Median(std::vector<float> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

void PrintTop(const HeadProfile& p, const char* what, const std::vector<float>& kv, const std::vector<KvHeadId>& selected) {
  const auto ranked = p.Ranked(kv);
  std::printf("top %s heads (KV head score = max over its query heads):\n", what);
  std::printf("  rank  layer  kv head  score   selected\n");
  for (size_t i = 0; i < std::min<size_t>(10, ranked.size()); ++i) {
    const KvHeadId h = ranked[i];
    const bool sel = std::find(selected.begin(), selected.end(), h) != selected.end();
    std::printf("  %4zu  %5d  %7d  %.4f  %s\n", i + 1, h.layer, h.kv_head, kv[h.layer * p.model.n_kv_heads + h.kv_head],
                sel ? "yes" : "");
  }
}

void PrintAlibiSpans(const AlibiSpanSummary& s) {
  std::printf("ALiBi spans (RazorAttention §2; keys beyond L_h carry < %g of a head's mass; context %lld):\n",
              s.epsilon, (long long)s.context);
  std::printf("  head  slope       B_h         L_h (tokens)  retrieval\n");
  for (const AlibiHeadSpan& h : s.heads)
    std::printf("  %4d  %-10.6g  %-10.4g  %-12.6g  %s\n", h.head, h.slope, h.bound, h.span, h.retrieval ? "yes" : "");
  const auto n = std::count_if(s.heads.begin(), s.heads.end(), [](const AlibiHeadSpan& h) { return h.retrieval; });
  std::printf("  %lld of %zu query heads reach the context (spans are recorded in the profile; the retrieval KV heads "
              "above come from the induction/echo scores)\n", (long long)n, s.heads.size());
}

int Profile(ProfileOptions& o) {
  if (!o.token_range.empty()) {
    o.profiler.token_lo = o.token_range[0];
    o.profiler.token_hi = o.token_range[1];
  }
  auto path = ResolveModelPath(o.common.model);
  if (!path) return Fail(path.error());
  auto loaded = LoadModel(*path, /*load_tokenizer=*/true);
  if (!loaded) return Fail(loaded.error());
  const LoadedModel& m = **loaded;
  const ModelConfig& c = m.config;
  const ModelIdentity identity = ModelIdentityOf(m);
  // By default the profile goes where `razor run --kv razor` looks for it.
  const std::string out_path = o.output.empty() ? DefaultProfilePath(m) : o.output;
  if (o.output.empty()) {
    std::error_code mk;
    const auto dir = std::filesystem::path(out_path).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir, mk);
  }
  // Every output is checked before the expensive run. The JSON may exist when it holds this very profile
  // (checked below; Save repeats the check for identical contents), so only its kind and folder are checked here.
  if (Status st = CheckOutputFile(out_path, /*force=*/true, "-o"); !st.ok()) return Fail(st.message());
  if (!o.plot.empty())
    if (Status st = CheckOutputFile(o.plot, o.force, "--plot"); !st.ok()) return Fail(st.message());
  std::error_code ec;
  // Refuse before an expensive run rather than after it (Save repeats the check for identical contents).
  const bool existing = !o.force && std::filesystem::exists(out_path, ec);
  std::optional<HeadProfile> old;
  if (existing) {
    auto loaded_old = HeadProfile::Load(out_path);
    if (!loaded_old)
      return Fail(fmt::format("{} exists and is not a readable head profile ({}); use --force to replace it",
                              out_path, loaded_old.error()));
    old = std::move(*loaded_old);
    if (!old->CheckMatches(identity).ok())
      return Fail(fmt::format("{} holds a profile for {}; use --force to replace it or -o for another file", out_path,
                              old->model.Describe()));
  }

  o.profiler.context = o.common.ctx;
  const int threads = o.common.ResolvedThreads();
  if (o.common.device == "cuda")
    return Fail("--device cuda: razor profile runs on the CPU (the profiler reads every layer's attention there); "
                "the profile it writes serves GPU runs too");
  EngineOptions eo;
  eo.device = EngineDevice::kCpu;  // the profiler reads each layer's attention on the CPU
  eo.threads = threads;
  eo.math = o.common.mode();
  eo.context = o.common.ctx;
  auto engine = Engine::Open(*loaded, eo);
  if (!engine) return Fail(engine.error());
  const auto t0 = std::chrono::steady_clock::now();
  auto seconds = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  ProgressReporter progress("[profile] layer pass");
  if (!o.quiet) o.profiler.on_progress = progress.Callback();
  HeadProfileParams preview;
  auto prompt = MakeProfilePrompt(c, m.tokenizer.get(), -1, o.profiler, &preview);
  if (!prompt) return Fail(prompt.error());
  if (old) {
    const HeadProfileParams& q = old->params;
    if (q.seed != preview.seed || q.block != preview.block || q.repeats != preview.repeats ||
        q.token_lo != preview.token_lo || q.token_hi != preview.token_hi ||
        q.induction_ratio != preview.induction_ratio || q.echo_ratio != preview.echo_ratio)
      return Fail(fmt::format("{} holds a profile made with other parameters (seed {}, block {} x {}, ids [{}, {}), ratios "
                              "{} / {}); use --force to replace it or -o for another file",
                              out_path, q.seed, q.block, q.repeats, q.token_lo, q.token_hi, q.induction_ratio,
                              q.echo_ratio));
  }
  if (preview.block < o.profiler.block)
    std::fprintf(stderr, "razor: block capped at %lld tokens so that 1 + %lld x %d fits the context\n",
                 (long long)preview.block, (long long)preview.block, preview.repeats);
  std::fprintf(stderr, "razor: profiling %s: BOS + %lld random ids from [%d, %d) x %d = %zu tokens, %d threads, %s kernels\n",
               identity.Describe().c_str(), (long long)preview.block, preview.token_lo, preview.token_hi,
               preview.repeats, prompt->size(), threads, o.common.exact ? "exact" : "fast");

  auto profile = (*engine)->ProfileHeads(o.profiler);
  const double elapsed = seconds();
  progress.Finish();
  if (!profile) return Fail(profile.error());
  if (c.alibi) {
    AlibiSpanOptions so;
    so.epsilon = o.alibi_epsilon;
    so.context = o.common.ctx;
    auto spans = ComputeAlibiSpans(c, m.weights, so);
    if (!spans) return Fail(spans.error());
    profile->alibi_spans = std::move(*spans);
  }
  const HeadProfile& p = *profile;

  Status st = p.Save(out_path, o.force);
  if (!st.ok()) return Fail(st.message() + (o.force ? "" : " (use --force to replace it)"));
  if (!o.plot.empty()) {
    st = WriteHeadProfilePng(p, o.plot);
    if (!st.ok()) return Fail(st.message());
  }

  std::printf("model:     %s\n", identity.Describe().c_str());
  std::printf("input:     BOS + %lld-token block x %d (ids [%d, %d), seed %llu) = %lld tokens\n",
              (long long)p.params.block, p.params.repeats, p.params.token_lo, p.params.token_hi,
              (unsigned long long)p.params.seed, (long long)(1 + p.params.block * p.params.repeats));
  PrintTop(p, "induction", p.kv_induction, p.by_induction);
  PrintTop(p, "echo", p.kv_echo, p.by_echo);
  const int total = p.total_kv_heads();
  std::printf("median KV head score: induction %.4f, echo %.4f\n", Median(p.kv_induction), Median(p.kv_echo));
  std::printf("selected:  %zu by induction (ratio %.2f) + %zu by echo (ratio %.2f) -> %zu of %d KV heads (%.1f%%)\n",
              p.by_induction.size(), p.params.induction_ratio, p.by_echo.size(), p.params.echo_ratio,
              p.retrieval.size(), total, 100.0 * p.retrieval.size() / total);
  if (!p.alibi_spans.heads.empty()) PrintAlibiSpans(p.alibi_spans);
  std::printf("time:      %.1f s (%d threads)\n", elapsed, threads);
  std::printf("profile:   %s\n", out_path.c_str());
  if (!o.plot.empty()) std::printf("plot:      %s\n", o.plot.c_str());
  return 0;
}

}  // namespace

void RegisterProfile(CLI::App& app, int* exit_code) {
  static ProfileOptions o;
  auto* cmd = app.add_subcommand("profile", "find retrieval heads (RazorAttention) and save a head profile");
  AddModelOption(cmd, &o.common);
  cmd->add_option("-o,--output", o.output, "profile JSON to write (default: <model file>.razor-profile.json, where run --kv razor looks)");
  AddNumber(cmd, "--induction-ratio", &o.profiler.induction_ratio, "fraction of KV heads kept by induction score",
            0.0, 1.0);
  AddNumber(cmd, "--echo-ratio", &o.profiler.echo_ratio, "fraction of KV heads kept by echo score", 0.0, 1.0);
  AddNumber(cmd, "--block", &o.profiler.block, "random block length L (capped so 1 + L x repeats fits the context)",
            int64_t{1}, int64_t{1} << 30);
  AddNumber(cmd, "--repeats", &o.profiler.repeats, "copies R of the block", 2, 1 << 20);
  AddNumber(cmd, "--seed", &o.profiler.seed, "seed of the random block", uint64_t{0}, UINT64_MAX);
  cmd->add_option("--token-range", o.token_range, "ids of the block are drawn from [LO, HI) (default: [vocab/4, vocab/2))")
      ->expected(2)->check(IntegerIn(0, INT32_MAX));
  AddNumber(cmd, "--batch", &o.profiler.batch, "tokens per forward call (0: the whole input at once)", int64_t{0},
            int64_t{1} << 30);
  AddNumber(cmd, "--alibi-epsilon", &o.alibi_epsilon,
            "ALiBi models: attention mass allowed beyond a head's span L_h = (2 B_h + ln(1/eps)) / m_h", 1e-300, 0.5);
  cmd->add_option("--plot", o.plot, "write a PNG heatmap of the scores");
  cmd->add_flag("-f,--force", o.force, "replace an existing output file");
  cmd->add_flag("-q,--quiet", o.quiet, "no progress line");
  AddRuntimeOptions(cmd, &o.common);
  cmd->callback([exit_code] { *exit_code = Profile(o); });
}

}  // namespace razor::cli
