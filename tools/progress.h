// The one progress reporter every command uses for long work (prefill, profiling, benchmark runs, KL steps).
// On a terminal it redraws one line with '\r' (at most ~10 times a second) and erases it when done; when
// stderr is not a terminal (a log file, CI) it writes a plain line at most every few seconds, so a log
// never holds hundreds of '\r' updates on one line.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace razor::cli {

class ProgressReporter {
 public:
  // label: what is counted, e.g. "prefill" or "profiling retrieval heads"; unit: "tokens", "" ...
  explicit ProgressReporter(std::string label, std::string unit = "");
  ~ProgressReporter();  // erases a terminal line still shown
  ProgressReporter(const ProgressReporter&) = delete;
  ProgressReporter& operator=(const ProgressReporter&) = delete;

  void Update(int64_t done, int64_t total);
  // Erases the terminal line (nothing to do for a log).
  void Finish();
  // A (done, total) callback for library options (KvCacheOptions::on_progress, HeadProfilerOptions, ...).
  std::function<void(int64_t, int64_t)> Callback();

  // Seconds between plain lines when stderr is not a terminal.
  static constexpr double kLogIntervalSeconds = 5.0;

 private:
  std::string label_, unit_;
  bool tty_;
  bool shown_ = false;  // a terminal line is on screen
  std::chrono::steady_clock::time_point start_, last_;
  bool printed_once_ = false;
};

}  // namespace razor::cli
