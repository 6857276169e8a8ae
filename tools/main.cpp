// razor: the command-line front end. Each subcommand lives in its own cmd_*.cpp.
// Exit codes: 0 ok, 1 a command failed (one "razor: error: ..." line), 2 bad usage; never a signal or an
// uncaught exception: everything thrown is caught here and reported as one line.
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <new>
#include <string>
#include <system_error>

#include "cache_dir.h"
#include "cli_common.h"

namespace {

// Parses and runs the command (CLI11 runs the subcommand's callback inside parse).
int Main(int argc, char** argv) {
  CLI::App app{"razor: long-context LLM inference with RazorAttention KV-cache compression"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "razor 0.1.0");
  int exit_code = 0;
  razor::cli::RegisterRun(app, &exit_code);
  razor::cli::RegisterInspect(app, &exit_code);
  razor::cli::RegisterBench(app, &exit_code);
  razor::cli::RegisterPull(app, &exit_code);
  razor::cli::RegisterProfile(app, &exit_code);
  razor::cli::RegisterEval(app, &exit_code);
  razor::cli::RegisterDemo(app, &exit_code);
  razor::cli::RegisterServe(app, &exit_code);
  if (argc > 1 && argv[1][0] != '-') {
    bool known = false;
    std::string names;
    for (const auto* sub : app.get_subcommands([](CLI::App*) { return true; })) {
      known = known || sub->get_name() == argv[1];
      names += (names.empty() ? "" : ", ") + sub->get_name();
    }
    if (!known) {
      std::fprintf(stderr, "razor: error: unknown command '%s' (commands: %s)\n", argv[1], names.c_str());
      return 2;
    }
  }
  const char* razor_home = std::getenv("RAZOR_HOME");
  const bool razor_home_set = razor_home != nullptr && *razor_home != '\0';
  if (razor::Status st = razor::cli::ResolveCacheDir(); !st.ok() && razor_home_set) {
    razor::cli::Fail(st.message());
    return 2;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "razor: error: %s (see razor --help)\n", e.what());
    return 2;
  }
  return exit_code;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return Main(argc, argv);
  } catch (const std::bad_alloc&) {
    return razor::cli::Fail("out of memory");
  } catch (const std::system_error& e) {  // e.g. no memory left for another thread's stack
    return razor::cli::Fail(std::string("system error: ") + e.what() + " (too little memory for this many threads?)");
  } catch (const std::exception& e) {
    return razor::cli::Fail(e.what());
  } catch (...) {
    return razor::cli::Fail("unexpected internal error");
  }
}
