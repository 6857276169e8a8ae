// Generated token ids -> UTF-8 text as it becomes safe to show: a token's piece is held until it completes
// a UTF-8 character, and text that may still turn into a stop string is held until it cannot. Shared by
// the generator (razor run) and the server, so both cut text at the same place.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace razor {

class TokenTextStream {
 public:
  // tokenizer nullptr: no text (ids only).
  TokenTextStream(const Tokenizer* tokenizer, std::vector<std::string> stop_strings);
  // Adds one generated token; returns the text now safe to emit. Sets *stopped when a stop string completed:
  // the stop string and anything after it are dropped, and the stream is done.
  std::string Push(int32_t id, bool* stopped);
  // At the end of generation without a stop string: the text still held back.
  std::string Finish();

 private:
  std::string FilterStops(const std::string& text, bool* stopped);
  const Tokenizer* tokenizer_;
  std::vector<std::string> stops_;
  std::string undecoded_;  // bytes of pieces not yet complete UTF-8
  std::string pending_;    // decoded text that may still become a stop string
};

// Length of the longest prefix of s that is complete UTF-8 (an incomplete trailing sequence is held back).
size_t CompleteUtf8Prefix(const std::string& s);

}  // namespace razor
