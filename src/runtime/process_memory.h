// This process's resident memory, read from /proc/self/status (Linux), in bytes.
#pragma once

#include <cstddef>

namespace razor {

size_t CurrentRssBytes();  // VmRSS
size_t PeakRssBytes();     // VmHWM: the high-water mark since start (or since fork, from the RSS then)

}  // namespace razor
