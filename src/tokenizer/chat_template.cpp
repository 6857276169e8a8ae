#include "tokenizer/chat_template.h"

namespace razor {

namespace {

bool Contains(const std::string& s, const char* needle) { return s.find(needle) != std::string::npos; }

// Jinja string literals write a newline as "\n"; GGUF/JSON loaders may already have unescaped it.
std::string UnescapeNewlines(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '\\' && i + 1 < s.size() && s[i + 1] == 'n') {
      out += '\n';
      ++i;
    } else {
      out += s[i];
    }
  }
  return out;
}

// A literal '<|im_start|>system\n...<|im_end|>' whose body is plain text (no quote, no expression)
// is a default system prompt.
std::string FindDefaultSystem(const std::string& jinja) {
  const std::string head = "<|im_start|>system";
  for (size_t pos = jinja.find(head); pos != std::string::npos; pos = jinja.find(head, pos + 1)) {
    size_t body = pos + head.size();
    if (jinja.compare(body, 1, "\n") == 0) {
      body += 1;
    } else if (jinja.compare(body, 2, "\\n") == 0) {
      body += 2;
    } else {
      continue;
    }
    const size_t end = jinja.find("<|im_end|>", body);
    if (end == std::string::npos || end == body) continue;
    const std::string text = jinja.substr(body, end - body);
    if (text.find_first_of("'\"{}+") != std::string::npos) continue;  // an expression, not a literal
    return UnescapeNewlines(text);
  }
  return "";
}

std::string Trim(const std::string& s, const char* ws = " \t\n\r\v\f") {
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  const size_t e = s.find_last_not_of(ws);
  return s.substr(b, e - b + 1);
}

std::string LeftTrimNewlines(const std::string& s) {
  const size_t b = s.find_first_not_of('\n');
  return b == std::string::npos ? "" : s.substr(b);
}

// Qwen3's assistant turn: reasoning split off at "</think>", re-rendered as a think block after the
// last user query (always on the last message), dropped before it.
std::string QwenAssistantContent(const std::string& raw, bool after_last_query, bool last) {
  std::string content = raw;
  std::string reasoning;
  const size_t close = raw.rfind("</think>");
  if (close != std::string::npos) {
    content = LeftTrimNewlines(raw.substr(close + 8));
    std::string before = raw.substr(0, raw.find("</think>"));
    before = before.substr(0, before.find_last_not_of('\n') + 1);
    const size_t open = before.rfind("<think>");
    reasoning = LeftTrimNewlines(open == std::string::npos ? before : before.substr(open + 7));
  }
  if (after_last_query && (last || !reasoning.empty())) {
    return "<think>\n" + Trim(reasoning, "\n") + "\n</think>\n\n" + LeftTrimNewlines(content);
  }
  return content;
}

}  // namespace

ChatFormat DetectChatFormat(const std::string& jinja) {
  ChatFormat f;
  if (Contains(jinja, "<|im_start|>")) {
    f.kind = ChatTemplateKind::kChatML;
    f.default_system = FindDefaultSystem(jinja);
    f.think_blocks = Contains(jinja, "last_query_index") && Contains(jinja, "<think>");
  } else if (Contains(jinja, "<|start_header_id|>")) {
    f.kind = ChatTemplateKind::kLlama3;
    f.trim_content = Contains(jinja, "| trim") || Contains(jinja, "|trim");
    f.bos_prefix = Contains(jinja, "bos_token");
  }
  f.generation_prompt_always = f.kind != ChatTemplateKind::kNone && !Contains(jinja, "add_generation_prompt");
  return f;
}

Result<std::string> RenderChat(const ChatFormat& format, const std::string& bos_text,
                               const std::vector<ChatMessage>& messages, bool add_generation_prompt) {
  const bool generation = add_generation_prompt || format.generation_prompt_always;
  std::string out;
  switch (format.kind) {
    case ChatTemplateKind::kChatML: {
      if (!format.default_system.empty() && !messages.empty() && messages[0].role != "system") {
        out += "<|im_start|>system\n" + format.default_system + "<|im_end|>\n";
      }
      size_t last_query = messages.size();  // index of the last user message
      for (size_t i = 0; i < messages.size(); ++i) {
        if (messages[i].role == "user") last_query = i;
      }
      for (size_t i = 0; i < messages.size(); ++i) {
        const ChatMessage& m = messages[i];
        std::string content = m.content;
        if (format.think_blocks && m.role == "assistant") {
          const bool after = last_query < messages.size() && i > last_query;
          content = QwenAssistantContent(m.content, after, i + 1 == messages.size());
        }
        out += "<|im_start|>" + m.role + "\n" + content + "<|im_end|>\n";
      }
      if (generation) out += "<|im_start|>assistant\n";
      return out;
    }
    case ChatTemplateKind::kLlama3: {
      for (size_t i = 0; i < messages.size(); ++i) {
        if (i == 0 && format.bos_prefix) out += bos_text;
        const std::string content = format.trim_content ? Trim(messages[i].content) : messages[i].content;
        out += "<|start_header_id|>" + messages[i].role + "<|end_header_id|>\n\n" + content + "<|eot_id|>";
      }
      if (generation) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      return out;
    }
    case ChatTemplateKind::kNone:
      break;
  }
  return Err("the model has no recognised chat template (supported: ChatML, Llama 3)");
}

}  // namespace razor
