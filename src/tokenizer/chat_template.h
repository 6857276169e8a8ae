// Chat formats recognised from a model's Jinja chat template text. We do not run Jinja: we detect
// the family (ChatML or Llama 3) and read the few choices the template makes from its text
// (a default system prompt, trimming, BOS prefix, whether the assistant header is conditional).
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace razor {

struct ChatFormat {
  ChatTemplateKind kind = ChatTemplateKind::kNone;
  // ChatML: the system message the template inserts when the first message is not a system one
  // (SmolLM2: "You are a helpful AI assistant named SmolLM, trained by Hugging Face"); "" for none.
  std::string default_system;
  bool trim_content = false;              // Llama 3: message['content'] | trim
  bool bos_prefix = false;                // Llama 3: bos_token + the first message
  bool generation_prompt_always = false;  // the template adds the assistant header without add_generation_prompt
  // Qwen3: assistant turns after the last user turn carry a <think>...</think> block (empty when the
  // message has none); "<think>..</think>" inside earlier assistant turns is dropped.
  bool think_blocks = false;
};

ChatFormat DetectChatFormat(const std::string& jinja);

// `bos_text`: the BOS token's text, used when format.bos_prefix.
Result<std::string> RenderChat(const ChatFormat& format, const std::string& bos_text,
                               const std::vector<ChatMessage>& messages, bool add_generation_prompt);

}  // namespace razor
