// MatMulReference: the ground truth for every fast kernel. Each weight row is dequantized to fp32
// (DequantizeRow, bit-exact with ggml), then y[t][r] = sum_k w[r][k] * x[t][k] in plain fp32:
// kLanes independent fp32 partial sums (lane j takes k = j mod kLanes, k ascending), added pairwise at
// the end. Fixed order, so deterministic for any thread count and ISA; the independent lanes let the
// compiler keep them in vector registers (one accumulator made the exact path latency-bound, ~10x slower).
// Threads split output rows.
#include <vector>

#include "ops/dequantize.h"
#include "ops/matmul.h"

namespace razor {
namespace {

constexpr int kLanes = 16;

// sum_k a[k] * b[k]: lane j accumulates k = j, j + kLanes, ...; lanes then summed as a binary tree.
float DotFp32Lanes(const float* a, const float* b, int64_t n) {
  float acc[kLanes] = {};
  int64_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += a[k + j] * b[k + j];
  for (int j = 0; k < n; ++k, ++j) acc[j] += a[k] * b[k];
  for (int width = kLanes / 2; width > 0; width /= 2)
    for (int j = 0; j < width; ++j) acc[j] += acc[j + width];
  return acc[0];
}

}  // namespace

void MatMulReference(const TensorView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool) {
  const int64_t rows = w.rows(), cols = w.cols();
  pool.ParallelFor(rows, [&](int64_t r0, int64_t r1) {
    std::vector<float> wrow(static_cast<size_t>(cols));  // [cols] one dequantized weight row
    for (int64_t r = r0; r < r1; ++r) {
      DequantizeRow(w.type, w.row(r), wrow.data(), cols);
      for (int64_t t = 0; t < n_tokens; ++t) {
        const float* xt = x + t * cols;
        y[t * rows + r] = DotFp32Lanes(wrow.data(), xt, cols);
      }
    }
  });
}

}  // namespace razor
