// Pieces every razor subcommand shares: model resolution (path or catalogue name), the one-line error
// convention, and the options for threads / context / math mode.
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <memory>
#include <string>

#include "cli_validate.h"
#include "core/status.h"
#include "ops/matmul.h"
#include "runtime/engine.h"
#include "runtime/kv_cache_factory.h"
#include "runtime/loaded_model.h"

namespace razor::cli {

constexpr const char* kDefaultModel = "smollm2-135m";

struct CommonOptions {
  std::string model = kDefaultModel;
  int threads = 0;       // 0: all cores (at most MaxThreads())
  int ctx = 0;           // 0: the model's trained context
  bool exact = false;    // reference kernels (fp32 weights, fp32 accumulation)
  bool int8 = false;     // llama.cpp-style 8-bit activations in Q4/Q5 decode (faster decode, less exact)
  bool verbose = false;
  std::string device = "auto";  // --device auto | cpu | cuda
  int ResolvedThreads() const;
  MathMode mode() const { return exact ? MathMode::kExact : int8 ? MathMode::kInt8 : MathMode::kFast; }
  const char* mode_name() const { return exact ? "exact" : int8 ? "int8" : "fast"; }
};

// KV-cache flags shared by run / bench / eval. `modes` is one mode (run) or a comma list (bench, eval).
struct KvCliOptions {
  std::string modes = "full";
  KvCacheOptions cache;
  std::string kv_type = "f16";  // --kv-type
  int kv_pool_mib = 0;          // --kv-pool-mib (0: the machine's memory)
  bool no_compensation = false;
  bool no_echo = false;
  // Fills cache.razor / use_echo_heads from the flags; returns the parsed modes.
  Result<std::vector<KvMode>> Resolve();
};
void AddKvOptions(CLI::App* app, KvCliOptions* o, bool allow_list);

void AddModelOption(CLI::App* app, CommonOptions* o);

// The engine a command runs on: the model loaded once, the backend, threads, KV storage type and pool size
// from the flags (call kv.Resolve() first).
Result<std::unique_ptr<Engine>> OpenEngine(std::shared_ptr<LoadedModel> model, const CommonOptions& common,
                                           const KvCliOptions& kv);
void AddRuntimeOptions(CLI::App* app, CommonOptions* o);
// "CPU threads, at most the N CPUs ..." for every -t option.
std::string ThreadsHelp();

// A path that exists is used as is; otherwise a catalogue name is resolved (and fetched) by
// scripts/pull_model.sh. Returns the model path.
Result<std::string> ResolveModelPath(const std::string& name_or_path);
Result<std::shared_ptr<LoadedModel>> LoadModelFromOption(const std::string& name_or_path, bool load_tokenizer = true);

// Prints "razor: error: <message>" on stderr as one line (newlines in the message become spaces); returns 1.
int Fail(const std::string& message);

// Each subcommand registers itself and writes its exit code into *exit_code when it runs.
void RegisterRun(CLI::App& app, int* exit_code);
void RegisterInspect(CLI::App& app, int* exit_code);
void RegisterBench(CLI::App& app, int* exit_code);
void RegisterPull(CLI::App& app, int* exit_code);
void RegisterProfile(CLI::App& app, int* exit_code);
void RegisterEval(CLI::App& app, int* exit_code);
void RegisterEvalCompensation(CLI::App* eval, int* exit_code);  // `razor eval compensation`
void RegisterDemo(CLI::App& app, int* exit_code);
void RegisterServe(CLI::App& app, int* exit_code);

// Checks NAME (ValidateCatalogName), runs `scripts/pull_model.sh NAME` without a shell and returns its last
// stdout line (the model path); a failure's message is the script's own error line.
Result<std::string> PullModel(const std::string& name);

}  // namespace razor::cli
