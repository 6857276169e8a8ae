// The routes of `razor serve`: / (the web page), /health, /v1/models, /metrics, /razor/sequences,
// /v1/completions and /v1/chat/completions (non-streaming JSON or server-sent events), with the API-key check
// (on all but / and /health) and OpenAI-style errors. A request only ever reaches the one model the server was
// started with: nothing here loads, pulls or runs anything.
#pragma once

#include <atomic>
#include <string>

#include "serve/completion_request.h"
#include "serve/http_server.h"
#include "serve/scheduler.h"

namespace razor::serve {

class OpenAiService {
 public:
  OpenAiService(ServedModel model, std::string api_key, Scheduler& scheduler)
      : model_(std::move(model)), api_key_(std::move(api_key)), scheduler_(scheduler) {}
  void Handle(const HttpRequest& request, HttpConnection& connection);

 private:
  void Complete(const HttpRequest& request, HttpConnection& connection, bool chat);
  void Stream(const CompletionRequest& request, JobChannel& channel, HttpConnection& connection);
  void Collect(const CompletionRequest& request, JobChannel& channel, HttpConnection& connection);
  bool Authorized(const HttpRequest& request) const;
  std::string NewId(bool chat);

  ServedModel model_;
  std::string api_key_;
  Scheduler& scheduler_;
  std::atomic<uint64_t> next_id_{0};
};

}  // namespace razor::serve
