// Running the real `razor` binary from a test: its exit code, stdout and stderr, and the check every bad
// input must pass (one line on stderr, non-zero exit below 128, no crash or sanitizer text).
#pragma once

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace razor::testing_cli {

struct Outcome {
  int exit_code = -1;  // -1: killed by a signal
  std::string out, err;
};

inline std::string Slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ctest runs each test in its own process, in parallel: every process gets its own scratch folder so
// one test never reads another's stderr or files.
inline std::string ScratchDir() {
  static const std::string dir = [] {
    std::string d = ::testing::TempDir() + "/razor_cli_test_" + std::to_string(::getpid());
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

// `args` is shell text (quote what needs it); `env` is arguments to env(1) before the binary, e.g. "-u HOME".
inline Outcome RunRazor(const std::string& args, const std::string& env = "") {
  const std::string dir = ScratchDir();
  const std::string out = dir + "/razor_out.txt", err = dir + "/razor_err.txt";
  const std::string cmd = "timeout 120 env " + env + " '" + RAZOR_BINARY + "' " + args + " >'" + out + "' 2>'" + err +
                          "' </dev/null";
  int status = std::system(cmd.c_str());
  Outcome o;
  if (WIFEXITED(status)) o.exit_code = WEXITSTATUS(status);
  o.out = Slurp(out);
  o.err = Slurp(err);
  return o;
}

// One line, naming the problem, non-zero exit, no crash text.
inline void ExpectCleanError(const Outcome& o, const std::string& must_contain) {
  EXPECT_GT(o.exit_code, 0) << o.err;
  EXPECT_NE(o.exit_code, 124) << "timed out";
  EXPECT_LT(o.exit_code, 128) << "killed by a signal: " << o.err;
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << "expected exactly one line, got:\n" << o.err;
  EXPECT_NE(o.err.find(must_contain), std::string::npos) << "stderr: " << o.err;
  EXPECT_EQ(o.err.find("Sanitizer"), std::string::npos) << o.err;
  EXPECT_EQ(o.err.find("terminate"), std::string::npos) << o.err;
}

}  // namespace razor::testing_cli
