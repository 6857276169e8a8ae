// Runs a program with an argv array — no shell, so no argument is ever parsed as shell syntax — and
// captures its stdout; its stderr lines are handed to a callback as they arrive (progress stays live).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/status.h"

namespace razor::cli {

struct ProgramOutput {
  int exit_code = -1;   // the child's exit status; 128 + N when killed by signal N
  std::string out;      // everything it wrote to stdout
};

// argv[0] is the program path (not searched in PATH). on_stderr_line gets each line without its '\n'.
Result<ProgramOutput> RunProgram(const std::vector<std::string>& argv,
                                 const std::function<void(const std::string&)>& on_stderr_line);

}  // namespace razor::cli
