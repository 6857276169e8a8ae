// The vocabulary of a tokenizer, independent of its source: token texts and types, SPM scores,
// BPE merge ranks, special ids and the chat template text. Built from GGUF (tokenizer.ggml.*) or
// from a Hugging Face tokenizer.json (+ tokenizer_config.json).
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace razor {

class GgufFile;

// Same numbering as GGUF's tokenizer.ggml.token_type.
enum class TokenType : int32_t {
  kUndefined = 0, kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6,
};

enum class VocabModel { kBytePairGpt2, kSentencePieceBpe };

struct Vocab {
  VocabModel model = VocabModel::kBytePairGpt2;
  std::vector<std::string> tokens;  // id -> text (byte-level BPE: in the bytes<->unicode alphabet)
  std::vector<TokenType> types;     // id -> type
  std::vector<float> scores;        // id -> score (SPM only; empty otherwise)
  std::unordered_map<std::string, int32_t> token_to_id;
  // BPE: "left right" -> rank (0 = merged first).
  std::unordered_map<std::string, int32_t> merge_rank;
  bool ignore_merges = false;     // a word that is itself a token is not merged (Llama 3)
  bool add_space_prefix = false;  // SPM: "Hello" is encoded as "▁Hello"; byte-level: " Hello"
  bool add_bos = false;
  int32_t bos_id = -1, eos_id = -1, unk_id = -1;
  std::vector<int32_t> end_of_generation_ids;  // sorted
  std::string pre;            // GGUF tokenizer.ggml.pre ("" for tokenizer.json)
  std::string chat_template;  // Jinja text, "" when absent

  int32_t size() const { return static_cast<int32_t>(tokens.size()); }
  int32_t Find(const std::string& text) const {
    auto it = token_to_id.find(text);
    return it == token_to_id.end() ? -1 : it->second;
  }
  bool IsSpecial(int32_t id) const {
    return id >= 0 && id < size() &&
           (types[id] == TokenType::kControl || types[id] == TokenType::kUserDefined ||
            types[id] == TokenType::kUnknown);
  }
  // Fills token_to_id and end_of_generation_ids (EOS plus the usual end-of-turn texts).
  void Finish();
};

Result<Vocab> VocabFromGguf(const GgufFile& gguf);
// `tokenizer`: parsed tokenizer.json; `config`: parsed tokenizer_config.json (null json when absent).
// Only model type BPE is supported. The pre-tokenizer is built separately from the same JSON.
Result<Vocab> VocabFromHfJson(const nlohmann::json& tokenizer, const nlohmann::json& config);

}  // namespace razor
