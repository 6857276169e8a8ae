// Bad input through the real `razor` binary: every case must end with one clear line on stderr and a
// non-zero exit, never a crash, a sanitizer report or a hang.
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli_test_support.h"
#include "gguf_writer_for_tests.h"
#include "model_test_support.h"

namespace razor {
namespace {

namespace fs = std::filesystem;

using testing_cli::ExpectCleanError;
using testing_cli::Outcome;
using testing_cli::RunRazor;
using testing_cli::ScratchDir;

std::string WriteTemp(const std::string& name, const std::vector<uint8_t>& bytes) {
  const std::string path = ScratchDir() + "/" + name;
  EXPECT_TRUE(GgufWriterForTests::WriteFile(path, bytes));
  return path;
}

// A structurally valid llama GGUF header with the metadata a model needs, tensors added by the caller.
GgufWriterForTests LlamaMetadata(const std::string& arch = "llama") {
  GgufWriterForTests w;
  w.AddString("general.architecture", arch);
  w.AddUint(arch + ".block_count", GgufValueType::UINT32, 1);
  w.AddUint(arch + ".embedding_length", GgufValueType::UINT32, 32);
  w.AddUint(arch + ".feed_forward_length", GgufValueType::UINT32, 64);
  w.AddUint(arch + ".attention.head_count", GgufValueType::UINT32, 2);
  w.AddUint(arch + ".context_length", GgufValueType::UINT32, 128);
  w.AddUint(arch + ".vocab_size", GgufValueType::UINT32, 16);
  return w;
}

std::vector<uint8_t> Zeros(size_t n) { return std::vector<uint8_t>(n, 0); }

TEST(CliBadInputTest, FileThatDoesNotExist) {
  ExpectCleanError(RunRazor("inspect /nonexistent/model.gguf"), "no such file");
  ExpectCleanError(RunRazor("run -m /nonexistent/model.gguf -p hi"), "no such file");
}

TEST(CliBadInputTest, NotAGgufFile) {
  const std::string path = ScratchDir() + "/not_a_model.gguf";
  std::ofstream(path) << "hello, this is text";
  ExpectCleanError(RunRazor("inspect " + path), path);
}

TEST(CliBadInputTest, TruncatedGguf) {
  auto w = LlamaMetadata();
  w.AddTensor("token_embd.weight", TensorType::F32, {32, 16}, Zeros(32 * 16 * 4));
  auto bytes = w.Build();
  for (size_t cut : {size_t(3), size_t(24), bytes.size() / 2, bytes.size() - 1}) {
    auto part = bytes;
    part.resize(cut);
    ExpectCleanError(RunRazor("inspect " + WriteTemp("truncated.gguf", part)), "truncated");
  }
}

TEST(CliBadInputTest, HeaderClaimsMoreThanTheFileHolds) {
  auto w = LlamaMetadata();
  w.ClaimTensorCount(1ull << 40);
  ExpectCleanError(RunRazor("inspect " + WriteTemp("many_tensors.gguf", w.Build())), "tensor");
  auto k = LlamaMetadata();
  k.ClaimKvCount(1ull << 40);
  ExpectCleanError(RunRazor("inspect " + WriteTemp("many_kvs.gguf", k.Build())), "metadata");
}

TEST(CliBadInputTest, TensorDataOutOfBounds) {
  auto w = LlamaMetadata();
  size_t i = w.AddTensor("token_embd.weight", TensorType::F32, {32, 16}, Zeros(32 * 16 * 4));
  w.SetTensorOffset(i, 1ull << 30);
  ExpectCleanError(RunRazor("inspect " + WriteTemp("oob.gguf", w.Build())), "token_embd.weight");
}

TEST(CliBadInputTest, UnknownTensorType) {
  auto w = LlamaMetadata();
  w.AddTensor("token_embd.weight", 99u, {32, 16}, Zeros(64));
  ExpectCleanError(RunRazor("inspect " + WriteTemp("unknown_type.gguf", w.Build())), "99");
}

TEST(CliBadInputTest, UnknownArchitectureListsSupportedOnes) {
  auto w = LlamaMetadata("gptj");
  w.AddTensor("token_embd.weight", TensorType::F32, {32, 16}, Zeros(32 * 16 * 4));
  Outcome o = RunRazor("inspect " + WriteTemp("gptj.gguf", w.Build()));
  ExpectCleanError(o, "gptj");
  EXPECT_NE(o.err.find("qwen2"), std::string::npos) << o.err;
}

TEST(CliBadInputTest, MissingTensor) {
  auto w = LlamaMetadata();
  w.AddTensor("token_embd.weight", TensorType::F32, {32, 16}, Zeros(32 * 16 * 4));
  ExpectCleanError(RunRazor("inspect " + WriteTemp("missing.gguf", w.Build())), "missing tensor 'output_norm.weight'");
}

TEST(CliBadInputTest, WrongShape) {
  auto w = LlamaMetadata();
  w.AddTensor("token_embd.weight", TensorType::F32, {32, 15}, Zeros(32 * 15 * 4));
  ExpectCleanError(RunRazor("inspect " + WriteTemp("shape.gguf", w.Build())), "shape");
}

TEST(CliBadInputTest, NonsenseFlags) {
  Outcome o = RunRazor("run --no-such-flag");
  EXPECT_EQ(o.exit_code, 2);
  EXPECT_EQ(std::count(o.err.begin(), o.err.end(), '\n'), 1) << o.err;
  ExpectCleanError(RunRazor("bench -p 12,abc -m /nonexistent.gguf"), "bad prompt length list '12,abc'");
  ExpectCleanError(RunRazor("bench -t 0 -m /nonexistent.gguf"), "bad thread count list");
  ExpectCleanError(RunRazor("eval needle --depths 50,x -m /nonexistent.gguf"), "bad depth list '50,x'");
  ExpectCleanError(RunRazor("eval needle --lengths 32 -m /nonexistent.gguf"), "expected integers >= 64");
  ExpectCleanError(RunRazor("run -p hi -n -5"), "n-predict");
  ExpectCleanError(RunRazor("frobnicate"), "frobnicate");
}

// --device: a name that is no device, a GPU asked for where there is none (every CI machine), random weights
// on the CPU, and a GPU asked for with CPU-only math: each a one-line error, never a crash or a silent CPU run.
TEST(CliBadInputTest, DeviceChoicesThatCannotBeHad) {
  const std::string model = testing::DefaultModelPath();
  if (model.empty()) GTEST_SKIP() << "RAZOR_TEST_MODEL not set";
  ExpectCleanError(RunRazor("run -m " + model + " -p hi -n 1 --device tpu"), "unknown device 'tpu'");
  ExpectCleanError(RunRazor("bench --synthetic llama-3.1-8b --device cpu -p 64"), "GPU only");
  ExpectCleanError(RunRazor("bench --synthetic gpt-5 --device cuda -p 64"), "unknown synthetic shape 'gpt-5'");
  if (!std::getenv("RAZOR_TEST_HAS_GPU")) {  // the GPU machine sets it; CI has no GPU
    ExpectCleanError(RunRazor("run -m " + model + " -p hi -n 1 --device cuda"), "--device cuda");
    ExpectCleanError(RunRazor("bench --synthetic llama-3.1-8b -p 64"), "GPU");
  }
  ExpectCleanError(RunRazor("run -m " + model + " -p hi -n 1 --device cuda --exact"), "--device cuda");
  ExpectCleanError(RunRazor("profile -m " + model + " --device cuda"), "runs on the CPU");
}

TEST(CliBadInputTest, EmptyPromptAndPromptLongerThanContext) {
  const std::string model = testing::DefaultModelPath();
  if (model.empty()) GTEST_SKIP() << "RAZOR_TEST_MODEL not set";
  ExpectCleanError(RunRazor("run -m " + model + " -p ''"), "empty prompt");
  const std::string empty_file = ScratchDir() + "/empty_prompt.txt";
  std::ofstream(empty_file).close();
  ExpectCleanError(RunRazor("run -m " + model + " -f " + empty_file), "empty prompt");
  ExpectCleanError(RunRazor("run -m " + model + " --ctx 8 -p 'one two three four five six seven eight nine ten'"),
                   "longer than the context");
}

TEST(CliBadInputTest, MissingPromptFile) {
  ExpectCleanError(RunRazor("run -f /nonexistent/prompt.txt"), "/nonexistent/prompt.txt");
}

}  // namespace
}  // namespace razor
