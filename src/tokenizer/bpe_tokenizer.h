// Byte-level BPE (GPT-2 family: Llama 3, Qwen2/3, SmolLM2, GPT-2): text bytes are written in a
// 256-character alphabet (bytes <-> unicode), split by the pre-tokenizer, and each word is merged
// pair by pair in merge-rank order.
#pragma once

#include "tokenizer/pretokenizer.h"
#include "tokenizer/vocab_tokenizer.h"

namespace razor {

class BpeTokenizer final : public VocabTokenizer {
 public:
  BpeTokenizer(Vocab vocab, PreTokenizer pre_tokenizer);
  std::string TokenToPiece(int32_t id) const override;

 protected:
  void EncodeText(std::string_view text, bool after_special, std::vector<int32_t>* out) const override;

 private:
  void EncodeWord(std::string_view word, std::vector<int32_t>* out) const;
  int32_t MergeRank(std::string_view left, std::string_view right, std::string* scratch) const;

  PreTokenizer pre_tokenizer_;
  std::vector<std::string> decoded_;  // id -> the bytes of the token (special tokens: their text)
};

// GPT-2's reversible map from bytes to printable characters (UTF-8), and back (-1: not in the alphabet).
const std::string& ByteToUnicode(uint8_t byte);
int ByteFromUnicode(uint32_t codepoint);

}  // namespace razor
