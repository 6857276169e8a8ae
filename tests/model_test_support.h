// Shared helpers for the model tests: fixture paths, environment, running a model over ids.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "kv/full_kv_cache.h"
#include "model/transformer.h"
#include "runtime/loaded_model.h"

namespace razor::testing {

inline std::string FixturePath(const std::string& rel) { return std::string(RAZOR_SOURCE_DIR) + "/tests/fixtures/" + rel; }

// The default model, set by scripts/test.sh (RAZOR_TEST_MODEL); empty when absent.
inline std::string DefaultModelPath() {
  const char* p = std::getenv("RAZOR_TEST_MODEL");
  if (p == nullptr || !std::filesystem::exists(p)) return "";
  return p;
}

// Gemma 3 270M (GGUF), set by scripts/test.sh (RAZOR_TEST_GEMMA3); empty when absent.
inline std::string Gemma3ModelPath() {
  const char* p = std::getenv("RAZOR_TEST_GEMMA3");
  if (p == nullptr || !std::filesystem::exists(p)) return "";
  return p;
}

// Under the sanitizer build the long goldens are checked on a prefix only (they are 10-20x slower there).
inline bool UnderSanitizer() { return std::getenv("RAZOR_TEST_SANITIZER") != nullptr; }

// Logits [n, vocab] of ids run from position 0, in batches of `batch` tokens (so the KV cache carries
// state across calls exactly as in generation).
inline std::vector<float> RunAllLogits(const LoadedModel& m, MathMode mode, const std::vector<int32_t>& ids,
                                       int64_t batch, int threads = 2, int64_t chunk = 256) {
  ThreadPool pool(threads);
  Transformer tf(m.config, m.weights, pool, mode);
  tf.set_chunk_tokens(chunk);
  FullKvCache cache(m.config.n_layers, m.config.n_kv_heads, m.config.head_dim, m.config.context_length);
  std::vector<float> all, part;
  for (size_t b = 0; b < ids.size(); b += batch) {
    const int64_t n = std::min<int64_t>(batch, ids.size() - b);
    Status st = tf.Forward(ids.data() + b, n, cache, true, &part);
    EXPECT_TRUE(st.ok()) << st.message();
    if (!st.ok()) return {};
    all.insert(all.end(), part.begin(), part.end());
  }
  return all;
}

}  // namespace razor::testing
