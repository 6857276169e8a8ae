// Splits text around the texts of special tokens (control / user-defined / unknown), leftmost-longest.
// With parse_control false only user-defined tokens are split out, as llama.cpp does; control
// tokens such as "<|im_start|>" then stay ordinary text.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/vocab.h"

namespace razor {

struct TextFragment {
  std::string_view text;  // the raw text when token < 0
  int32_t token = -1;     // the special token when >= 0
};

class SpecialTokenMatcher {
 public:
  SpecialTokenMatcher() = default;
  explicit SpecialTokenMatcher(const Vocab& vocab);
  std::vector<TextFragment> Split(std::string_view text, bool parse_control) const;

 private:
  struct Entry {
    std::string text;
    int32_t id;
    bool control;  // control or unknown: parsed only when parse_control
  };
  std::array<std::vector<Entry>, 256> by_first_byte_;  // each sorted by text length, longest first
};

}  // namespace razor
