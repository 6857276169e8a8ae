// The one rule for files a command writes: an existing file is replaced only with --force, and the path is
// checked before the long work starts (a profile or an eval sweep can take minutes), with a message that
// says what is wrong (a directory, a missing or read-only folder, an existing file).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"

namespace razor::cli {

// `flag` names the option in messages ("--plot"). Errors: empty path, path is a directory, parent folder
// missing or not writable, file exists and !force, file exists but is not writable.
Status CheckOutputFile(const std::string& path, bool force, const std::string& flag);

// An output folder (created later if missing) and the files the command will write inside it.
Status CheckOutputDir(const std::string& dir, const std::vector<std::string>& files, bool force,
                      const std::string& flag);

}  // namespace razor::cli
