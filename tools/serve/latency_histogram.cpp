#include "serve/latency_histogram.h"

#include <fmt/format.h>

namespace razor::serve {

void LatencyHistogram::Observe(double seconds) {
  for (size_t i = 0; i < kBounds.size(); ++i)
    if (seconds <= kBounds[i]) {
      ++counts[i];
      break;
    }
  ++count;
  sum += seconds;
}

void LatencyHistogram::Format(const std::string& name, const std::string& help, std::string* out) const {
  *out += fmt::format("# HELP razor:{} {}\n# TYPE razor:{} histogram\n", name, help, name);
  int64_t cumulative = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += counts[i];
    *out += fmt::format("razor:{}_bucket{{le=\"{}\"}} {}\n", name, kBounds[i], cumulative);
  }
  *out += fmt::format("razor:{}_bucket{{le=\"+Inf\"}} {}\nrazor:{}_sum {}\nrazor:{}_count {}\n", name, count, name,
                      sum, name, count);
}

}  // namespace razor::serve
