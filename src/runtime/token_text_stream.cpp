#include "runtime/token_text_stream.h"

#include <algorithm>
#include <utility>

namespace razor {

size_t CompleteUtf8Prefix(const std::string& s) {
  // Walk back over at most 3 continuation bytes to the last lead byte and check its sequence is whole.
  size_t n = s.size();
  size_t i = n;
  int cont = 0;
  while (i > 0 && cont < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) {
    --i;
    ++cont;
  }
  if (i == 0) return n;  // only continuation bytes: nothing sensible to hold
  const unsigned char lead = static_cast<unsigned char>(s[i - 1]);
  int need = 0;
  if ((lead & 0x80) == 0) need = 0;
  else if ((lead & 0xE0) == 0xC0) need = 1;
  else if ((lead & 0xF0) == 0xE0) need = 2;
  else if ((lead & 0xF8) == 0xF0) need = 3;
  else return n;  // invalid lead byte: emit as is
  return cont >= need ? n : i - 1;
}

TokenTextStream::TokenTextStream(const Tokenizer* tokenizer, std::vector<std::string> stop_strings)
    : tokenizer_(tokenizer), stops_(std::move(stop_strings)) {}

std::string TokenTextStream::Push(int32_t id, bool* stopped) {
  if (tokenizer_ == nullptr) return {};
  undecoded_ += tokenizer_->TokenToPiece(id);
  const size_t whole = CompleteUtf8Prefix(undecoded_);
  std::string out = FilterStops(undecoded_.substr(0, whole), stopped);
  undecoded_.erase(0, whole);
  return out;
}

std::string TokenTextStream::Finish() {
  bool ignored = false;
  std::string out = FilterStops(std::exchange(undecoded_, {}), &ignored);
  return out + std::exchange(pending_, {});
}

std::string TokenTextStream::FilterStops(const std::string& text, bool* stopped) {
  pending_ += text;
  for (const auto& s : stops_) {
    if (s.empty()) continue;
    size_t at = pending_.find(s);
    if (at != std::string::npos) {
      *stopped = true;
      std::string out = pending_.substr(0, at);
      pending_.clear();
      return out;
    }
  }
  size_t hold = 0;  // longest suffix of pending_ that is a proper prefix of some stop string
  for (const auto& s : stops_)
    for (size_t k = std::min(s.size() - (s.empty() ? 0 : 1), pending_.size()); k > hold; --k)
      if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
        hold = k;
        break;
      }
  std::string out = pending_.substr(0, pending_.size() - hold);
  pending_.erase(0, pending_.size() - hold);
  return out;
}

}  // namespace razor
