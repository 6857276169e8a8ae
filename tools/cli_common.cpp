#include "cli_common.h"

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <sstream>

#include "core/thread_pool.h"

namespace razor::cli {

int CommonOptions::ResolvedThreads() const { return threads > 0 ? threads : ThreadPool::DefaultThreadCount(); }

void AddModelOption(CLI::App* app, CommonOptions* o) {
  app->add_option("-m,--model", o->model, "GGUF file, Hugging Face checkpoint directory, or catalogue name")
      ->capture_default_str();
}

void AddRuntimeOptions(CLI::App* app, CommonOptions* o) {
  app->add_option("-t,--threads", o->threads, "CPU threads (default: all cores)")->check(CLI::Range(0, 1024));
  app->add_option("--ctx", o->ctx, "context length in tokens (default: the model's)")->check(CLI::Range(0, 1 << 24));
  app->add_flag("--exact", o->exact, "reference kernels: fp32 dequantized weights, fp32 accumulation (slow)");
  app->add_flag("--int8", o->int8, "8-bit activations in Q4_0/Q4_1/Q5_0/Q5_1/Q4_K/Q6_K decode (llama.cpp-style; faster decode, less exact)");
  app->add_flag("-v,--verbose", o->verbose, "print model and cache details");
}

Result<std::vector<int>> ParseIntList(const std::string& s, const char* what, int min_value) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      const int v = std::stoi(item, &used);
      if (used != item.size() || v < min_value) throw std::invalid_argument(item);
      out.push_back(v);
    } catch (const std::exception&) {
      return Err(fmt::format("bad {} list '{}': expected integers >= {} separated by commas", what, s, min_value));
    }
  }
  if (out.empty()) return Err(fmt::format("empty {} list", what));
  return out;
}

void AddKvOptions(CLI::App* app, KvCliOptions* o, bool allow_list) {
  app->add_option("--kv", o->modes,
                  allow_list ? "KV caches to compare, comma-separated: full, razor, streaming"
                             : "KV cache: full | razor (RazorAttention) | streaming (StreamingLLM at razor's budget)")
      ->capture_default_str();
  app->add_option("--profile", o->cache.profile_path,
                  "head profile JSON (default: made on first use, cached beside the model)");
  app->add_option("--sinks", o->cache.razor.sinks, "attention-sink tokens every compressed head keeps (N0)")
      ->capture_default_str()->check(CLI::Range(int64_t(0), int64_t(1) << 30));
  app->add_option("--window-min", o->cache.razor.window_min, "smallest local window S0, tokens")
      ->capture_default_str()->check(CLI::Range(int64_t(1), int64_t(1) << 30));
  app->add_option("--window-frac", o->cache.razor.window_frac, "window as a fraction of the prompt (1/C)")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  app->add_flag("--no-compensation", o->no_compensation, "ablation: no compensation token");
  app->add_flag("--no-echo", o->no_echo, "ablation: retrieval heads from induction scores only");
  app->add_option("--induction-ratio", o->cache.induction_ratio,
                  "ablation: re-select the top fraction of KV heads by the profile's induction scores "
                  "(default: the profile's own ratio, 0.14)")
      ->check(CLI::Range(0.0, 1.0));
  app->add_flag("--decode-fold", o->cache.razor.decode_fold,
                "fold tokens leaving a compressed head's window into its compensation token (bounded memory)");
}

Result<std::vector<KvMode>> KvCliOptions::Resolve() {
  cache.razor.compensation = !no_compensation;
  cache.use_echo_heads = !no_echo;
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
  std::fprintf(stderr, "razor: error: %s\n", message.c_str());
  return 1;
}

Result<std::string> PullModel(const std::string& name) {
  const std::string script = std::string(RAZOR_SOURCE_DIR) + "/scripts/pull_model.sh";
  if (!std::filesystem::exists(script)) return Err("cannot fetch '" + name + "': " + script + " is missing");
  std::string cmd = "'" + script + "' '" + name + "'";
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return Err("cannot run " + script);
  std::string out, last;
  char buf[4096];
  while (std::fgets(buf, sizeof buf, p) != nullptr) out += buf;
  int rc = pclose(p);
  size_t end = out.find_last_not_of("\r\n");
  if (end != std::string::npos) {
    size_t start = out.find_last_of('\n', end);
    last = out.substr(start == std::string::npos ? 0 : start + 1, end - (start == std::string::npos ? 0 : start + 1) + 1);
  }
  if (rc != 0 || last.empty()) return Err("fetching model '" + name + "' failed (see the messages above)");
  return last;
}

Result<std::string> ResolveModelPath(const std::string& name_or_path) {
  std::error_code ec;
  if (std::filesystem::exists(name_or_path, ec)) return name_or_path;
  const bool looks_like_path = name_or_path.find('/') != std::string::npos ||
                               name_or_path.find(".gguf") != std::string::npos;
  if (looks_like_path) return Err(name_or_path + ": no such file or directory");
  return PullModel(name_or_path);
}

Result<std::shared_ptr<LoadedModel>> LoadModelFromOption(const std::string& name_or_path, bool load_tokenizer) {
  RAZOR_ASSIGN_OR_RETURN(std::string path, ResolveModelPath(name_or_path));
  return LoadModel(path, load_tokenizer);
}

}  // namespace razor::cli
