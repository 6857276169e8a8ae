// Validation of a /v1/completions or /v1/chat/completions body: every field the server reads is checked for
// type and range (OpenAI's rules where it has them), the prompt is rendered (chat template) and tokenized,
// and the result is a GenerationJob, or the ApiError to answer. Fields the server does not know are ignored.
#pragma once

#include <string>
#include <variant>

#include "serve/api_error.h"
#include "serve/scheduler.h"
#include "tokenizer/tokenizer.h"

namespace razor::serve {

// What validation needs to know about the served model.
struct ServedModel {
  std::string id;                  // the `model` a request may name
  const Tokenizer* tokenizer = nullptr;
  int64_t context = 0;             // most tokens of a sequence
  KvMode default_kv = KvMode::kFull;
  bool has_profile = false;        // razor / streaming need the head profile loaded at start
};

struct CompletionRequest {
  GenerationJob job;
  bool chat = false;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
};

std::variant<CompletionRequest, ApiError> ParseCompletionRequest(const std::string& body, bool chat,
                                                                 const ServedModel& model);

}  // namespace razor::serve
