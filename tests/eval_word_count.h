// A token counter for the eval generators' tests: one token per space- or newline-separated word, so the
// generators can be tested without a tokenizer.
#pragma once

#include <cstdint>
#include <string_view>

namespace razor::eval::test_support {

inline int64_t WordCount(std::string_view s) {
  int64_t n = 0;
  bool in_word = false;
  for (char c : s) {
    const bool space = c == ' ' || c == '\n';
    if (!space && !in_word) ++n;
    in_word = !space;
  }
  return n;
}

}  // namespace razor::eval::test_support
