// The part of every Tokenizer that does not depend on the merge algorithm: special-token splitting,
// BOS, ids, end-of-generation and the chat template. Subclasses encode one run of plain text.
#pragma once

#include "tokenizer/chat_template.h"
#include "tokenizer/special_tokens.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace razor {

class VocabTokenizer : public Tokenizer {
 public:
  explicit VocabTokenizer(Vocab vocab);

  std::vector<int32_t> Encode(std::string_view text, bool add_bos, bool parse_special) const override;
  std::string Decode(const std::vector<int32_t>& ids) const override;

  int32_t vocab_size() const override { return vocab_.size(); }
  int32_t bos_id() const override { return vocab_.bos_id; }
  int32_t eos_id() const override { return vocab_.eos_id; }
  bool add_bos() const override { return vocab_.add_bos; }
  bool IsEndOfGeneration(int32_t id) const override;
  bool IsSpecial(int32_t id) const override { return vocab_.IsSpecial(id); }

  ChatTemplateKind chat_template_kind() const override { return chat_format_.kind; }
  bool has_chat_template() const override { return !vocab_.chat_template.empty(); }
  Result<std::string> ApplyChatTemplate(const std::vector<ChatMessage>& messages,
                                        bool add_generation_prompt) const override;

  const Vocab& vocab() const { return vocab_; }

 protected:
  // Appends the ids of `text` (no special tokens in it). `after_special`: at the start of the input
  // or right after a special token (where a space prefix applies).
  virtual void EncodeText(std::string_view text, bool after_special, std::vector<int32_t>* out) const = 0;
  // Decode() hook: the concatenated pieces, to be adjusted (SPM drops the prefix space).
  virtual std::string FinishDecode(std::string text) const { return text; }

  Vocab vocab_;
  SpecialTokenMatcher specials_;
  ChatFormat chat_format_;
};

}  // namespace razor
