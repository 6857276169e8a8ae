#include "output_path.h"

#include <fmt/format.h>
#include <unistd.h>

#include <filesystem>

namespace razor::cli {
namespace fs = std::filesystem;

namespace {

// The nearest folder that exists at or above `dir` ("" = the current folder): where a missing folder
// would be created, so it must be writable.
fs::path ExistingAncestor(fs::path dir) {
  std::error_code ec;
  if (dir.empty()) return ".";
  while (!dir.empty() && !fs::exists(dir, ec)) {
    const fs::path up = dir.parent_path();
    if (up == dir) break;
    dir = up;
  }
  return dir.empty() ? fs::path(".") : dir;
}

Status CheckWritableFolder(const fs::path& dir, const std::string& path, const std::string& flag) {
  std::error_code ec;
  const fs::path base = ExistingAncestor(dir);
  if (!fs::is_directory(base, ec))
    return Err(fmt::format("{} {}: {} is not a directory", flag, path, base.string()));
  if (::access(base.c_str(), W_OK) != 0)
    return Err(fmt::format("{} {}: cannot write in {} (permission denied)", flag, path, base.string()));
  return Status::Ok();
}

}  // namespace

Status CheckOutputFile(const std::string& path, bool force, const std::string& flag) {
  if (path.empty()) return Err(flag + ": empty path");
  std::error_code ec;
  const fs::path p(path);
  if (fs::is_directory(p, ec)) return Err(fmt::format("{} {}: is a directory, not a file", flag, path));
  if (fs::exists(p, ec)) {
    if (!force) return Err(fmt::format("{} {}: file exists (use --force to replace it)", flag, path));
    if (::access(p.c_str(), W_OK) != 0) return Err(fmt::format("{} {}: file is not writable", flag, path));
  }
  // The file's folder must exist (nothing creates it); an output folder may be created (CheckOutputDir).
  const fs::path parent = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  if (!fs::is_directory(parent, ec))
    return Err(fmt::format("{} {}: folder {} does not exist", flag, path, parent.string()));
  return CheckWritableFolder(parent, path, flag);
}

Status CheckOutputDir(const std::string& dir, const std::vector<std::string>& files, bool force,
                      const std::string& flag) {
  if (dir.empty()) return Err(flag + ": empty path");
  std::error_code ec;
  if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
    return Err(fmt::format("{} {}: exists and is not a directory", flag, dir));
  RAZOR_RETURN_IF_ERROR(CheckWritableFolder(dir, dir, flag));
  if (!fs::exists(dir, ec)) return Status::Ok();  // made when the command writes: nothing there to replace
  for (const auto& f : files)
    RAZOR_RETURN_IF_ERROR(CheckOutputFile((fs::path(dir) / f).string(), force, flag));
  return Status::Ok();
}

}  // namespace razor::cli
