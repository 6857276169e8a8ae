// Pre-tokenization: splits text into the words that BPE merges never cross.
// A pre-tokenizer is a list of PCRE2 regexes (UTF + UCP, JIT) applied in order; each one splits every
// current piece into its matches and the text between them, both kept ("Isolated" in HF tokenizers).
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace razor {

class PreTokenizer {
 public:
  // `pre` is GGUF's tokenizer.ggml.pre: "llama-bpe" / "llama3", "qwen2", "smollm", "gpt-2", "default".
  static Result<PreTokenizer> ForGgufPre(const std::string& pre);
  // tokenizer.json's "pre_tokenizer" object: Split(Regex, Isolated), ByteLevel(use_regex), Digits, Sequence.
  // `add_prefix_space` is set when a ByteLevel step asks for it.
  static Result<PreTokenizer> FromHfJson(const nlohmann::json& pre_tokenizer, bool* add_prefix_space);
  static Result<PreTokenizer> FromRegexes(const std::vector<std::string>& patterns);

  // Pieces of `text` in order; their concatenation is `text`. Never returns empty pieces.
  std::vector<std::string_view> Split(std::string_view text) const;
  size_t num_regexes() const { return regexes_.size(); }

 private:
  struct Regex;  // owns a compiled pcre2 code (+ JIT)
  std::vector<std::shared_ptr<const Regex>> regexes_;
};

// The regexes (PCRE2 syntax) that HF tokenizers' ByteLevel pre-tokenizer uses when use_regex is set.
extern const char* const kGpt2Regex;

}  // namespace razor
