// Micro-benchmark of the fast matmul modes (numbers printed, nothing asserted): MathMode::kFast (fp32
// activations, the default) unless RAZOR_MATH=int8 asks for MathMode::kInt8.
// Build (after building razor_lib in build/h_ops):
//   g++ -O2 -std=c++20 -Isrc bench/matmul_bench.cpp build/h_ops/librazor_lib.a -lpthread -o build/h_ops/matmul_bench
// Run:  build/h_ops/matmul_bench [seconds_per_case=0.3]      (RAZOR_ISA=avx2|scalar to force a level)
//       build/h_ops/matmul_bench SECONDS TYPE ROWS COLS TOKENS THREADS   (one case, e.g. 0.3 Q8_0 49152 576 1 1)
// Decode = one token (matrix-vector): GFLOP/s = 2*rows*cols/t, GB/s = weight bytes/t. The weights are
// re-read every repetition, so a matrix that fits in cache (576x1536 Q4_1 = 0.55 MB) is measured hot.
// Prefill = 512 tokens: GFLOP/s. Each case reports the best of several timed batches.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <vector>

#include "core/tensor_view.h"
#include "core/thread_pool.h"
#include "ops/dequantize.h"
#include "ops/matmul.h"

namespace {

using razor::TensorType;

razor::MathMode Mode() {
  const char* m = std::getenv("RAZOR_MATH");
  return m != nullptr && std::strcmp(m, "int8") == 0 ? razor::MathMode::kInt8 : razor::MathMode::kFast;
}

std::vector<uint8_t> RandomWeights(TensorType type, int64_t rows, int64_t cols) {
  std::vector<uint8_t> b(razor::RowBytes(type, cols) * static_cast<size_t>(rows));
  std::mt19937 rng(1);
  for (auto& v : b) v = static_cast<uint8_t>(rng());
  const int be = razor::BlockElems(type);
  const size_t bb = razor::RowBytes(type, be);
  const uint16_t d = razor::Fp32ToFp16(0.01f);
  for (size_t i = 0; i < b.size(); i += bb) {  // finite scales (or finite half/bf16 values)
    if (type == TensorType::F32) {
      const float f = 0.01f * static_cast<float>(rng() % 100);
      std::memcpy(&b[i], &f, 4);
    } else {
      std::memcpy(&b[i], &d, 2);
      if (type == TensorType::Q4_1 || type == TensorType::Q5_1) std::memcpy(&b[i + 2], &d, 2);
    }
  }
  return b;
}

double SecondsPerCall(const razor::TensorView& w, const float* x, int64_t n_tokens, float* y,
                      razor::ThreadPool& pool, double budget) {
  razor::MatMul(Mode(), w, x, n_tokens, y, pool);  // warm-up
  double best = 1e30, spent = 0;
  int reps = 1;
  while (spent < budget) {
    const auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) razor::MatMul(Mode(), w, x, n_tokens, y, pool);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, s / reps);
    spent += s;
    if (s < 0.02) reps *= 2;
  }
  return best;
}

void Case(TensorType type, int64_t rows, int64_t cols, int64_t n_tokens, int threads, double budget) {
  const std::vector<uint8_t> bytes = RandomWeights(type, rows, cols);
  razor::TensorView w;
  w.type = type;
  w.shape = {cols, rows};
  w.data = bytes.data();
  w.nbytes = bytes.size();
  std::vector<float> x(static_cast<size_t>(n_tokens * cols)), y(static_cast<size_t>(n_tokens * rows));
  std::mt19937 rng(2);
  std::normal_distribution<float> normal;
  for (auto& v : x) v = normal(rng);
  razor::ThreadPool pool(threads);
  const double s = SecondsPerCall(w, x.data(), n_tokens, y.data(), pool, budget);
  const double flop = 2.0 * static_cast<double>(rows) * cols * n_tokens;
  std::printf("| %-5s | %6lld x %-5lld | %4lld | %d | %9.1f us | %7.1f GFLOP/s | %6.1f GB/s |\n",
              razor::TensorTypeName(type), static_cast<long long>(rows), static_cast<long long>(cols),
              static_cast<long long>(n_tokens), threads, s * 1e6, flop / s * 1e-9,
              static_cast<double>(bytes.size()) / s * 1e-9);
}

}  // namespace

int main(int argc, char** argv) {
  const double budget = argc > 1 ? std::atof(argv[1]) : 0.3;
  std::printf("isa %s, %s\n| type  | rows x cols    | tok  | t | time         | compute         | weights    |\n",
              razor::MatMulIsa(), Mode() == razor::MathMode::kInt8 ? "int8 activations" : "fp32 activations");
  if (argc == 7) {
    for (uint32_t id = 0; id < 64; ++id) {
      const auto info = razor::GetTensorTypeInfo(id);
      if (info && std::strcmp(info->name, argv[2]) == 0)
        Case(static_cast<TensorType>(id), std::atoll(argv[3]), std::atoll(argv[4]), std::atoll(argv[5]),
             std::atoi(argv[6]), budget);
    }
    return 0;
  }
  const TensorType types[] = {TensorType::Q4_1, TensorType::Q8_0, TensorType::F16, TensorType::BF16,
                              TensorType::F32, TensorType::Q4_0, TensorType::Q5_0, TensorType::Q5_1, TensorType::Q6_K};
  for (int64_t n_tokens : {1, 512})
    for (TensorType type : types)
      for (auto [rows, cols] : {std::pair<int64_t, int64_t>{576, 1536}, {49152, 576}}) {
        if (n_tokens > 1 && rows == 49152 && type != TensorType::Q8_0) continue;  // the head is Q8_0
        for (int threads : {1, 2}) Case(type, rows, cols, n_tokens, threads, budget);
      }
  return 0;
}
