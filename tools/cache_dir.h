// The cache root (models, profiles, eval data), resolved once per process: $RAZOR_HOME if set, else
// $HOME/.cache/razor. It must be absolute — a relative RAZOR_HOME would follow whatever folder the command
// runs in and download models there. The resolved path is written back to RAZOR_HOME, so the library
// (profiles, haystack) and scripts/pull_model.sh all see the same absolute folder.
#pragma once

#include <string>

#include "core/status.h"

namespace razor::cli {

// Resolves and exports RAZOR_HOME. Error (one line) when RAZOR_HOME is relative (main stops there, before any
// command), or when neither it nor HOME is set (reported only by what needs the cache: CacheDir below).
Status ResolveCacheDir();
// The resolved folder, or the error ResolveCacheDir found.
Result<std::string> CacheDir();

}  // namespace razor::cli
