#include "tokenizer/special_tokens.h"

#include <algorithm>

namespace razor {

SpecialTokenMatcher::SpecialTokenMatcher(const Vocab& vocab) {
  for (int32_t id = 0; id < vocab.size(); ++id) {
    const std::string& text = vocab.tokens[id];
    if (text.empty() || !vocab.IsSpecial(id)) continue;
    const bool control = vocab.types[id] != TokenType::kUserDefined;
    by_first_byte_[static_cast<uint8_t>(text[0])].push_back({text, id, control});
  }
  for (auto& bucket : by_first_byte_) {
    std::stable_sort(bucket.begin(), bucket.end(),
                     [](const Entry& a, const Entry& b) { return a.text.size() > b.text.size(); });
  }
}

std::vector<TextFragment> SpecialTokenMatcher::Split(std::string_view text, bool parse_control) const {
  std::vector<TextFragment> out;
  size_t plain_start = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const Entry* hit = nullptr;
    for (const Entry& e : by_first_byte_[static_cast<uint8_t>(text[pos])]) {
      if (e.control && !parse_control) continue;
      if (text.compare(pos, e.text.size(), e.text) == 0) {
        hit = &e;
        break;
      }
    }
    if (hit == nullptr) {
      ++pos;
      continue;
    }
    if (pos > plain_start) out.push_back({text.substr(plain_start, pos - plain_start), -1});
    out.push_back({std::string_view(), hit->id});
    pos += hit->text.size();
    plain_start = pos;
  }
  if (plain_start < text.size()) out.push_back({text.substr(plain_start), -1});
  return out;
}

}  // namespace razor
