// Every subcommand against a table of hostile arguments — zero, negative, huge, NaN, empty, directories,
// existing files, shell syntax in names, a bad environment — through the real binary. Each case must end
// with a non-zero exit below 128 and exactly one line on stderr naming the problem, or succeed where the
// input is valid. Cases fail fast (option checks, tiny fixture models), so the table runs in seconds.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "cli_test_support.h"
#include "model_test_support.h"

namespace razor {
namespace {

namespace fs = std::filesystem;
using testing_cli::ExpectCleanError;
using testing_cli::Outcome;
using testing_cli::RunRazor;
using testing_cli::ScratchDir;

const std::string kFixtures = std::string(RAZOR_SOURCE_DIR) + "/tests/fixtures/hf/";
const std::string kTinyGguf = kFixtures + "tiny_llama_gguf/tiny_llama.gguf";  // no tokenizer, context 128
const std::string kTinyHf = kFixtures + "tiny_llama";                         // no tokenizer, context 128

struct Case {
  std::string args;
  std::string must_contain;  // empty: the command must succeed
};

void RunTable(const std::vector<Case>& cases) {
  for (const Case& c : cases) {
    SCOPED_TRACE("razor " + c.args);
    const Outcome o = RunRazor(c.args);
    if (c.must_contain.empty()) EXPECT_EQ(o.exit_code, 0) << o.err;
    else ExpectCleanError(o, c.must_contain);
  }
}

TEST(CliHostileArgsTest, NumericOptionsOfRun) {
  RunTable({
      // NaN passed every CLI::Range check (comparisons with NaN are false).
      {"run -p hi --temp nan", "--temp"},
      {"run -p hi --temp inf", "--temp"},
      {"run -p hi --temp -1", "--temp"},
      {"run -p hi --temp ''", "--temp"},
      {"run -p hi --top-p nan", "--top-p"},
      {"run -p hi --min-p nan", "--min-p"},
      {"run -p hi --repeat-penalty nan", "--repeat-penalty"},
      {"run -p hi --induction-ratio nan", "--induction-ratio"},
      {"run -p hi --window-frac nan", "--window-frac"},
      // --seed wrapped (-1 became 2^64 - 1).
      {"run -p hi --seed -1", "--seed"},
      {"run -p hi --seed 18446744073709551616", "--seed"},
      {"run -p hi --seed 1.5", "--seed"},
      // Only -1 is documented.
      {"run -p hi --repeat-last-n -2", "--repeat-last-n"},
      {"run -p hi --top-k -1", "--top-k"},
      // -t 1000 ran for minutes and aborted with std::system_error under a memory limit.
      {"run -p hi -t 1000", "--threads"},
      {"run -p hi -t -1", "--threads"},
      {"run -p hi -t 99999999999999999999", "--threads"},
      {"run -p hi -n -1", "--n-predict"},
      {"run -p hi -n 1e3", "--n-predict"},
      {"run -p hi --ctx -1", "--ctx"},
      {"run -p hi --sinks -1", "--sinks"},
      {"run -p hi --window-min 0", "--window-min"},
      // --system without --chat was ignored silently.
      {"run -p hi --system 'be brief'", "--chat"},
      {"run -p hi -m ''", "empty model path"},
      // A directory as a prompt file read as an empty prompt.
      {"run -f " + ScratchDir(), "is a directory"},
      {"run -f /nonexistent/prompt.txt", "cannot open"},
      {"inspect " + ScratchDir(), "no config.json"},
      {"inspect /dev/null", "truncated"},
      {"inspect ''", "empty model path"},
      {"inspect " + kTinyGguf, ""},
      {"run --help", ""},
  });
}

TEST(CliHostileArgsTest, BenchValidatesBeforeWork) {
  RunTable({
      {"bench -m " + kTinyGguf + " --ctx -1", "--ctx"},  // run rejected it, bench accepted it
      {"bench -m " + kTinyGguf + " --ctx nan", "--ctx"},
      // 2147483647 + 64 overflowed to "context of -2147483648" after 34 s of work.
      {"bench -m " + kTinyGguf + " -p 2147483647", "prompt length"},
      {"bench -m " + kTinyGguf + " -p 0", "prompt length"},
      {"bench -m " + kTinyGguf + " -p ''", "prompt length"},
      {"bench -m " + kTinyGguf + " -t 1000", "thread count"},
      {"bench -m " + kTinyGguf + " -r 0", "--reps"},
      {"bench -m " + kTinyGguf + " -n 0", "--n-decode"},
      // Every prompt skipped used to exit 0 with an empty table.
      {"bench -m " + kTinyGguf + " -p 1000", "no prompt length fits the context of 128"},
      {"bench -m " + kTinyGguf + " -p 32 -n 4 -t 1 --kv full", ""},
  });
}

TEST(CliHostileArgsTest, EvalDemoProfileOptions) {
  RunTable({
      // Hung: the length + 64 check overflowed.
      {"eval passkey --lengths 2147483647 --depths 50", "length"},
      {"eval passkey --lengths 1024 --depths 101", "depth"},
      {"eval passkey --lengths 1024 --depths nan", "depth"},
      {"eval needle --only-depth 101", "--only-depth"},
      {"eval needle --seed -1", "--seed"},
      {"eval kld --length nan", "--length"},
      {"eval kld --steps 0", "--steps"},
      {"demo --tokens 0", "--tokens"},
      {"demo --depth 101", "--depth"},
      {"demo --depth nan", "--depth"},
      {"demo -t 1000", "--threads"},
      {"profile --induction-ratio nan", "--induction-ratio"},
      {"profile --echo-ratio 2", "--echo-ratio"},
      {"profile --block 0", "--block"},
      {"profile --repeats 1", "--repeats"},
      {"profile --token-range -1 5", "--token-range"},
      {"profile --alibi-epsilon 0", "--alibi-epsilon"},
      {"profile --seed -5", "--seed"},
  });
}

TEST(CliHostileArgsTest, ModelNamesAreNeverShellText) {
  const std::string marker = ScratchDir() + "/injected";
  fs::remove(marker);
  // PullModel used to build a popen command line with the name in quotes.
  RunTable({
      {"pull \"x'; touch " + marker + "; echo '\"", "catalogue name"},
      {"pull '$(touch " + marker + ")'", "catalogue name"},
      {"pull '`touch " + marker + "`'", "catalogue name"},
      {"run -p hi -m \"x'; touch " + marker + "; echo '\"", "touch"},
      // The script's --list used to be printed as if it were a model path.
      {"pull -- --list", "catalogue name"},
      {"pull -- --print-path", "catalogue name"},
      {"pull ''", "catalogue name"},
      {"pull ..", "catalogue name"},
  });
  EXPECT_FALSE(fs::exists(marker)) << "a model name was run as shell text";
}

TEST(CliHostileArgsTest, CacheDirectoryFromTheEnvironment) {
  // A relative RAZOR_HOME resolved against the current folder (and downloaded there).
  ExpectCleanError(RunRazor("inspect " + kTinyGguf, "RAZOR_HOME=relative/cache"), "RAZOR_HOME");
  // HOME unset: a clear error from razor, not "HOME: unbound variable" from the script.
  Outcome o = RunRazor("pull smollm2-135m", "-u HOME -u RAZOR_HOME");
  ExpectCleanError(o, "HOME");
  EXPECT_EQ(o.err.find("unbound variable"), std::string::npos) << o.err;
  // The script on its own says the same.
  const std::string err = ScratchDir() + "/pull_err.txt";
  const std::string cmd = "env -u HOME -u RAZOR_HOME '" + std::string(RAZOR_SOURCE_DIR) +
                          "/scripts/pull_model.sh' smollm2-135m >/dev/null 2>'" + err + "'";
  const int status = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(status), 2);
  const std::string text = testing_cli::Slurp(err);
  EXPECT_NE(text.find("RAZOR_HOME and HOME are both unset"), std::string::npos) << text;
  EXPECT_EQ(text.find("unbound variable"), std::string::npos) << text;
  // A valid absolute RAZOR_HOME is fine for a command that does not need the cache.
  EXPECT_EQ(RunRazor("inspect " + kTinyGguf, "RAZOR_HOME=" + ScratchDir()).exit_code, 0);
}

// A config.json whose attention heads are zero: inspect and run died of SIGFPE (hidden_size / heads).
TEST(CliHostileArgsTest, ZeroHeadsConfigIsAnError) {
  const std::vector<std::string> configs = {
      R"({"model_type": "llama", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 0,
          "intermediate_size": 96, "vocab_size": 256})",
      R"({"model_type": "qwen2", "num_hidden_layers": 2, "hidden_size": 64, "num_attention_heads": 0,
          "num_key_value_heads": 2, "intermediate_size": 96, "vocab_size": 256})",
  };
  for (size_t i = 0; i < configs.size(); ++i) {
    const std::string dir = ScratchDir() + "/zero_heads_" + std::to_string(i);
    fs::create_directories(dir);
    std::ofstream(dir + "/config.json") << configs[i];
    ExpectCleanError(RunRazor("inspect " + dir), "num_attention_heads");
    ExpectCleanError(RunRazor("run -p hi -m " + dir), "num_attention_heads");
  }
}

TEST(CliHostileArgsTest, OutputPathsAreCheckedBeforeWork) {
  const std::string dir = ScratchDir() + "/outputs";
  fs::create_directories(dir);
  const std::string existing = dir + "/existing.png";
  std::ofstream(existing) << "mine";
  const std::string profile = dir + "/p.json";
  // --plot overwrote an existing file without --force.
  ExpectCleanError(RunRazor("profile -m " + kTinyHf + " -o " + profile + " --plot " + existing), "--force");
  EXPECT_EQ(testing_cli::Slurp(existing), "mine");
  EXPECT_FALSE(fs::exists(profile)) << "the profile ran although an output was refused";
  // A directory said "cannot write (Success) (use --force...)" even with --force.
  Outcome o = RunRazor("profile -m " + kTinyHf + " -o " + dir + " --force");
  ExpectCleanError(o, "is a directory");
  EXPECT_EQ(o.err.find("Success"), std::string::npos) << o.err;
  EXPECT_EQ(o.err.find("use --force"), std::string::npos) << o.err;
  ExpectCleanError(RunRazor("profile -m " + kTinyHf + " -o " + profile + " --plot " + dir), "is a directory");
  ExpectCleanError(RunRazor("profile -m " + kTinyHf + " -o " + dir + "/no/such/folder/file.json"), "does not exist");
  ExpectCleanError(RunRazor("eval passkey -m " + kTinyHf + " --out " + existing), "not a directory");
  // Valid: new files; then --force replaces the picture, and without it the same call is refused.
  const std::string plot = dir + "/heat.png";
  o = RunRazor("profile -q -m " + kTinyHf + " -o " + profile + " --plot " + plot);
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_TRUE(fs::exists(plot));
  ExpectCleanError(RunRazor("profile -m " + kTinyHf + " -o " + profile + " --plot " + plot), "--force");
  EXPECT_EQ(RunRazor("profile -q -m " + kTinyHf + " -o " + profile + " --plot " + plot + " --force").exit_code, 0);
}

// stderr is a file here, not a terminal: progress must come as plain lines, never '\r' redraws
// (a log of `razor demo` held 960 "profiling retrieval heads i/960" updates on one line).
TEST(CliHostileArgsTest, ProgressInALogHasNoCarriageReturns) {
  const std::string dir = ScratchDir() + "/progress";
  fs::create_directories(dir);
  Outcome o = RunRazor("profile -m " + kTinyHf + " -o " + dir + "/p.json --force");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.err.find('\r'), std::string::npos) << o.err;
  o = RunRazor("bench -m " + kTinyGguf + " -p 32 -n 4 -t 1");
  EXPECT_EQ(o.exit_code, 0) << o.err;
  EXPECT_EQ(o.err.find('\r'), std::string::npos) << o.err;
}

// The stats line of a short run said "1600.0% of a full cache" (6400 % with -n 0): the full cache's
// 64-token pages were compared with the bytes of only the tokens seen.
TEST(CliHostileArgsTest, ShortRunReportsAFullCacheAsOneHundredPercent) {
  const std::string model = testing::DefaultModelPath();
  if (model.empty()) GTEST_SKIP() << "RAZOR_TEST_MODEL not set";
  for (const char* n : {"0", "4"}) {
    Outcome o = RunRazor("run -m " + model + " -p Hi -t 1 -n " + std::string(n));
    ASSERT_EQ(o.exit_code, 0) << o.err;
    EXPECT_NE(o.err.find("KV cache (full)"), std::string::npos) << o.err;
    EXPECT_NE(o.err.find(" 100.0% of a full cache"), std::string::npos) << o.err;
  }
}

// Under a memory limit, starting the thread pool threw std::system_error out of main (abort, exit 134).
// Whatever the limit, the outcome is success or one clean line, never a signal.
TEST(CliHostileArgsTest, MemoryLimitEndsCleanly) {
  const std::string model = testing::DefaultModelPath();
  if (model.empty()) GTEST_SKIP() << "RAZOR_TEST_MODEL not set";
  if (testing::UnderSanitizer()) GTEST_SKIP() << "ASan reserves more address space than any limit allows";
  for (int kib : {60000, 100000, 120000, 150000}) {
    SCOPED_TRACE(kib);
    const std::string err = ScratchDir() + "/limit_err.txt";
    const std::string cmd = "ulimit -v " + std::to_string(kib) + "; '" + RAZOR_BINARY + "' run -m '" + model +
                            "' -p Hi -n 2 >/dev/null 2>'" + err + "'";
    const int status = std::system(("bash -c \"" + cmd + "\"").c_str());
    ASSERT_TRUE(WIFEXITED(status));
    const int code = WEXITSTATUS(status);
    EXPECT_LT(code, 128) << testing_cli::Slurp(err);
    if (code != 0) {
      const std::string text = testing_cli::Slurp(err);
      EXPECT_EQ(std::count(text.begin(), text.end(), '\n'), 1) << text;
      EXPECT_EQ(text.find("terminate"), std::string::npos) << text;
    }
  }
}

}  // namespace
}  // namespace razor
