// SentencePiece-style BPE (llama-spm: Llama 1/2, Mistral v0.1 ...): spaces become U+2581 "▁", an
// optional "▁" prefix, UTF-8 characters merged greedily by the highest score of the merged token,
// and characters without a token written as byte tokens <0xXX>.
#pragma once

#include <array>

#include "tokenizer/vocab_tokenizer.h"

namespace razor {

class SpmTokenizer final : public VocabTokenizer {
 public:
  explicit SpmTokenizer(Vocab vocab);
  std::string TokenToPiece(int32_t id) const override;

 protected:
  void EncodeText(std::string_view text, bool after_special, std::vector<int32_t>* out) const override;
  // HF's Strip decoder: the space that add_space_prefix put in front of the text is removed.
  std::string FinishDecode(std::string text) const override;

 private:
  std::array<int32_t, 256> byte_ids_;  // byte -> id of <0xXX>, -1 when the vocab lacks it
};

}  // namespace razor
