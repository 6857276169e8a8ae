// razor: the command-line front end. Each subcommand lives in its own cmd_*.cpp.
#include <cstdio>

#include "cli_common.h"

int main(int argc, char** argv) {
  CLI::App app{"razor: long-context LLM inference with RazorAttention KV-cache compression"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "razor 0.1.0");
  int exit_code = 0;
  razor::cli::RegisterRun(app, &exit_code);
  razor::cli::RegisterInspect(app, &exit_code);
  razor::cli::RegisterBench(app, &exit_code);
  razor::cli::RegisterPull(app, &exit_code);
  razor::cli::RegisterProfile(app, &exit_code);
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
