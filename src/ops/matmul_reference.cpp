// MatMulReference: the ground truth for every fast kernel. Each weight row is dequantized to fp32
// (DequantizeRow, bit-exact with ggml), then y[t][r] = sum_k w[r][k] * x[t][k] in plain fp32,
// k ascending, one accumulator: deterministic for any thread count. Threads split output rows.
#include <vector>

#include "ops/dequantize.h"
#include "ops/matmul.h"

namespace razor {

void MatMulReference(const TensorView& w, const float* x, int64_t n_tokens, float* y, ThreadPool& pool) {
  const int64_t rows = w.rows(), cols = w.cols();
  pool.ParallelFor(rows, [&](int64_t r0, int64_t r1) {
    std::vector<float> wrow(static_cast<size_t>(cols));  // [cols] one dequantized weight row
    for (int64_t r = r0; r < r1; ++r) {
      DequantizeRow(w.type, w.row(r), wrow.data(), cols);
      for (int64_t t = 0; t < n_tokens; ++t) {
        const float* xt = x + t * cols;
        float acc = 0.0f;
        for (int64_t k = 0; k < cols; ++k) acc += wrow[static_cast<size_t>(k)] * xt[k];
        y[t * rows + r] = acc;
      }
    }
  });
}

}  // namespace razor
