// razor eval: long-context accuracy of the KV caches on tasks we generate ourselves.
//   needle   Paul Graham essays + a magic-number needle, lengths x depths
//   passkey  repeated filler + a 5-digit pass key, lengths x depths
//   ruler    RULER-style niah_single / niah_multikey / niah_multivalue / vt / cwe
//   kld      KL divergence / top-1 agreement / perplexity of compressed caches vs the full cache on real text
// Every eval writes DIR/<eval>.json, DIR/<eval>.md and pictures, prints progress on stderr, and can re-run one
// cell (--only-*), merging it into an existing DIR/<eval>.json. See docs/EVAL.md.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "cli_common.h"
#include "core/thread_pool.h"
#include "eval/eval_report.h"
#include "eval/eval_runner.h"
#include "eval/eval_samples.h"
#include "eval/haystack.h"
#include "eval/kld.h"
#include "eval/kld_samples.h"
#include "eval/tasks.h"
#include "output_path.h"
#include "progress.h"

namespace razor::cli {
namespace {

using eval::CellResult;
using eval::EvalReport;

struct EvalOptions {
  std::string name;  // needle | passkey | ruler | kld
  CommonOptions common;
  KvCliOptions kv;
  std::string lengths, depths, tasks;
  bool quick = false;
  bool force = false;  // replace existing outputs in --out
  std::string out = "eval_out";
  std::string haystack_dir;
  std::string only_mode, only_task;
  int only_length = 0, only_depth = -1;
  uint64_t seed = 1;
  int samples = 1;  // --samples K: samples per cell (sample k: eval::SampleSeed(seed, ..., k))
  int kld_length = 4096, kld_steps = 256;
};

std::vector<std::string> SplitNames(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ','))
    if (!item.empty()) out.push_back(item);
  return out;
}

bool OnlyGiven(const EvalOptions& o) {
  return !o.only_mode.empty() || !o.only_task.empty() || o.only_length > 0 || o.only_depth >= 0;
}

// Essay sentences enough for `max_tokens` (about 4 characters per token; twice that to be safe).
Result<std::vector<std::string>> EssaySentences(const std::string& dir, int64_t max_tokens, std::string* text) {
  RAZOR_ASSIGN_OR_RETURN(*text, eval::LoadHaystackText(dir.empty() ? eval::DefaultHaystackDir() : dir));
  auto all = eval::SplitSentences(*text);
  std::vector<std::string> out;
  size_t chars = 0;
  for (auto& s : all) {
    if (chars > static_cast<size_t>(max_tokens) * 8) break;
    chars += s.size() + 1;
    out.push_back(std::move(s));
  }
  return out;
}

nlohmann::json Settings(const EvalOptions& o, const std::vector<KvMode>& modes, Engine& engine) {
  std::string m;
  for (KvMode k : modes) m += (m.empty() ? "" : ",") + std::string(KvModeName(k));
  const RazorParams& p = o.kv.cache.razor;
  nlohmann::json j = {{"modes", m},
                      {"device", DeviceKindName(engine.backend().device())},  // where the runs went
                      {"backend", engine.backend().Describe()},
                      {"kernels", o.common.exact ? "exact" : "fast"},
                      {"isa", MatMulIsa()},
                      {"threads", o.common.ResolvedThreads()},
                      {"sinks", p.sinks},
                      {"window_min", p.window_min},
                      {"window_frac", p.window_frac},
                      {"compensation", p.compensation},
                      {"kv_type", KvTypeName(o.kv.cache.kv_type)},
                      {"echo_heads", o.kv.cache.use_echo_heads},
                      {"induction_ratio", o.kv.cache.induction_ratio},  // 0: the profile's own ratio
                      {"seed", o.seed},
                      {"quick", o.quick}};
  if (o.samples > 1) j["samples"] = o.samples;  // absent: one sample per cell (the settings of before --samples)
  return j;
}

// The files an eval writes into --out, refused when they exist unless --force, or --only-* (which re-runs
// cells and merges them into this eval's files on purpose).
Status CheckEvalOutputs(const EvalOptions& o, const std::vector<KvMode>& modes) {
  std::vector<std::string> files = {o.name + ".json", o.name + ".md"};
  if (o.name == "kld") files.push_back("kld.png");
  else
    for (KvMode k : modes) files.push_back(o.name + "_" + KvModeName(k) + ".png");
  return CheckOutputDir(o.out, files, o.force || OnlyGiven(o), "--out");
}

// The engine of an eval run, with the head profile loaded (or made once) when a mode needs it.
Result<std::unique_ptr<Engine>> OpenEvalEngine(std::shared_ptr<LoadedModel> m, const EvalOptions& o,
                                               const std::vector<KvMode>& modes) {
  RAZOR_ASSIGN_OR_RETURN(auto engine, OpenEngine(std::move(m), o.common, o.kv));
  for (KvMode mode : modes) {
    KvCacheOptions kvo = o.kv.cache;
    kvo.mode = mode;
    kvo.log = [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
    ProgressReporter profiling("profiling retrieval heads");
    RAZOR_RETURN_IF_ERROR(engine->EnsureProfile(kvo, profiling.Callback()));
  }
  return engine;
}

// needle / passkey / ruler: a grid of (task, length, depth) cells, each run with every mode.
int RunGrid(EvalOptions& o) {
  auto modes = o.kv.Resolve();
  if (!modes) return Fail(modes.error());
  auto lengths = ParseIntList(o.lengths, "length", 64, int(kMaxTokens));
  if (!lengths) return Fail(lengths.error());
  auto depths = ParseIntList(o.depths, "depth", 0, 100);
  if (!depths) return Fail(depths.error());
  std::vector<std::string> tasks = o.name == "ruler" ? SplitNames(o.tasks) : std::vector<std::string>{o.name};
  for (const auto& t : tasks)
    if (o.name == "ruler" && std::find(eval::RulerTaskNames().begin(), eval::RulerTaskNames().end(), t) ==
                                 eval::RulerTaskNames().end())
      return Fail(fmt::format("unknown ruler task '{}' (niah_single, niah_multikey, niah_multivalue, vt, cwe)", t));
  if (tasks.empty()) return Fail("no task given");
  if (!o.only_mode.empty()) {
    auto om = ParseKvMode(o.only_mode);
    if (!om) return Fail("--only-mode: " + om.error());
    modes->assign(1, *om);
  }
  if (Status st = CheckEvalOutputs(o, *modes); !st.ok()) return Fail(st.message());
  auto keep = [&](const std::string& t, int L, int d) {
    return (o.only_task.empty() || o.only_task == t) && (o.only_length <= 0 || o.only_length == L) &&
           (o.only_depth < 0 || o.only_depth == d);
  };

  auto loaded = LoadModelFromOption(o.common.model);
  if (!loaded) return Fail(loaded.error());
  const LoadedModel& m = **loaded;
  if (!m.tokenizer) return Fail(m.path + ": the model has no tokenizer");
  const int64_t ctx = o.common.ctx > 0 ? o.common.ctx : m.config.context_length;
  // The cells, checked against the context before any work (profiling, filler). Lengths are <= kMaxTokens,
  // so L + 64 cannot overflow.
  struct Job {
    std::string task;
    int length, depth;
  };
  std::vector<Job> jobs;
  std::vector<int> too_long;
  for (const auto& t : tasks)
    for (int L : *lengths)
      for (int d : *depths) {
        if (!keep(t, L, d)) continue;
        if (L + 64 > ctx) {
          if (std::find(too_long.begin(), too_long.end(), L) == too_long.end()) too_long.push_back(L);
          continue;
        }
        jobs.push_back({t, L, d});
      }
  if (jobs.empty() && !too_long.empty())
    return Fail(fmt::format("no cell to run: every length is over the context of {} tokens (a prompt needs its "
                            "length + 64)", ctx));
  if (jobs.empty()) return Fail("no cell to run (check --only-* against --lengths / --depths / --tasks)");
  for (int L : too_long)
    std::fprintf(stderr, "razor: skipping length %d: over the context of %lld tokens\n", L, (long long)ctx);
  auto engine = OpenEvalEngine(*loaded, o, *modes);
  if (!engine) return Fail(engine.error());
  eval::EvalRunner runner(**engine, o.kv.cache);
  const eval::TokenCounter count = runner.Counter();

  // Filler, only what the tasks need.
  int max_len = 0;
  for (const Job& j : jobs) max_len = std::max(max_len, j.length);
  eval::TaskInputs in;
  in.count = count;
  eval::Filler essays, noise;
  const bool need_essays = std::any_of(tasks.begin(), tasks.end(), [](const std::string& t) {
    return t == "needle" || t.rfind("niah_", 0) == 0 || t == "cwe";
  });
  if (need_essays) {
    std::string text;
    auto sentences = EssaySentences(o.haystack_dir, max_len, &text);
    if (!sentences) return Fail(sentences.error());
    essays = eval::Filler::Make(std::move(*sentences), count);
    in.essays = &essays;
    in.words = eval::DistinctWords(text, 20000);
  }
  noise = eval::Filler::Make(eval::PasskeyFillerSentences(), count);
  in.noise = &noise;

  EvalReport report;
  report.eval = o.name;
  report.model = m.path;
  report.settings = Settings(o, *modes, **engine);
  const std::string json_path = o.out + "/" + o.name + ".json";
  if (OnlyGiven(o) && std::filesystem::exists(json_path)) {
    auto old = eval::ReadReport(json_path);
    if (!old) return Fail(old.error());
    // Cells are compared with the full cache's bytes of earlier runs: those must hold the same KV type (a report
    // from before --kv-type existed was fp32).
    const std::string old_type = old->settings.value("kv_type", "f32");
    if (old_type != KvTypeName(o.kv.cache.kv_type))
      return Fail(fmt::format("{} holds cells measured with KV {}; merge with --kv-type {} or use another --out",
                              json_path, old_type, old_type));
    report.cells = old->cells;
    std::fprintf(stderr, "merging into %s (%zu cells)\n", json_path.c_str(), report.cells.size());
  }
  const size_t K = static_cast<size_t>(o.samples);
  const size_t total = jobs.size() * modes->size() * K;
  size_t done = 0;
  const auto t_start = std::chrono::steady_clock::now();
  for (const Job& job : jobs) {
    // K samples, each run with every mode: the modes of a cell answer the same K prompts (paired).
    std::vector<std::vector<CellResult>> runs(modes->size());  // [mode][sample]
    std::vector<uint64_t> seeds;
    for (size_t k = 0; k < K; ++k) {
      const uint64_t seed = eval::SampleSeed(o.seed, job.task, job.length, job.depth, static_cast<int>(k));
      seeds.push_back(seed);
      auto sample = runner.MakeFitted(job.task, in, job.length, job.depth, seed);
      if (!sample) return Fail(sample.error());
      auto prompt = runner.PromptTokens(*sample);
      if (!prompt) return Fail(prompt.error());
      const double measured_depth = sample->needles.empty() ? -1 : eval::MeasuredDepth(*sample, 0, count);
      double full_bytes = 0;  // a full cell of this prompt from an earlier run (when re-running one mode)
      for (const auto& c : report.cells)
        if (K == 1 && c.mode == "full" && c.task == job.task && c.length == job.length && c.depth == job.depth &&
            c.prompt_tokens == static_cast<int64_t>(prompt->size()))
          full_bytes = c.kv_bytes;
      const size_t first = runs[0].size();  // this sample's index in runs[m]
      for (size_t mi = 0; mi < modes->size(); ++mi) {
        const KvMode mode = (*modes)[mi];
        ++done;
        std::fprintf(stderr, "[%s %zu/%zu] %s %s L=%d depth=%d", o.name.c_str(), done, total, KvModeName(mode),
                     job.task.c_str(), job.length, job.depth);
        if (K > 1) std::fprintf(stderr, " sample %zu/%zu", k + 1, K);
        std::fprintf(stderr, " (%zu tokens) ...", prompt->size());
        std::fflush(stderr);
        auto cell = runner.Run(*sample, *prompt, mode, job.length);
        if (!cell) {
          std::fprintf(stderr, "\n");
          return Fail(cell.error());
        }
        cell->needle_depth = measured_depth;
        if (mode == KvMode::kFull) full_bytes = cell->kv_bytes;
        if (full_bytes > 0) {  // against the full cache measured on the same prompt (same 64-token pages)
          cell->full_kv_bytes = full_bytes;
          cell->reduction = 1.0 - cell->kv_bytes / full_bytes;
        }
        std::string ans = cell->answer;
        std::replace(ans.begin(), ans.end(), '\n', ' ');
        if (ans.size() > 60) ans = ans.substr(0, 60) + "...";
        std::fprintf(stderr, " score %.2f | \"%s\" (want %s) | KV %.1f MiB, -%.1f%% | prefill %.0f tok/s | %.1f s\n",
                     cell->score, ans.c_str(), cell->expected.empty() ? "" : cell->expected.front().c_str(),
                     cell->kv_bytes / 1048576.0, 100.0 * cell->reduction, cell->prefill_tok_s, cell->seconds);
        runs[mi].push_back(std::move(*cell));
      }
      if (full_bytes > 0)  // modes run before the full one, against its bytes too
        for (auto& per_mode : runs) {
          CellResult& c = per_mode[first];
          c.full_kv_bytes = full_bytes, c.reduction = 1.0 - c.kv_bytes / full_bytes;
        }
    }
    std::vector<CellResult> cells;
    for (const auto& per_mode : runs) cells.push_back(eval::AggregateSamples(per_mode, seeds));
    eval::MergeCells(&report.cells, cells);
    // Written after every cell so that an interrupted sweep keeps what it measured.
    if (Status st = eval::WriteReport(o.out, report); !st.ok()) return Fail(st.message());
  }
  std::fprintf(stderr, "done in %.0f s\n",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count());
  std::printf("%s", eval::MarkdownReport(report).c_str());
  std::printf("\nwrote %s/%s.json, %s.md and %s_<mode>.png\n", o.out.c_str(), o.name.c_str(), o.name.c_str(),
              o.name.c_str());
  return 0;
}

int RunKld(EvalOptions& o) {
  auto modes = o.kv.Resolve();
  if (!modes) return Fail(modes.error());
  if (!o.only_mode.empty()) {
    auto om = ParseKvMode(o.only_mode);
    if (!om) return Fail("--only-mode: " + om.error());
    modes->assign(1, *om);
  }
  if (Status st = CheckEvalOutputs(o, *modes); !st.ok()) return Fail(st.message());
  if (o.kld_steps < 1 || o.kld_steps >= o.kld_length) return Fail("--steps must be in [1, --length)");
  auto loaded = LoadModelFromOption(o.common.model);
  if (!loaded) return Fail(loaded.error());
  const LoadedModel& m = **loaded;
  if (!m.tokenizer) return Fail(m.path + ": the model has no tokenizer");
  const int64_t ctx = o.common.ctx > 0 ? o.common.ctx : m.config.context_length;
  if (o.kld_length > ctx) return Fail(fmt::format("--length {} is over the context of {}", o.kld_length, ctx));
  // The windows first (a one-line error before any profiling when the essays cannot hold them). Sample 0: the
  // essays from their first sentence (the one window of --samples 1); sample k > 0: a seed-drawn sentence of
  // the k-th K-th of the text (eval::KldWindowStarts), so the windows do not overlap.
  auto all_text = eval::LoadHaystackText(o.haystack_dir.empty() ? eval::DefaultHaystackDir() : o.haystack_dir);
  if (!all_text) return Fail(all_text.error());
  const std::vector<std::string> sentences = eval::SplitSentences(*all_text);
  const size_t window_chars = static_cast<size_t>(o.kld_length) * 8;  // text joined per window (~2x a window)
  // A window uses about 4-4.5 characters per token of English prose: 5 per token bounds the span it covers.
  const size_t used = eval::SentencesForChars(sentences, static_cast<size_t>(o.kld_length) * 5);
  auto starts = eval::KldWindowStarts(o.seed, o.samples, sentences.size(), used);
  if (!starts) return Fail(starts.error());
  auto engine = OpenEvalEngine(*loaded, o, *modes);
  if (!engine) return Fail(engine.error());
  const int64_t prefix = o.kld_length - o.kld_steps;
  const int vocab = m.config.vocab_size;
  const nlohmann::json settings = Settings(o, *modes, **engine);

  std::unique_ptr<ProgressReporter> reporter;
  auto progress = [&reporter](const std::string& label) {
    reporter = std::make_unique<ProgressReporter>(fmt::format("[kld {}] step", label));
    return reporter->Callback();
  };
  std::fprintf(stderr, "[kld] %lld-token prefix of essays, then %d steps; reference: full cache; %d sample(s)\n",
               (long long)prefix, o.kld_steps, o.samples);
  std::vector<std::vector<eval::KldResult>> per_mode(modes->size());  // [mode][sample]
  double full_seconds = 0;

  // Outputs: kld.json, kld.md, kld.png (rows: mode, columns: step buckets, colour: top-1 agreement), written
  // after every window so that an interrupted run keeps what it measured.
  std::string md;
  auto write_outputs = [&]() -> Status {
    const size_t done = per_mode.front().size();
    std::error_code ec;
    std::filesystem::create_directories(o.out, ec);
    if (ec) return Err(fmt::format("--out {}: {}", o.out, ec.message()));
    nlohmann::json j = {{"eval", "kld"}, {"model", m.path}, {"settings", settings},
                        {"length", o.kld_length}, {"prefix_tokens", prefix}, {"steps", o.kld_steps},
                        {"full_seconds", full_seconds}};
    if (o.samples > 1) {
      j["samples"] = o.samples, j["samples_done"] = done;
      j["sample_first_sentences"] = std::vector<size_t>(starts->begin(), starts->begin() + done);
    }
    j["results"] = nlohmann::json::array();
    for (const auto& runs : per_mode)
      for (size_t k = 0; k < runs.size(); ++k) {
        nlohmann::json jr = eval::ToJson(runs[k], /*per_step=*/o.samples == 1);
        if (o.samples > 1) jr["sample"] = k;
        j["results"].push_back(std::move(jr));
      }
    md = fmt::format(
        "# razor eval kld\n\nmodel: `{}`  \nprefill {} tokens of essays with the cache under test, then {} "
        "single-token steps compared with the full cache.  \nsettings: `{}`\n\n",
        m.path, prefix, o.kld_steps, settings.dump());
    if (o.samples == 1) {
      md += "| mode | mean KL | p95 KL | max KL | top-1 agreement | ppl (mode) | ppl (full) | KV MiB after prefix | "
            "KV reduction |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n";
      for (const auto& runs : per_mode) {
        const eval::KldResult& r = runs.front();
        md += fmt::format("| {} | {:.4f} | {:.4f} | {:.4f} | {:.1f}% | {:.3f} | {:.3f} | {:.2f} | {:.1f}% |\n", r.mode,
                          r.mean_kl, r.p95_kl, r.max_kl, 100 * r.top1_agreement, r.ppl_mode, r.ppl_full,
                          r.kv_bytes / 1048576.0, 100 * r.reduction);
      }
    } else {
      // K windows: means over the samples with their 95 % t intervals; p95 / max over every step pooled.
      md += fmt::format("{} of {} disjoint windows of the essays; [lo, hi]: 95 % t interval of the mean over the "
                        "windows.\n\n", done, o.samples);
      md += "| mode | mean KL [95 % CI] | p95 KL | max KL | top-1 agreement [95 % CI] | ppl (mode) | ppl (full) | KV "
            "MiB after prefix | KV reduction |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n";
      j["summaries"] = nlohmann::json::array();
      for (const auto& runs : per_mode) {
        const eval::KldSummary sm = eval::SummariseKld(runs);
        j["summaries"].push_back(eval::ToJson(sm));
        md += fmt::format(
            "| {} | {:.4f} [{:.4f}, {:.4f}] | {:.4f} | {:.4f} | {:.1f}% [{:.1f}, {:.1f}] | {:.3f} | {:.3f} | {:.2f} | "
            "{:.1f}% |\n",
            sm.mode, sm.mean_kl.mean, sm.mean_kl.lo, sm.mean_kl.hi, sm.p95_kl, sm.max_kl,
            100 * sm.top1_agreement.mean, 100 * sm.top1_agreement.lo, 100 * sm.top1_agreement.hi, sm.ppl_mode,
            sm.ppl_full, sm.kv_bytes / 1048576.0, 100 * sm.reduction.mean);
      }
    }
    std::ofstream json_out(o.out + "/kld.json");
    json_out << j.dump(2) << "\n";
    std::ofstream md_out(o.out + "/kld.md");
    md_out << md;
    if (!json_out || !md_out) return Err(fmt::format("--out {}: cannot write kld.json / kld.md", o.out));
    EvalReport pic;
    pic.eval = "kld";
    pic.model = m.path;
    pic.legend = "top-1 agreement with the full cache";
    pic.column_axis = "steps after the prefix (bucket start)";
    pic.show_reduction = false;
    pic.row_axis = "kv cache";
    pic.title = fmt::format("kld - top-1 agreement, {} steps after a {}-token prefix", o.kld_steps, prefix);
    const int buckets = std::min(8, o.kld_steps);
    for (const auto& runs : per_mode)  // the agreement of a bucket pooled over the samples
      for (int b = 0; b < buckets; ++b) {
        const size_t steps = runs.front().agree.size();
        const size_t lo = steps * b / buckets, hi = steps * (b + 1) / buckets;
        CellResult c;
        c.task = runs.front().mode;
        c.mode = "agreement";
        c.length = static_cast<int64_t>(lo);
        int a = 0;
        for (const auto& r : runs)
          for (size_t i = lo; i < hi; ++i) a += r.agree[i];
        c.score = hi > lo ? static_cast<double>(a) / ((hi - lo) * runs.size()) : 0;
        pic.cells.push_back(c);
      }
    if (pic.cells.empty()) return Status::Ok();
    return WritePng(eval::RenderScoreGrid(pic, "agreement"), o.out + "/kld.png");
  };

  for (int k = 0; k < o.samples; ++k) {
    const size_t first = (*starts)[k];
    const std::string doc = eval::JoinWindow(sentences, first, window_chars);
    std::vector<int32_t> tokens = m.tokenizer->Encode(doc, /*add_bos=*/true, /*parse_special=*/false);
    if (static_cast<int64_t>(tokens.size()) < o.kld_length)
      return Fail(fmt::format("not enough haystack text for --length {} (sample {} from sentence {})", o.kld_length,
                              k + 1, first));
    tokens.resize(o.kld_length);
    const std::string tag = o.samples > 1 ? fmt::format(" {}/{}", k + 1, o.samples) : "";
    auto full = eval::RunSteps(**engine, o.kv.cache, KvMode::kFull, tokens, prefix, progress("full" + tag));
    if (!full) return Fail(full.error());
    full_seconds += full->seconds;
    for (size_t mi = 0; mi < modes->size(); ++mi) {
      const KvMode mode = (*modes)[mi];
      auto test = eval::RunSteps(**engine, o.kv.cache, mode, tokens, prefix, progress(KvModeName(mode) + tag));
      if (!test) return Fail(test.error());
      eval::KldResult r = eval::CompareSteps(*full, *test, vocab);
      r.mode = KvModeName(mode);
      r.prefix_tokens = prefix;
      r.full_kv_bytes = static_cast<double>((*engine)->full_kv_bytes_per_token()) * prefix;
      r.reduction = 1.0 - r.kv_bytes / r.full_kv_bytes;
      std::fprintf(stderr, "[kld %s%s] mean KL %.4f | top-1 agreement %.1f%% | ppl %.2f vs full %.2f | KV -%.1f%%\n",
                   r.mode.c_str(), tag.c_str(), r.mean_kl, 100 * r.top1_agreement, r.ppl_mode, r.ppl_full,
                   100 * r.reduction);
      per_mode[mi].push_back(std::move(r));
    }
    if (Status st = write_outputs(); !st.ok()) return Fail(st.message());
  }
  std::printf("%s\nwrote %s/kld.json, kld.md, kld.png\n", md.c_str(), o.out.c_str());
  return 0;
}

void AddEvalOptions(CLI::App* cmd, EvalOptions* o, bool grid) {
  AddModelOption(cmd, &o->common);
  AddRuntimeOptions(cmd, &o->common);
  // Evals run at 1K-8K tokens: a 512-token minimum window makes razor compress there (the paper's S0 = 4000
  // would leave most of these prompts whole). --window-min overrides.
  o->kv.cache.razor.window_min = 512;
  AddKvOptions(cmd, &o->kv, /*allow_list=*/true);
  cmd->add_option("--modes", o->kv.modes, "KV caches to compare, comma-separated (same as --kv)")->capture_default_str();
  cmd->add_option("--out", o->out, "output directory")->capture_default_str();
  cmd->add_option("--haystack", o->haystack_dir, "essay directory (default: ${RAZOR_HOME}/eval/haystack)");
  AddNumber(cmd, "--seed", &o->seed, grid ? "seed of the needles' values" : "seed of the windows' draws (--samples)",
            uint64_t{0}, UINT64_MAX);
  if (grid)
    AddNumber(cmd, "--samples", &o->samples,
              "samples per cell (sample k: --seed + k), accuracy with a 95% Wilson interval", 1, 1000);
  else
    AddNumber(cmd, "--samples", &o->samples,
              "windows of the essays (sample 0 from the start, the others drawn from --seed), means with a 95% t "
              "interval", 1, 1000);
  cmd->add_flag("--force", o->force, "replace this eval's existing files in --out");
  cmd->add_flag("--quick", o->quick, "small preset that finishes in a few minutes on 2 cores");
  cmd->add_option("--only-mode", o->only_mode, "re-run only this mode (merged into an existing JSON)");
  if (!grid) return;
  cmd->add_option("--lengths", o->lengths, "prompt lengths in tokens, comma-separated")->capture_default_str();
  cmd->add_option("--depths", o->depths, "needle depths in percent, comma-separated")->capture_default_str();
  AddNumber(cmd, "--only-length", &o->only_length, "re-run only this length (0: all)", 0, int(kMaxTokens));
  AddNumber(cmd, "--only-depth", &o->only_depth, "re-run only this depth (-1: all)", -1, 100);
}

void RegisterGrid(CLI::App* eval, int* exit_code, const std::string& name, const std::string& help,
                  EvalOptions* o, const std::string& quick_lengths, const std::string& quick_depths,
                  const std::string& quick_tasks) {
  auto* cmd = eval->add_subcommand(name, help);
  AddEvalOptions(cmd, o, true);
  if (name == "ruler") {
    cmd->add_option("--tasks", o->tasks, "niah_single,niah_multikey,niah_multivalue,vt,cwe")->capture_default_str();
    cmd->add_option("--only-task", o->only_task, "re-run only this task");
  }
  cmd->callback([o, exit_code, quick_lengths, quick_depths, quick_tasks, cmd] {
    if (o->quick) {
      if (cmd->count("--lengths") == 0) o->lengths = quick_lengths;
      if (cmd->count("--depths") == 0) o->depths = quick_depths;
      if (!quick_tasks.empty() && cmd->count("--tasks") == 0) o->tasks = quick_tasks;
    }
    *exit_code = RunGrid(*o);
  });
}

}  // namespace

void RegisterEval(CLI::App& app, int* exit_code) {
  static EvalOptions needle, passkey, ruler, kld;
  auto* eval = app.add_subcommand("eval", "long-context accuracy of the KV caches (needle, passkey, ruler, kld, compensation)");
  eval->require_subcommand(1);
  for (EvalOptions* o : {&needle, &passkey, &ruler, &kld}) o->kv.modes = "full,razor,streaming";
  needle.name = "needle";
  needle.lengths = "1024,2048,4096,8000";
  needle.depths = "0,25,50,75,100";
  RegisterGrid(eval, exit_code, "needle", "needle in a haystack of Paul Graham essays (lengths x depths)", &needle,
               "1024,2048", "25,75", "");
  passkey.name = "passkey";
  passkey.lengths = "1024,2048,4096,8000";
  passkey.depths = "0,25,50,75,100";
  RegisterGrid(eval, exit_code, "passkey", "5-digit pass key in repeated filler (lengths x depths)", &passkey,
               "1024,2048", "25,75", "");
  ruler.name = "ruler";
  ruler.lengths = "1024,2048,4096";
  ruler.depths = "50";
  ruler.tasks = "niah_single,niah_multikey,niah_multivalue,vt,cwe";
  RegisterGrid(eval, exit_code, "ruler", "RULER-style tasks: niah_single, niah_multikey, niah_multivalue, vt, cwe",
               &ruler, "1024", "50", "niah_single,niah_multikey,niah_multivalue,vt,cwe");
  kld.name = "kld";
  kld.kv.modes = "razor,streaming";
  auto* k = eval->add_subcommand("kld", "KL divergence / top-1 agreement / perplexity vs the full cache on essays");
  AddEvalOptions(k, &kld, false);
  AddNumber(k, "--length", &kld.kld_length, "tokens in all: prefix + steps", 64, 1 << 20);
  AddNumber(k, "--steps", &kld.kld_steps, "single-token steps compared after the prefix", 1, 1 << 20);
  k->callback([exit_code, k] {
    if (kld.quick) {
      if (k->count("--length") == 0) kld.kld_length = 2048;
      if (k->count("--steps") == 0) kld.kld_steps = 64;
    }
    *exit_code = RunKld(kld);
  });
  RegisterEvalCompensation(eval, exit_code);
}

}  // namespace razor::cli
