// razor: the command-line front end. Each subcommand lives in its own cmd_*.cpp.
#include <cstdio>
#include <string>

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
  razor::cli::RegisterEval(app, &exit_code);
  razor::cli::RegisterDemo(app, &exit_code);
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
