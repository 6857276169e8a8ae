// razor serve: an OpenAI-compatible HTTP server on one model, with continuous batching (tools/serve/).
#include <csignal>
#include <cstdio>
#include <filesystem>

#include "cli_common.h"
#include "progress.h"
#include "serve/http_server.h"
#include "serve/openai_service.h"
#include "serve/scheduler.h"

namespace razor::cli {
namespace {

struct ServeOptions {
  CommonOptions common;
  KvCliOptions kv;
  std::string host = "127.0.0.1";
  int port = 8080;
  int max_running = 16;
  int max_queue = 64;
  std::string api_key;
};

// The name clients give as `model`: the catalogue name, or the file / folder name of a path.
std::string ModelId(const std::string& model) {
  std::filesystem::path p(model);
  if (!p.has_filename()) p = p.parent_path();
  return p.filename().string();
}

int Serve(ServeOptions& o) {
  auto modes = o.kv.Resolve();
  if (!modes) return Fail(modes.error());
  if (modes->size() != 1) return Fail("--kv takes one mode for serve (full, razor or streaming)");
  auto model = LoadModelFromOption(o.common.model);
  if (!model) return Fail(model.error());
  if (!(*model)->tokenizer) return Fail((*model)->path + ": the model has no tokenizer; cannot serve text");
  auto engine_or = OpenEngine(*model, o.common, o.kv);
  if (!engine_or) return Fail(engine_or.error());
  Engine& engine = **engine_or;
  KvCacheOptions kvo = o.kv.cache;
  kvo.mode = modes->front();
  if (kvo.mode != KvMode::kFull) {  // per-request razor / streaming need the profile: made or loaded now
    ProgressReporter profiling("profiling retrieval heads");
    Status st = engine.EnsureProfile(kvo, profiling.Callback());
    if (!st.ok()) return Fail(st.message());
  }
  serve::ServedModel served{ModelId(o.common.model), engine.tokenizer(), engine.context(), kvo.mode,
                            engine.profile() != nullptr};
  serve::Scheduler scheduler(engine, kvo, {.max_running = o.max_running, .max_queue = o.max_queue});
  serve::OpenAiService service(served, o.api_key, scheduler);
  serve::HttpServer server({}, o.max_running + o.max_queue + 64);
  if (Status st = server.Listen(o.host, o.port); !st.ok()) return Fail(st.message());
  std::signal(SIGPIPE, SIG_IGN);
  const bool gpu = ResolveEngineDevice(engine.options().device, engine.options().math, engine.config()) == EngineDevice::kCuda;
  std::fprintf(stderr, "razor serve: listening on http://%s:%d (model %s, KV %s, pool %.0f MiB, device %s)\n",
               o.host.c_str(), server.port(), served.id.c_str(), KvModeName(kvo.mode), scheduler.pool_bytes() / 1048576.0,
               gpu ? "cuda" : "cpu");
  std::fflush(stderr);
  Status st = server.Serve([&](const serve::HttpRequest& r, serve::HttpConnection& c) { service.Handle(r, c); });
  return Fail(st.message());
}

}  // namespace

void RegisterServe(CLI::App& app, int* exit_code) {
  static ServeOptions o;
  auto* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (continuous batching)");
  AddModelOption(cmd, &o.common);
  cmd->add_option("--host", o.host, "address to listen on (loopback unless told otherwise)")->capture_default_str();
  AddNumber(cmd, "--port", &o.port, "TCP port (0: an ephemeral one, printed at start)", 0, 65535);
  AddNumber(cmd, "--max-running", &o.max_running, "most sequences decoding at once", 1, 4096);
  AddNumber(cmd, "--max-queue", &o.max_queue, "most requests waiting for admission (then 503)", 0, 1 << 20);
  cmd->add_option("--api-key", o.api_key, "require Authorization: Bearer KEY on every route but /health");
  AddRuntimeOptions(cmd, &o.common);
  AddKvOptions(cmd, &o.kv, /*allow_list=*/false);
  cmd->callback([exit_code] { *exit_code = Serve(o); });
}

}  // namespace razor::cli
