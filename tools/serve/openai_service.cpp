#include "serve/openai_service.h"

#include <ctime>
#include <random>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "serve/prometheus_metrics.h"
#include "serve/sequence_report.h"
#include "serve/web_page.h"

namespace razor::serve {
namespace {

using nlohmann::json;
constexpr std::chrono::milliseconds kPollInterval{100};  // how often a waiting connection checks its peer

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

bool SendJson(HttpConnection& c, int status, const json& body, const std::vector<HttpHeader>& extra = {}) {
  return c.Send(FormatHttpResponse(status, "application/json", Dump(body), extra));
}

bool SendError(HttpConnection& c, const ApiError& e, const std::vector<HttpHeader>& extra = {}) {
  return c.Send(FormatHttpResponse(e.status, "application/json", e.Body(), extra));
}

json Usage(const JobEvent& done) {
  return {{"prompt_tokens", done.prompt_tokens},
          {"completion_tokens", done.completion_tokens},
          {"total_tokens", done.prompt_tokens + done.completion_tokens}};
}

// One streamed choice: `text` for completions, `delta` for chat.
json Choice(bool chat, const json& delta_or_text, const json& finish_reason) {
  json c = {{"index", 0}, {"finish_reason", finish_reason}};
  if (chat) c["delta"] = delta_or_text;
  else {
    c["text"] = delta_or_text;
    c["logprobs"] = nullptr;
  }
  return c;
}

// Waits for the job's next event; nothing when the client went away (the job is then cancelled).
std::optional<JobEvent> NextEvent(JobChannel& channel, HttpConnection& connection) {
  while (true) {
    if (auto e = channel.Pop(kPollInterval)) return e;
    if (connection.PeerClosed()) {
      channel.Cancel();
      return std::nullopt;
    }
  }
}

}  // namespace

bool OpenAiService::Authorized(const HttpRequest& request) const {
  if (api_key_.empty()) return true;
  const std::string* auth = request.header("authorization");
  return auth != nullptr && *auth == "Bearer " + api_key_;
}

std::string OpenAiService::NewId(bool chat) {
  static const uint64_t salt = std::random_device{}();
  return fmt::format("{}-{:08x}{:08x}", chat ? "chatcmpl" : "cmpl", static_cast<uint32_t>(salt), ++next_id_);
}

void OpenAiService::Handle(const HttpRequest& request, HttpConnection& connection) {
  struct Route {
    const char* path;
    const char* method;
  };
  static constexpr Route kRoutes[] = {{"/", "GET"},
                                      {"/health", "GET"},
                                      {"/v1/models", "GET"},
                                      {"/metrics", "GET"},
                                      {"/razor/sequences", "GET"},
                                      {"/v1/completions", "POST"},
                                      {"/v1/chat/completions", "POST"}};
  const Route* route = nullptr;
  for (const Route& r : kRoutes)
    if (request.path == r.path) route = &r;
  if (route == nullptr)
    return void(SendError(connection, {404, fmt::format("no route for {} {}", request.method, request.path),
                                       "invalid_request_error", "", "not_found"}));
  if (request.method != route->method)
    return void(SendError(connection,
                          {405, fmt::format("{} takes {}, not {}", request.path, route->method, request.method),
                           "invalid_request_error", "", "method_not_allowed"},
                          {{"Allow", route->method}}));
  if (request.path == std::string("/health")) return void(SendJson(connection, 200, {{"status", "ok"}}));
  // The page itself holds no data (it asks for the key and sends it on its own requests).
  if (request.path == std::string("/"))
    return void(connection.Send(FormatHttpResponse(200, "text/html; charset=utf-8", WebPageHtml(),
                                                   {{"Cache-Control", "no-store"}})));
  if (!Authorized(request))
    return void(SendError(connection, {401, "missing or wrong API key (send Authorization: Bearer KEY)",
                                       "invalid_request_error", "", "invalid_api_key"},
                          {{"WWW-Authenticate", "Bearer"}}));
  if (request.path == std::string("/v1/models")) {
    json m = {{"id", model_.id}, {"object", "model"}, {"created", 0}, {"owned_by", "razor"}};
    return void(SendJson(connection, 200, {{"object", "list"}, {"data", json::array({m})}}));
  }
  if (request.path == std::string("/metrics"))
    return void(connection.Send(FormatHttpResponse(200, "text/plain; version=0.0.4",
                                                   FormatPrometheusMetrics(scheduler_.metrics()))));
  if (request.path == std::string("/razor/sequences"))
    return void(SendJson(connection, 200, SequenceReport(scheduler_.metrics(), scheduler_.pool_bytes()),
                         {{"Cache-Control", "no-store"}}));
  Complete(request, connection, request.path == std::string("/v1/chat/completions"));
}

void OpenAiService::Complete(const HttpRequest& request, HttpConnection& connection, bool chat) {
  auto parsed = ParseCompletionRequest(request.body, chat, model_);
  if (auto* e = std::get_if<ApiError>(&parsed)) return void(SendError(connection, *e));
  const CompletionRequest& r = std::get<CompletionRequest>(parsed);
  const int64_t tokens = static_cast<int64_t>(r.job.prompt.size()) + r.job.max_tokens;
  auto need = scheduler_.ReservationBytes(r.job);
  if (!need)
    return void(SendError(connection, {400, need.error(), "invalid_request_error", "", "invalid_kv_policy"}));
  if (*need > scheduler_.pool_bytes())
    return void(SendError(connection, {400,
                                       fmt::format("prompt + max_tokens ({} tokens) need {:.1f} MiB of KV under the {} "
                                                   "policy; the pool holds {:.1f} MiB (lower max_tokens or raise "
                                                   "--kv-pool-mib)",
                                                   tokens, *need / 1048576.0, KvModeName(r.job.kv),
                                                   scheduler_.pool_bytes() / 1048576.0),
                                       "invalid_request_error", "max_tokens", "kv_pool_too_small"}));
  auto channel = scheduler_.Submit(r.job);
  if (!channel)
    return void(SendError(connection, {503, "the request queue is full; retry shortly", "server_error", "", "overloaded"},
                          {{"Retry-After", "1"}}));
  if (r.stream) Stream(r, *channel, connection);
  else Collect(r, *channel, connection);
}

void OpenAiService::Collect(const CompletionRequest& r, JobChannel& channel, HttpConnection& connection) {
  std::string text;
  while (auto e = NextEvent(channel, connection)) {
    if (e->kind == JobEvent::Kind::kText) {
      text += e->text;
      continue;
    }
    if (e->kind == JobEvent::Kind::kFailed)
      return void(SendError(connection, {500, e->error, "server_error", "", "generation_failed"}));
    text += e->text;
    json choice = {{"index", 0}, {"finish_reason", e->finish_reason}};
    if (r.chat) choice["message"] = {{"role", "assistant"}, {"content", text}};
    else {
      choice["text"] = text;
      choice["logprobs"] = nullptr;
    }
    json body = {{"id", NewId(r.chat)},
                 {"object", r.chat ? "chat.completion" : "text_completion"},
                 {"created", static_cast<int64_t>(std::time(nullptr))},
                 {"model", model_.id},
                 {"choices", json::array({choice})},
                 {"usage", Usage(*e)}};
    return void(SendJson(connection, 200, body));
  }
}

void OpenAiService::Stream(const CompletionRequest& r, JobChannel& channel, HttpConnection& connection) {
  const std::string id = NewId(r.chat);
  const int64_t created = static_cast<int64_t>(std::time(nullptr));
  // Every chunk: the same id; `usage` null until the last when the client asked for usage.
  auto send_chunk = [&](json choices, const json* usage) {
    json chunk = {{"id", id},
                  {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
                  {"created", created},
                  {"model", model_.id},
                  {"choices", std::move(choices)}};
    if (r.include_usage) chunk["usage"] = usage ? *usage : json();
    if (connection.Send("data: " + Dump(chunk) + "\n\n")) return true;
    channel.Cancel();  // the client left: its sequence is dropped at the scheduler's next step
    return false;
  };
  if (!connection.Send(FormatStreamHead("text/event-stream"))) return channel.Cancel();
  if (r.chat && !send_chunk(json::array({Choice(true, {{"role", "assistant"}, {"content", ""}}, nullptr)}), nullptr))
    return;
  auto content = [&](const std::string& text) { return r.chat ? json{{"content", text}} : json(text); };
  while (auto e = NextEvent(channel, connection)) {
    if (e->kind == JobEvent::Kind::kText) {
      if (!send_chunk(json::array({Choice(r.chat, content(e->text), nullptr)}), nullptr)) return;
      continue;
    }
    if (e->kind == JobEvent::Kind::kFailed) {
      connection.Send("data: " + ApiError{500, e->error, "server_error", "", "generation_failed"}.Body() + "\n\n");
      return;
    }
    const json last = r.chat && e->text.empty() ? json::object() : content(e->text);
    if (!send_chunk(json::array({Choice(r.chat, last, e->finish_reason)}), nullptr)) return;
    if (r.include_usage) {
      const json usage = Usage(*e);
      if (!send_chunk(json::array(), &usage)) return;
    }
    connection.Send("data: [DONE]\n\n");
    return;
  }
}

}  // namespace razor::serve
