// Text <-> token ids for the vocabularies razor ships: byte-level BPE (gpt2-style, pre-tokenizers
// llama-bpe / qwen2 / smollm / gpt-2) and SentencePiece-style BPE (llama-spm).
// Built from GGUF metadata (tokenizer.ggml.*) or from a Hugging Face tokenizer.json.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace razor {

class GgufFile;

struct ChatMessage {
  std::string role;     // "system" | "user" | "assistant"
  std::string content;
};

enum class ChatTemplateKind { kNone, kChatML, kLlama3 };

class Tokenizer {
 public:
  static Result<std::shared_ptr<Tokenizer>> FromGguf(const GgufFile& gguf);
  // `dir` holds tokenizer.json (and optionally tokenizer_config.json for the chat template / bos flags).
  static Result<std::shared_ptr<Tokenizer>> FromHfDir(const std::string& dir);
  virtual ~Tokenizer() = default;

  // add_bos: prepend BOS when the vocabulary asks for it (add_bos_token); parse_special: text like
  // "<|im_start|>" becomes its special id instead of being split into ordinary pieces.
  virtual std::vector<int32_t> Encode(std::string_view text, bool add_bos, bool parse_special) const = 0;
  // Bytes of one token as it appears in text (may be a partial UTF-8 sequence for byte-level BPE).
  virtual std::string TokenToPiece(int32_t id) const = 0;
  virtual std::string Decode(const std::vector<int32_t>& ids) const = 0;  // special tokens rendered as text

  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;   // -1 when absent
  virtual int32_t eos_id() const = 0;   // -1 when absent
  virtual bool add_bos() const = 0;
  virtual bool IsEndOfGeneration(int32_t id) const = 0;  // EOS, <|im_end|>, <|eot_id|>, <|endoftext|> ...
  virtual bool IsSpecial(int32_t id) const = 0;          // control / user-defined special tokens

  virtual ChatTemplateKind chat_template_kind() const = 0;
  // Whether the model ships a chat template at all (kNone with one: a format razor does not render).
  virtual bool has_chat_template() const = 0;
  // The prompt text for `messages` in the model's chat format, ending with the assistant header when
  // add_generation_prompt. Error when the model has no recognised chat template.
  virtual Result<std::string> ApplyChatTemplate(const std::vector<ChatMessage>& messages,
                                                bool add_generation_prompt) const = 0;
};

}  // namespace razor
