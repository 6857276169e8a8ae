#include "serve/completion_request.h"

#include <cmath>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

namespace razor::serve {
namespace {

using nlohmann::json;

ApiError Invalid(std::string param, std::string message, std::string code = "") {
  return ApiError{400, std::move(message), "invalid_request_error", std::move(param), std::move(code)};
}

// Reads an optional number field in [lo, hi] (open at lo when lo_open) into *out.
std::optional<ApiError> Number(const json& body, const char* name, double lo, double hi, bool lo_open,
                               double* out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number()) return Invalid(name, fmt::format("'{}' must be a number", name));
  const double v = it->get<double>();
  if (!std::isfinite(v) || v > hi || v < lo || (lo_open && v == lo))
    return Invalid(name, fmt::format("'{}' is {}; it must be in {}{}, {}]", name, v, lo_open ? "(" : "[", lo, hi));
  *out = v;
  return std::nullopt;
}

// An optional integer field in [lo, hi]; *present tells whether it was given.
std::optional<ApiError> Integer(const json& body, const char* name, int64_t lo, int64_t hi, int64_t* out,
                                bool* present = nullptr) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_number_integer()) return Invalid(name, fmt::format("'{}' must be an integer", name));
  const bool negative = it->is_number_unsigned() ? false : it->get<int64_t>() < 0;
  if (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(INT64_MAX))
    return Invalid(name, fmt::format("'{}' is out of range", name));
  const int64_t v = negative ? it->get<int64_t>() : static_cast<int64_t>(it->get<uint64_t>());
  if (v < lo || v > hi) return Invalid(name, fmt::format("'{}' is {}; it must be in [{}, {}]", name, v, lo, hi));
  *out = v;
  if (present) *present = true;
  return std::nullopt;
}

std::optional<ApiError> Bool(const json& body, const char* name, bool* out) {
  auto it = body.find(name);
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean()) return Invalid(name, fmt::format("'{}' must be true or false", name));
  *out = it->get<bool>();
  return std::nullopt;
}

// Message content: a string, or an array of {"type": "text", "text": ...} parts.
std::optional<ApiError> Content(const json& c, std::string* out) {
  if (c.is_string()) {
    *out = c.get<std::string>();
    return std::nullopt;
  }
  if (!c.is_array()) return Invalid("messages", "a message's 'content' must be a string or an array of text parts");
  for (const auto& part : c) {
    if (!part.is_object() || part.value("type", json()) != "text" || !part.contains("text") || !part["text"].is_string())
      return Invalid("messages", "only text content parts ({\"type\": \"text\", \"text\": ...}) are supported");
    *out += part["text"].get<std::string>();
  }
  return std::nullopt;
}

// The prompt's token ids, from `messages` (chat) or `prompt`.
std::optional<ApiError> PromptIds(const json& body, bool chat, const Tokenizer& tok, std::vector<int32_t>* ids) {
  if (chat) {
    auto it = body.find("messages");
    if (it == body.end()) return Invalid("messages", "'messages' is required");
    if (!it->is_array() || it->empty()) return Invalid("messages", "'messages' must be a non-empty array");
    std::vector<ChatMessage> msgs;
    for (const auto& m : *it) {
      if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
        return Invalid("messages", "every message must be an object with a string 'role'");
      ChatMessage msg{m["role"].get<std::string>(), ""};
      if (msg.role != "system" && msg.role != "user" && msg.role != "assistant" && msg.role != "developer")
        return Invalid("messages", fmt::format("unsupported message role '{}'", msg.role));
      if (msg.role == "developer") msg.role = "system";
      if (!m.contains("content")) return Invalid("messages", "every message needs 'content'");
      if (auto e = Content(m["content"], &msg.content)) return e;
      msgs.push_back(std::move(msg));
    }
    auto rendered = tok.ApplyChatTemplate(msgs, true);
    if (!rendered) return Invalid("messages", rendered.error());
    *ids = tok.Encode(*rendered, /*add_bos=*/false, /*parse_special=*/true);  // as `razor run --chat`
    return std::nullopt;
  }
  auto it = body.find("prompt");
  if (it == body.end()) return Invalid("prompt", "'prompt' is required");
  const json* p = &*it;
  if (p->is_array() && p->size() == 1 && (*p)[0].is_string()) p = &(*p)[0];
  if (!p->is_string()) return Invalid("prompt", "'prompt' must be a string (or an array of one string)");
  const std::string text = p->get<std::string>();
  if (text.empty()) return Invalid("prompt", "'prompt' is empty");
  *ids = tok.Encode(text, /*add_bos=*/true, /*parse_special=*/false);  // as `razor run`
  return std::nullopt;
}

std::optional<ApiError> Stops(const json& body, std::vector<std::string>* out) {
  auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) {
    out->push_back(it->get<std::string>());
    return std::nullopt;
  }
  if (!it->is_array() || it->size() > 16) return Invalid("stop", "'stop' must be a string or an array of up to 16 strings");
  for (const auto& s : *it) {
    if (!s.is_string()) return Invalid("stop", "'stop' must be a string or an array of strings");
    out->push_back(s.get<std::string>());
  }
  return std::nullopt;
}

std::optional<ApiError> Parse(const json& body, bool chat, const ServedModel& model, CompletionRequest* r) {
  if (!body.is_object()) return Invalid("", "the request body must be a JSON object");
  r->chat = chat;
  if (auto it = body.find("model"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) return Invalid("model", "'model' must be a string");
    if (it->get<std::string>() != model.id)
      return ApiError{404, fmt::format("the model '{}' does not exist; this server serves '{}'", it->get<std::string>(),
                                       model.id),
                      "invalid_request_error", "model", "model_not_found"};
  }
  int64_t n = 1;
  if (auto e = Integer(body, "n", 1, 1, &n)) return Invalid("n", "'n' must be 1 (one choice per request)");
  if (auto e = Bool(body, "stream", &r->stream)) return e;
  if (auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return Invalid("stream_options", "'stream_options' must be an object");
    if (auto e = Bool(*it, "include_usage", &r->include_usage)) return e;
  }
  // OpenAI's defaults: temperature 1, top_p 1; top_k / min_p / repetition_penalty off unless asked for.
  SamplerParams& s = r->job.sampler;
  double temperature = 1.0, top_p = 1.0, min_p = 0.0, repetition_penalty = 1.0;
  int64_t top_k = 0, seed = 0;
  if (auto e = Number(body, "temperature", 0.0, 2.0, false, &temperature)) return e;
  if (auto e = Number(body, "top_p", 0.0, 1.0, true, &top_p)) return e;
  if (auto e = Number(body, "min_p", 0.0, 1.0, false, &min_p)) return e;
  if (auto e = Number(body, "repetition_penalty", 0.0, 10.0, true, &repetition_penalty)) return e;
  if (auto e = Integer(body, "top_k", 0, 1 << 30, &top_k)) return e;
  if (auto e = Integer(body, "seed", INT64_MIN, INT64_MAX, &seed)) return e;
  for (const char* unsupported : {"presence_penalty", "frequency_penalty"}) {
    double v = 0;
    if (auto e = Number(body, unsupported, -2.0, 2.0, false, &v)) return e;
    if (v != 0) return Invalid(unsupported, fmt::format("'{}' is not supported by this server (only 0)", unsupported));
  }
  s.temperature = static_cast<float>(temperature);
  s.top_p = static_cast<float>(top_p);
  s.min_p = static_cast<float>(min_p);
  s.repeat_penalty = static_cast<float>(repetition_penalty);
  s.top_k = static_cast<int>(top_k);
  s.seed = static_cast<uint64_t>(seed);
  if (auto e = Stops(body, &r->job.stops)) return e;

  r->job.kv = model.default_kv;
  if (auto it = body.find("razor"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return Invalid("razor", "'razor' must be an object, e.g. {\"kv\": \"razor\"}");
    if (auto kv = it->find("kv"); kv != it->end() && !kv->is_null()) {
      if (!kv->is_string()) return Invalid("razor.kv", "'razor.kv' must be \"full\", \"razor\" or \"streaming\"");
      auto mode = ParseKvMode(kv->get<std::string>());
      if (!mode) return Invalid("razor.kv", "'razor.kv': " + mode.error());
      if (*mode != KvMode::kFull && !model.has_profile)
        return Invalid("razor.kv", fmt::format("'razor.kv' {} needs a head profile; start the server with --kv razor "
                                               "or --kv streaming to load one", kv->get<std::string>()));
      r->job.kv = *mode;
    }
  }

  if (auto e = PromptIds(body, chat, *model.tokenizer, &r->job.prompt)) return e;
  const int64_t prompt = static_cast<int64_t>(r->job.prompt.size());
  if (prompt == 0) return Invalid(chat ? "messages" : "prompt", "the prompt encodes to zero tokens");
  if (prompt >= model.context)
    return Invalid(chat ? "messages" : "prompt",
                   fmt::format("the prompt is {} tokens; this server's context is {} (prompt + at least 1 generated)",
                               prompt, model.context),
                   "context_length_exceeded");
  const int64_t room = model.context - prompt;
  // Defaults: 16 tokens for completions (OpenAI's), the rest of the context for chat.
  int64_t max_tokens = chat ? room : std::min<int64_t>(16, room);
  bool given = false;
  const char* field = chat && body.contains("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  if (auto e = Integer(body, field, 1, INT64_MAX, &max_tokens, &given)) return e;
  if (given && max_tokens > room)
    return Invalid(field, fmt::format("'{}' is {}, but the prompt of {} tokens leaves room for {} in the context of {}",
                                      field, max_tokens, prompt, room, model.context),
                   "context_length_exceeded");
  r->job.max_tokens = max_tokens;
  return std::nullopt;
}

}  // namespace

std::variant<CompletionRequest, ApiError> ParseCompletionRequest(const std::string& body, bool chat,
                                                                 const ServedModel& model) {
  const json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return Invalid("", "the request body is not valid JSON");
  CompletionRequest r;
  if (auto e = Parse(parsed, chat, model, &r)) return *e;
  return r;
}

}  // namespace razor::serve
