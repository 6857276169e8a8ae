// razor demo: a 5-digit pass key hidden in a long document (Paul Graham essays when fetched, else repeated
// filler), answered with the full KV cache and with RazorAttention; prints both answers, the KV bytes, the
// reduction and the speeds side by side.
#include <cstdio>

#include "cli_common.h"
#include "core/thread_pool.h"
#include "eval/eval_runner.h"
#include "eval/haystack.h"
#include "eval/tasks.h"
#include "progress.h"

namespace razor::cli {
namespace {

struct DemoOptions {
  CommonOptions common;
  KvCliOptions kv;
  int tokens = 3500;
  int depth = 50;
  uint64_t seed = 7;
  std::string haystack_dir;
};

int Demo(DemoOptions& o) {
  o.kv.modes = "full,razor";
  auto modes = o.kv.Resolve();
  if (!modes) return Fail(modes.error());
  auto loaded = LoadModelFromOption(o.common.model);
  if (!loaded) return Fail(loaded.error());
  const LoadedModel& m = **loaded;
  if (!m.tokenizer) return Fail(m.path + ": the model has no tokenizer");
  const int64_t ctx = o.common.ctx > 0 ? o.common.ctx : m.config.context_length;
  if (o.tokens + 32 > ctx) return Fail(fmt::format("--tokens {} is over the context of {}", o.tokens, ctx));
  auto engine = OpenEngine(*loaded, o.common, o.kv);
  if (!engine) return Fail(engine.error());
  {
    KvCacheOptions kvo = o.kv.cache;
    kvo.mode = KvMode::kRazor;
    kvo.log = [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
    ProgressReporter profiling("profiling retrieval heads");
    if (Status st = (*engine)->EnsureProfile(kvo, profiling.Callback()); !st.ok()) return Fail(st.message());
  }
  eval::EvalRunner runner(**engine, o.kv.cache);
  const eval::TokenCounter count = runner.Counter();
  eval::TaskInputs in;
  in.count = count;
  eval::Filler filler;
  std::string source = "Paul Graham essays";
  auto text = eval::LoadHaystackText(o.haystack_dir.empty() ? eval::DefaultHaystackDir() : o.haystack_dir);
  if (text) {
    auto all = eval::SplitSentences(*text);
    std::vector<std::string> some;
    size_t chars = 0;
    for (auto& s : all) {
      if (chars > static_cast<size_t>(o.tokens) * 8) break;
      chars += s.size();
      some.push_back(std::move(s));
    }
    filler = eval::Filler::Make(std::move(some), count);
  } else {
    source = "repeated filler (run scripts/fetch_eval_data.sh for real essays)";
    filler = eval::Filler::Make(eval::PasskeyFillerSentences(), count);
  }
  in.noise = &filler;  // the passkey task hides its key in whatever `noise` is
  auto sample = runner.MakeFitted("passkey", in, o.tokens, o.depth, o.seed);
  if (!sample) return Fail(sample.error());
  auto prompt = runner.PromptTokens(*sample);
  if (!prompt) return Fail(prompt.error());
  std::printf("A 5-digit pass key (%s) is hidden at %d%% of a %zu-token document of %s.\n",
              sample->expected.front().c_str(), o.depth, prompt->size(), source.c_str());
  std::printf("Question: \"%s\"\n\n", sample->question.c_str());
  std::vector<eval::CellResult> cells;
  for (KvMode mode : *modes) {
    std::fprintf(stderr, "running with the %s cache (%zu prompt tokens)...\n", KvModeName(mode), prompt->size());
    auto cell = runner.Run(*sample, *prompt, mode, o.tokens);
    if (!cell) return Fail(cell.error());
    cells.push_back(std::move(*cell));
  }
  const auto& f = cells[0];
  const auto& r = cells[1];
  auto answer = [](const eval::CellResult& c) {
    std::string a = c.answer;
    for (char& ch : a)
      if (ch == '\n') ch = ' ';
    if (a.size() > 28) a = a.substr(0, 28) + "..";
    return "\"" + a + "\"";
  };
  const int heads = m.config.n_layers * m.config.n_kv_heads;
  std::printf("%-22s %-34s %-34s\n", "", "full KV cache", "RazorAttention");
  std::printf("%-22s %-34s %-34s\n", "answer", answer(f).c_str(), answer(r).c_str());
  std::printf("%-22s %-34s %-34s\n", "found the pass key", f.score > 0 ? "yes" : "no", r.score > 0 ? "yes" : "no");
  std::printf("%-22s %-34s %-34s\n", "KV cache",
              fmt::format("{:.1f} MiB", f.kv_bytes / 1048576.0).c_str(),
              fmt::format("{:.1f} MiB", r.kv_bytes / 1048576.0).c_str());
  std::printf("%-22s %-34s %-34s\n", "KV reduction", "-",
              fmt::format("{:.1f}% smaller", 100.0 * (1.0 - r.kv_bytes / f.kv_bytes)).c_str());
  std::printf("%-22s %-34s %-34s\n", "compressed heads", fmt::format("0 / {}", heads).c_str(),
              fmt::format("{} / {} (window {} tokens)", r.heads_compressed, heads, r.window).c_str());
  std::printf("%-22s %-34s %-34s\n", "prefill tok/s", fmt::format("{:.1f}", f.prefill_tok_s).c_str(),
              fmt::format("{:.1f}", r.prefill_tok_s).c_str());
  std::printf("%-22s %-34s %-34s\n", "decode tok/s", fmt::format("{:.1f}", f.decode_tok_s).c_str(),
              fmt::format("{:.1f}", r.decode_tok_s).c_str());
  std::printf("\n(%s, KV %s; razor: sinks %lld, window max(%lld, %.0f%% of the prompt), retrieval heads "
              "keep every token)\n",
              (*engine)->backend().Describe().c_str(), KvTypeName(o.kv.cache.kv_type), (long long)o.kv.cache.razor.sinks,
              (long long)o.kv.cache.razor.window_min, 100 * o.kv.cache.razor.window_frac);
  return 0;
}

}  // namespace

void RegisterDemo(CLI::App& app, int* exit_code) {
  static DemoOptions o;
  auto* cmd = app.add_subcommand("demo", "hide a pass key in a long document; answer with the full cache and razor");
  AddModelOption(cmd, &o.common);
  AddRuntimeOptions(cmd, &o.common);
  o.kv.cache.razor.window_min = 512;  // compresses at the demo's length (the paper's 4000 would not)
  AddKvOptions(cmd, &o.kv, /*allow_list=*/false);
  AddNumber(cmd, "--tokens", &o.tokens, "document length in tokens (whole prompt)", 256, 1 << 20);
  AddNumber(cmd, "--depth", &o.depth, "where the key is, percent of the document", 0, 100);
  AddNumber(cmd, "--seed", &o.seed, "seed of the pass key", uint64_t{0}, UINT64_MAX);
  cmd->add_option("--haystack", o.haystack_dir, "essay directory (default: ${RAZOR_HOME}/eval/haystack)");
  cmd->callback([exit_code] { *exit_code = Demo(o); });
}

}  // namespace razor::cli
