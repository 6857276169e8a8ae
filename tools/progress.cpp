#include "progress.h"

#include <unistd.h>

#include <cstdio>

namespace razor::cli {

ProgressReporter::ProgressReporter(std::string label, std::string unit)
    : label_(std::move(label)), unit_(std::move(unit)), tty_(::isatty(STDERR_FILENO) == 1),
      start_(std::chrono::steady_clock::now()), last_(start_) {}

ProgressReporter::~ProgressReporter() { Finish(); }

void ProgressReporter::Update(int64_t done, int64_t total) {
  const auto now = std::chrono::steady_clock::now();
  const double since_last = std::chrono::duration<double>(now - last_).count();
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  const bool last = done >= total;
  if (tty_) {
    if (last) return Finish();
    if (printed_once_ && since_last < 0.1) return;
  } else {
    // The first line after a few seconds (short work stays silent), then one every kLogIntervalSeconds.
    if (last || since_last < kLogIntervalSeconds) return;
  }
  last_ = now;
  printed_once_ = true;
  const double pct = total > 0 ? 100.0 * done / total : 0.0;
  std::fprintf(stderr, "%s%s %lld/%lld%s%s (%.0f%%, %.1f s)%s", tty_ ? "\r" : "", label_.c_str(), (long long)done,
               (long long)total, unit_.empty() ? "" : " ", unit_.c_str(), pct, elapsed, tty_ ? "\033[K" : "\n");
  std::fflush(stderr);
  shown_ = tty_;
}

void ProgressReporter::Finish() {
  if (!shown_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  shown_ = false;
}

std::function<void(int64_t, int64_t)> ProgressReporter::Callback() {
  return [this](int64_t done, int64_t total) { Update(done, total); };
}

}  // namespace razor::cli
