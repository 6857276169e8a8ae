#include "tokenizer/spm_tokenizer.h"

#include <cstdio>
#include <queue>

namespace razor {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

struct Symbol {
  int prev;
  int next;
  size_t start;  // into the escaped text
  size_t size;   // 0 once merged into its left neighbour
};

struct Bigram {
  int left;
  int right;
  float score;
  size_t size;  // bytes of the merged text, to drop entries made stale by other merges
};

struct BigramOrder {
  bool operator()(const Bigram& a, const Bigram& b) const {
    return a.score < b.score || (a.score == b.score && a.left > b.left);  // best score, then leftmost
  }
};

size_t Utf8Length(uint8_t c) { return c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 1; }

}  // namespace

SpmTokenizer::SpmTokenizer(Vocab vocab) : VocabTokenizer(std::move(vocab)) {
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    byte_ids_[b] = vocab_.Find(name);
  }
}

std::string SpmTokenizer::TokenToPiece(int32_t id) const {
  if (id < 0 || id >= vocab_.size()) return "";
  const std::string& text = vocab_.tokens[id];
  switch (vocab_.types[id]) {
    case TokenType::kControl:
    case TokenType::kUnknown:
    case TokenType::kUserDefined:
      return text;
    case TokenType::kByte:
      if (text.size() == 6 && text.compare(0, 3, "<0x") == 0) {
        return std::string(1, static_cast<char>(std::stoi(text.substr(3, 2), nullptr, 16)));
      }
      return text;
    default:
      break;
  }
  std::string piece;
  for (size_t i = 0; i < text.size();) {
    if (text.compare(i, kSpace.size(), kSpace) == 0) {
      piece += ' ';
      i += kSpace.size();
    } else {
      piece += text[i++];
    }
  }
  return piece;
}

std::string SpmTokenizer::FinishDecode(std::string text) const {
  if (vocab_.add_space_prefix && !text.empty() && text[0] == ' ') text.erase(0, 1);
  return text;
}

void SpmTokenizer::EncodeText(std::string_view raw, bool after_special, std::vector<int32_t>* out) const {
  if (raw.empty()) return;
  std::string text;
  if (vocab_.add_space_prefix && after_special) text += kSpace;
  for (char c : raw) {
    if (c == ' ') {
      text += kSpace;
    } else {
      text += c;
    }
  }
  std::vector<Symbol> symbols;
  for (size_t i = 0; i < text.size();) {
    const size_t n = std::min(Utf8Length(static_cast<uint8_t>(text[i])), text.size() - i);
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({index - 1, index + 1, i, n});
    i += n;
  }
  symbols.back().next = -1;

  std::priority_queue<Bigram, std::vector<Bigram>, BigramOrder> queue;
  std::string scratch;
  auto try_add = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    scratch.assign(text, symbols[left].start, symbols[left].size + symbols[right].size);
    const int32_t id = vocab_.Find(scratch);
    if (id < 0) return;
    queue.push({left, right, vocab_.scores[id], scratch.size()});
  };
  for (size_t i = 1; i < symbols.size(); ++i) try_add(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    if (left.size == 0 || right.size == 0 || left.size + right.size != b.size) continue;  // stale
    left.size += right.size;
    right.size = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    try_add(left.prev, b.left);
    try_add(b.left, left.next);
  }

  for (int i = 0; i >= 0; i = symbols[i].next) {
    const Symbol& s = symbols[i];
    scratch.assign(text, s.start, s.size);
    const int32_t id = vocab_.Find(scratch);
    if (id >= 0) {
      out->push_back(id);
      continue;
    }
    for (size_t k = 0; k < s.size; ++k) {  // no token for this character: byte fallback
      const int32_t byte_id = byte_ids_[static_cast<uint8_t>(scratch[k])];
      if (byte_id >= 0) {
        out->push_back(byte_id);
      } else if (vocab_.unk_id >= 0) {
        out->push_back(vocab_.unk_id);
      }
    }
  }
}

}  // namespace razor
