#include "tokenizer/bpe_tokenizer.h"

#include <array>
#include <climits>

namespace razor {

namespace {

std::string EncodeUtf8(uint32_t cp) {
  std::string s;
  if (cp < 0x80) {
    s += static_cast<char>(cp);
  } else if (cp < 0x800) {
    s += static_cast<char>(0xC0 | (cp >> 6));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    s += static_cast<char>(0xE0 | (cp >> 12));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    s += static_cast<char>(0xF0 | (cp >> 18));
    s += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    s += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    s += static_cast<char>(0x80 | (cp & 0x3F));
  }
  return s;
}

// Printable Latin-1 bytes stand for themselves; the other 68 bytes take code points 256, 257, ...
struct ByteAlphabet {
  std::array<std::string, 256> to_unicode;
  std::array<int, 512> from_unicode;  // every code point of the alphabet is < 324
  ByteAlphabet() {
    from_unicode.fill(-1);
    int next = 256;
    for (int b = 0; b < 256; ++b) {
      const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const int cp = printable ? b : next++;
      to_unicode[b] = EncodeUtf8(cp);
      from_unicode[cp] = b;
    }
  }
};

const ByteAlphabet& Alphabet() {
  static const ByteAlphabet alphabet;
  return alphabet;
}

// Decodes one UTF-8 sequence at s[i]; returns its length (1 for an invalid byte, *cp = UINT32_MAX).
size_t NextCodepoint(std::string_view s, size_t i, uint32_t* cp) {
  const auto c = static_cast<uint8_t>(s[i]);
  size_t len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + len > s.size()) {
    *cp = UINT32_MAX;
    return 1;
  }
  uint32_t v = len == 1 ? c : len == 2 ? (c & 0x1F) : len == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < len; ++k) {
    const auto cc = static_cast<uint8_t>(s[i + k]);
    if ((cc & 0xC0) != 0x80) {
      *cp = UINT32_MAX;
      return 1;
    }
    v = (v << 6) | (cc & 0x3F);
  }
  *cp = v;
  return len;
}

// Token text in the byte alphabet -> raw bytes. Characters outside the alphabet are kept as they are.
std::string DecodeByteLevel(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size();) {
    uint32_t cp = 0;
    const size_t len = NextCodepoint(text, i, &cp);
    const int byte = cp < 512 ? Alphabet().from_unicode[cp] : -1;
    if (byte >= 0) {
      out += static_cast<char>(byte);
    } else {
      out.append(text.substr(i, len));
    }
    i += len;
  }
  return out;
}

}  // namespace

const std::string& ByteToUnicode(uint8_t byte) { return Alphabet().to_unicode[byte]; }
int ByteFromUnicode(uint32_t codepoint) { return codepoint < 512 ? Alphabet().from_unicode[codepoint] : -1; }

BpeTokenizer::BpeTokenizer(Vocab vocab, PreTokenizer pre_tokenizer)
    : VocabTokenizer(std::move(vocab)), pre_tokenizer_(std::move(pre_tokenizer)) {
  decoded_.resize(vocab_.tokens.size());
  for (int32_t id = 0; id < vocab_.size(); ++id) {
    const TokenType t = vocab_.types[id];
    const bool raw = t == TokenType::kControl || t == TokenType::kUserDefined || t == TokenType::kUnknown;
    decoded_[id] = raw ? vocab_.tokens[id] : DecodeByteLevel(vocab_.tokens[id]);
  }
}

std::string BpeTokenizer::TokenToPiece(int32_t id) const {
  if (id < 0 || id >= vocab_.size()) return "";
  return decoded_[id];
}

void BpeTokenizer::EncodeText(std::string_view text, bool after_special, std::vector<int32_t>* out) const {
  if (text.empty()) return;
  std::string prefixed;
  if (vocab_.add_space_prefix && after_special && text[0] != ' ') {
    prefixed = " ";
    prefixed.append(text);
    text = prefixed;
  }
  for (std::string_view word : pre_tokenizer_.Split(text)) EncodeWord(word, out);
}

int32_t BpeTokenizer::MergeRank(std::string_view left, std::string_view right, std::string* scratch) const {
  scratch->assign(left);
  scratch->push_back(' ');
  scratch->append(right);
  auto it = vocab_.merge_rank.find(*scratch);
  return it == vocab_.merge_rank.end() ? INT_MAX : it->second;
}

void BpeTokenizer::EncodeWord(std::string_view word, std::vector<int32_t>* out) const {
  std::string mapped;  // the word in the byte alphabet
  mapped.reserve(word.size() * 2);
  std::vector<std::string_view> symbols;  // views into `mapped`, one per byte to start with
  std::vector<size_t> starts;
  for (char c : word) {
    starts.push_back(mapped.size());
    mapped += ByteToUnicode(static_cast<uint8_t>(c));
  }
  if (vocab_.ignore_merges) {
    const int32_t id = vocab_.Find(mapped);
    if (id >= 0) {
      out->push_back(id);
      return;
    }
  }
  for (size_t i = 0; i < starts.size(); ++i) {
    const size_t end = i + 1 < starts.size() ? starts[i + 1] : mapped.size();
    symbols.emplace_back(mapped.data() + starts[i], end - starts[i]);
  }
  // ranks[i]: rank of merging symbols[i] and symbols[i + 1]. Lowest rank first, leftmost on ties.
  std::string scratch;
  std::vector<int32_t> ranks(symbols.size() > 0 ? symbols.size() - 1 : 0);
  for (size_t i = 0; i + 1 < symbols.size(); ++i) ranks[i] = MergeRank(symbols[i], symbols[i + 1], &scratch);
  while (!ranks.empty()) {
    size_t best = 0;
    for (size_t i = 1; i < ranks.size(); ++i) {
      if (ranks[i] < ranks[best]) best = i;
    }
    if (ranks[best] == INT_MAX) break;
    symbols[best] = std::string_view(symbols[best].data(), symbols[best].size() + symbols[best + 1].size());
    symbols.erase(symbols.begin() + best + 1);
    ranks.erase(ranks.begin() + best);
    if (best > 0) ranks[best - 1] = MergeRank(symbols[best - 1], symbols[best], &scratch);
    if (best < ranks.size()) ranks[best] = MergeRank(symbols[best], symbols[best + 1], &scratch);
  }
  for (std::string_view s : symbols) {
    const int32_t id = vocab_.Find(std::string(s));
    if (id >= 0) {
      out->push_back(id);
      continue;
    }
    // Not in the vocabulary (a merge result without a token, or a byte the vocab lacks): per byte.
    for (size_t i = 0; i < s.size();) {
      uint32_t cp = 0;
      const size_t len = NextCodepoint(s, i, &cp);
      const int32_t byte_id = vocab_.Find(std::string(s.substr(i, len)));
      if (byte_id >= 0) {
        out->push_back(byte_id);
      } else if (vocab_.unk_id >= 0) {
        out->push_back(vocab_.unk_id);
      }
      i += len;
    }
  }
}

}  // namespace razor
