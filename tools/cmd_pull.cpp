// razor pull NAME: fetch a catalogued model into the cache, verify its sha256, print its path.
#include <cstdio>

#include "cli_common.h"

namespace razor::cli {

void RegisterPull(CLI::App& app, int* exit_code) {
  auto* cmd = app.add_subcommand("pull", "fetch a model listed in models/catalog.json and print its path");
  static std::string name_storage = kDefaultModel;
  std::string* name = &name_storage;
  cmd->add_option("name", *name, "short name from the catalogue")->capture_default_str();
  cmd->callback([=] {
    auto path = PullModel(*name);
    if (!path) {
      *exit_code = Fail(path.error());
      return;
    }
    std::printf("%s\n", path->c_str());
    *exit_code = 0;
  });
}

}  // namespace razor::cli
