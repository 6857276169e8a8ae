#include "tokenizer/vocab_tokenizer.h"

#include <algorithm>

namespace razor {

VocabTokenizer::VocabTokenizer(Vocab vocab)
    : vocab_(std::move(vocab)), specials_(vocab_), chat_format_(DetectChatFormat(vocab_.chat_template)) {}

std::vector<int32_t> VocabTokenizer::Encode(std::string_view text, bool add_bos, bool parse_special) const {
  std::vector<int32_t> out;
  out.reserve(text.size() / 3 + 2);
  if (add_bos && vocab_.add_bos && vocab_.bos_id >= 0) out.push_back(vocab_.bos_id);
  bool after_special = true;
  for (const TextFragment& f : specials_.Split(text, parse_special)) {
    if (f.token >= 0) {
      out.push_back(f.token);
      after_special = true;
    } else {
      EncodeText(f.text, after_special, &out);
      after_special = false;
    }
  }
  return out;
}

std::string VocabTokenizer::Decode(const std::vector<int32_t>& ids) const {
  std::string text;
  for (int32_t id : ids) text += TokenToPiece(id);
  return FinishDecode(std::move(text));
}

bool VocabTokenizer::IsEndOfGeneration(int32_t id) const {
  return std::binary_search(vocab_.end_of_generation_ids.begin(), vocab_.end_of_generation_ids.end(), id);
}

Result<std::string> VocabTokenizer::ApplyChatTemplate(const std::vector<ChatMessage>& messages,
                                                      bool add_generation_prompt) const {
  const std::string bos = vocab_.bos_id >= 0 ? vocab_.tokens[vocab_.bos_id] : "";
  return RenderChat(chat_format_, bos, messages, add_generation_prompt);
}

}  // namespace razor
