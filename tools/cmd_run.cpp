// razor run: answer a prompt, streaming the text to stdout and speed / KV figures to stderr.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "cli_common.h"
#include "core/thread_pool.h"
#include "progress.h"
#include "kv/full_kv_cache.h"
#include "kv/razor_kv_cache.h"
#include "model/transformer.h"
#include "runtime/generator.h"

namespace razor::cli {
namespace {

struct RunOptions {
  CommonOptions common;
  std::string prompt;
  std::string prompt_file;
  std::string system;
  int n_predict = 128;
  bool chat = false;
  bool no_progress = false;
  SamplerParams sampler;
  std::vector<std::string> stops;
  KvCliOptions kv;
};

Result<std::string> ReadPrompt(const RunOptions& o) {
  if (!o.prompt_file.empty()) {
    std::error_code ec;
    if (std::filesystem::is_directory(o.prompt_file, ec)) return Err(o.prompt_file + ": is a directory, not a prompt file");
    std::ifstream in(o.prompt_file, std::ios::binary);
    if (!in) return Err(o.prompt_file + ": cannot open prompt file");
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }
  return o.prompt;
}

// Bytes the full cache of the same kind (the same 64-token pages per KV head) holds at this sequence length:
// the honest denominator. A short run's pages are mostly empty, so K/V bytes of `len` tokens would be a
// fraction of what even the full cache allocates (16x at 4 tokens).
double FullPagedCacheBytes(const ModelConfig& c, const KvCache& cache) {
  const int64_t len = cache.sequence_length();
  const auto* paged = dynamic_cast<const RazorKvCache*>(&cache);
  const int64_t bt = paged ? paged->policy().params().block_tokens : 1;
  const int64_t blocks_per_head = (len + bt - 1) / bt;
  const KvType type = paged ? paged->type() : KvType::kF32;
  return double(c.n_layers) * c.n_kv_heads * blocks_per_head * RazorKvCache::block_bytes(bt, c.head_dim, type);
}

int Run(RunOptions& o) {
  auto text = ReadPrompt(o);
  if (!text) return Fail(text.error());
  if (text->empty()) return Fail("empty prompt: give text with -p or a non-empty file with -f");
  auto model = LoadModelFromOption(o.common.model);
  if (!model) return Fail(model.error());
  const LoadedModel& m = **model;
  if (!m.tokenizer) return Fail(m.path + ": the model has no tokenizer; cannot run a text prompt");
  std::string prompt_text = *text;
  if (o.chat) {
    std::vector<ChatMessage> msgs;
    if (!o.system.empty()) msgs.push_back({"system", o.system});
    msgs.push_back({"user", *text});
    auto rendered = m.tokenizer->ApplyChatTemplate(msgs, true);
    if (!rendered) return Fail(rendered.error());
    prompt_text = *rendered;
  }
  const std::vector<int32_t> ids = m.tokenizer->Encode(prompt_text, /*add_bos=*/!o.chat, /*parse_special=*/o.chat);
  const int64_t ctx = o.common.ctx > 0 ? o.common.ctx : m.config.context_length;
  if (ids.empty()) return Fail("the prompt encodes to zero tokens");
  if (static_cast<int64_t>(ids.size()) > ctx)
    return Fail(fmt::format("prompt is {} tokens, longer than the context of {} (raise --ctx or shorten the prompt)",
                            ids.size(), ctx));
  auto modes = o.kv.Resolve();
  if (!modes) return Fail(modes.error());
  if (modes->size() != 1) return Fail("--kv takes one mode for run (full, razor or streaming)");
  auto engine_or = OpenEngine(*model, o.common, o.kv);
  if (!engine_or) return Fail(engine_or.error());
  Engine& engine = **engine_or;
  KvCacheOptions kvo = o.kv.cache;
  kvo.mode = modes->front();
  kvo.verbose = o.common.verbose;
  kvo.log = [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); };
  {
    ProgressReporter profiling("profiling retrieval heads");
    Status st = engine.EnsureProfile(kvo, profiling.Callback());
    if (!st.ok()) return Fail(st.message());
  }
  SequenceOptions so;
  so.kv = kvo;
  so.prompt_tokens = static_cast<int64_t>(ids.size());
  auto seq_or = engine.NewSequence(so);
  if (!seq_or) return Fail(seq_or.error());
  Sequence& seq = **seq_or;
  const KvCache& cache = seq.cache();
  if (o.common.verbose)
    std::fprintf(stderr, "model: %s (%s, %d layers, %d/%d heads), %zu prompt tokens, %s, KV %s\n",
                 m.config.name.c_str(), ArchitectureName(m.config.arch), m.config.n_layers, m.config.n_heads,
                 m.config.n_kv_heads, ids.size(), engine.backend().Describe().c_str(),
                 KvTypeName(engine.options().kv_type));

  GenerationOptions g;
  g.max_new_tokens = o.n_predict;
  g.sampler = o.sampler;
  g.stop_strings = o.stops;
  g.on_text = [](const std::string& s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
  };
  ProgressReporter prefill("prefill", "tokens");
  if (!o.no_progress && ids.size() >= 512) g.on_prefill = prefill.Callback();
  auto r = Generate(engine, seq, ids, g);
  if (!r) return Fail(r.error());
  std::printf("\n");
  const double full = FullPagedCacheBytes(m.config, cache);
  std::fprintf(stderr,
               "prompt: %lld tokens, %.1f tok/s | generated: %zu tokens, %.1f tok/s | stop: %s | KV cache (%s): %.2f MiB, "
               "%.1f%% of a full cache of %.2f MiB at %lld tokens\n",
               (long long)r->prompt_tokens, r->prefill_tok_s(), r->output_ids.size(), r->decode_tok_s(),
               r->stop_reason.c_str(), KvModeName(modes->front()), cache.bytes_allocated() / 1048576.0,
               full > 0 ? 100.0 * cache.bytes_allocated() / full : 100.0, full / 1048576.0,
               (long long)cache.sequence_length());
  return 0;
}

}  // namespace

void RegisterRun(CLI::App& app, int* exit_code) {
  static RunOptions o;
  auto* cmd = app.add_subcommand("run", "generate text from a prompt");
  AddModelOption(cmd, &o.common);
  auto* p = cmd->add_option("-p,--prompt", o.prompt, "prompt text");
  auto* f = cmd->add_option("-f,--file", o.prompt_file, "read the prompt from a file");
  p->excludes(f);
  AddNumber(cmd, "-n,--n-predict", &o.n_predict, "tokens to generate", 0, int(kMaxTokens));
  auto* chat = cmd->add_flag("--chat", o.chat, "wrap the prompt in the model's chat template");
  cmd->add_option("--system", o.system, "system message (needs --chat)")->needs(chat);
  AddRuntimeOptions(cmd, &o.common);
  AddKvOptions(cmd, &o.kv, /*allow_list=*/false);
  AddNumber(cmd, "--seed", &o.sampler.seed, "random seed", uint64_t{0}, UINT64_MAX);
  AddNumber(cmd, "--temp", &o.sampler.temperature, "temperature; 0 = greedy", 0.0f, 100.0f);
  AddNumber(cmd, "--top-k", &o.sampler.top_k, "top-k (0 = off)", 0, 1 << 30);
  AddNumber(cmd, "--top-p", &o.sampler.top_p, "top-p (1 = off)", 0.0f, 1.0f);
  AddNumber(cmd, "--min-p", &o.sampler.min_p, "min-p (0 = off)", 0.0f, 1.0f);
  AddNumber(cmd, "--repeat-penalty", &o.sampler.repeat_penalty, "repetition penalty (1 = off)", 0.0f, 100.0f);
  AddNumber(cmd, "--repeat-last-n", &o.sampler.repeat_last_n, "tokens the penalty looks back (-1 = all)", -1, 1 << 30);
  cmd->add_option("--stop", o.stops, "stop when this text appears (repeatable)");
  cmd->add_flag("--no-progress", o.no_progress, "no prefill progress line");
  cmd->callback([exit_code, p, f] {
    if (p->count() == 0 && f->count() == 0) {
      *exit_code = Fail("give a prompt with -p TEXT or -f FILE");
      return;
    }
    *exit_code = Run(o);
  });
}

}  // namespace razor::cli
