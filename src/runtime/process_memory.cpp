#include "runtime/process_memory.h"

#include <cstdio>
#include <cstring>

namespace razor {
namespace {

size_t ReadStatusKb(const char* key) {
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return 0;
  char line[256];
  size_t kb = 0;
  const size_t n = std::strlen(key);
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, key, n) == 0 && line[n] == ':') {
      std::sscanf(line + n + 1, "%zu", &kb);
      break;
    }
  }
  std::fclose(f);
  return kb * 1024;
}

}  // namespace

size_t CurrentRssBytes() { return ReadStatusKb("VmRSS"); }
size_t PeakRssBytes() { return ReadStatusKb("VmHWM"); }

}  // namespace razor
