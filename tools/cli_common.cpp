#include "cli_common.h"

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "cache_dir.h"
#include "core/thread_pool.h"
#include "subprocess.h"

namespace razor::cli {

int CommonOptions::ResolvedThreads() const {
  return threads > 0 ? threads : std::min(ThreadPool::DefaultThreadCount(), MaxThreads());
}

void AddModelOption(CLI::App* app, CommonOptions* o) {
  app->add_option("-m,--model", o->model, "GGUF file, Hugging Face checkpoint directory, or catalogue name")
      ->capture_default_str();
}

std::string ThreadsHelp() {
  return fmt::format("CPU threads, at most the {} CPUs this process may use (default: all of them)", MaxThreads());
}

void AddRuntimeOptions(CLI::App* app, CommonOptions* o) {
  AddNumber(app, "-t,--threads", &o->threads, ThreadsHelp() + "; 0 = default", 0, MaxThreads());
  AddNumber(app, "--ctx", &o->ctx, "context length in tokens (0: the model's)", 0, int(kMaxTokens));
  app->add_flag("--exact", o->exact, "reference kernels: fp32 dequantized weights, fp32 accumulation (slow)");
  app->add_flag("--int8", o->int8, "8-bit activations in Q4_0/Q4_1/Q5_0/Q5_1/Q4_K/Q6_K decode (llama.cpp-style; faster decode, less exact)");
  app->add_flag("-v,--verbose", o->verbose, "print model and cache details");
  app->add_option("--device", o->device,
                  BuiltWithCuda() ? "where the model runs: auto (the GPU if one is present) | cpu | cuda"
                                  : "where the model runs: auto | cpu | cuda (this build has no CUDA backend)")
      ->capture_default_str();
}

void AddKvOptions(CLI::App* app, KvCliOptions* o, bool allow_list) {
  app->add_option("--kv", o->modes,
                  allow_list ? "KV caches to compare, comma-separated: full, razor, streaming"
                             : "KV cache: full | razor (RazorAttention) | streaming (StreamingLLM at razor's budget)")
      ->capture_default_str();
  app->add_option("--profile", o->cache.profile_path,
                  "head profile JSON (default: made on first use, cached beside the model)");
  AddNumber(app, "--sinks", &o->cache.razor.sinks, "attention-sink tokens every compressed head keeps (N0)",
            int64_t{0}, int64_t{1} << 30);
  AddNumber(app, "--window-min", &o->cache.razor.window_min, "smallest local window S0, tokens", int64_t{1},
            int64_t{1} << 30);
  AddNumber(app, "--window-frac", &o->cache.razor.window_frac, "window as a fraction of the prompt (1/C)", 0.0, 1.0);
  app->add_flag("--no-compensation", o->no_compensation, "ablation: no compensation token");
  app->add_flag("--no-echo", o->no_echo, "ablation: retrieval heads from induction scores only");
  AddNumber(app, "--induction-ratio", &o->cache.induction_ratio,
            "ablation: re-select the top fraction of KV heads by the profile's induction scores "
            "(0: the profile's own ratio, 0.14)",
            0.0, 1.0);
  app->add_flag("--decode-fold", o->cache.razor.decode_fold,
                "fold tokens leaving a compressed head's window into its compensation token (bounded memory)");
  app->add_option("--kv-type", o->kv_type, "KV storage: f16 | bf16 | f32 (attention accumulates in fp32)")
      ->capture_default_str();
  AddNumber(app, "--kv-pool-mib", &o->kv_pool_mib, "KV pool shared by the sequences, MiB (0: the machine's memory)",
            0, 1 << 24);
}

Result<std::unique_ptr<Engine>> OpenEngine(std::shared_ptr<LoadedModel> model, const CommonOptions& common,
                                           const KvCliOptions& kv) {
  EngineOptions eo;
  auto device = ParseEngineDevice(common.device);
  if (!device) return Err("--device: " + device.error());
  eo.device = *device;
  eo.threads = common.ResolvedThreads();
  eo.math = common.mode();
  eo.kv_type = kv.cache.kv_type;
  eo.kv_pool_bytes = static_cast<size_t>(kv.kv_pool_mib) << 20;
  eo.kv_block_tokens = kv.cache.razor.block_tokens;
  eo.context = common.ctx;
  return Engine::Open(std::move(model), eo);
}

Result<std::vector<KvMode>> KvCliOptions::Resolve() {
  cache.razor.compensation = !no_compensation;
  cache.use_echo_heads = !no_echo;
  auto type = ParseKvType(kv_type);
  if (!type) return Err("--kv-type: " + type.error());
  cache.kv_type = *type;
  std::vector<KvMode> out;
  std::stringstream ss(modes);
  std::string item;
  while (std::getline(ss, item, ',')) {
    auto m = ParseKvMode(item);
    if (!m) return Err("--kv: " + m.error());
    out.push_back(*m);
  }
  if (out.empty()) return Err("--kv: no mode given (full, razor, streaming)");
  return out;
}

int Fail(const std::string& message) {
  std::string line = message;  // one line, whatever the message holds (library or exception text)
  for (char& c : line)
    if (c == '\n' || c == '\r') c = ' ';
  std::fprintf(stderr, "razor: error: %s\n", line.c_str());
  return 1;
}

Result<std::string> PullModel(const std::string& name) {
  RAZOR_RETURN_IF_ERROR(ValidateCatalogName(name));
  RAZOR_RETURN_IF_ERROR(CacheDir().status());
  const std::string script = std::string(RAZOR_SOURCE_DIR) + "/scripts/pull_model.sh";
  std::error_code ec;
  if (!std::filesystem::exists(script, ec)) return Err("cannot fetch '" + name + "': " + script + " is missing");
  // The script's own error line becomes razor's one error line; its progress lines pass through.
  std::string script_error;
  const std::string prefix = "pull_model: error: ";
  auto r = RunProgram({"/bin/bash", script, name}, [&](const std::string& line) {
    if (line.rfind(prefix, 0) == 0) script_error = line.substr(prefix.size());
    else std::fprintf(stderr, "%s\n", line.c_str());
  });
  if (!r) return r.status();
  std::string last;
  const std::string& out = r->out;
  const size_t end = out.find_last_not_of("\r\n");
  if (end != std::string::npos) {
    const size_t nl = out.find_last_of('\n', end);
    const size_t start = nl == std::string::npos ? 0 : nl + 1;
    last = out.substr(start, end - start + 1);
  }
  if (r->exit_code != 0 || last.empty())
    return Err(script_error.empty() ? fmt::format("fetching model '{}' failed (pull_model.sh exit {})", name, r->exit_code)
                                    : "cannot fetch '" + name + "': " + script_error);
  return last;
}

Result<std::string> ResolveModelPath(const std::string& name_or_path) {
  std::error_code ec;
  if (std::filesystem::exists(name_or_path, ec)) return name_or_path;
  const bool looks_like_path = name_or_path.find('/') != std::string::npos ||
                               name_or_path.find(".gguf") != std::string::npos;
  if (name_or_path.empty()) return Err("empty model path (give a GGUF file, a checkpoint folder or a catalogue name)");
  if (looks_like_path) return Err(name_or_path + ": no such file or directory");
  return PullModel(name_or_path);
}

Result<std::shared_ptr<LoadedModel>> LoadModelFromOption(const std::string& name_or_path, bool load_tokenizer) {
  RAZOR_ASSIGN_OR_RETURN(std::string path, ResolveModelPath(name_or_path));
  return LoadModel(path, load_tokenizer);
}

}  // namespace razor::cli
