#include "cache_dir.h"

#include <cstdlib>
#include <optional>

namespace razor::cli {
namespace {

std::optional<Result<std::string>>& Resolved() {
  static std::optional<Result<std::string>> r;
  return r;
}

Result<std::string> Resolve() {
  const char* rh = std::getenv("RAZOR_HOME");
  if (rh != nullptr && *rh != '\0') {
    const std::string v = rh;
    if (v[0] != '/') return Err("RAZOR_HOME='" + v + "' is not an absolute path (set it to a folder like /data/razor)");
    return v;
  }
  const char* home = std::getenv("HOME");
  if (home == nullptr || *home == '\0')
    return Err("cannot locate the cache folder: RAZOR_HOME and HOME are both unset (set RAZOR_HOME to an absolute path)");
  if (home[0] != '/') return Err(std::string("HOME='") + home + "' is not an absolute path (set RAZOR_HOME instead)");
  return std::string(home) + "/.cache/razor";
}

}  // namespace

Status ResolveCacheDir() {
  Resolved() = Resolve();
  if (!*Resolved()) return Resolved()->status();
  ::setenv("RAZOR_HOME", (*Resolved())->c_str(), 1);
  return Status::Ok();
}

Result<std::string> CacheDir() {
  if (!Resolved()) ResolveCacheDir();
  return *Resolved();
}

}  // namespace razor::cli
