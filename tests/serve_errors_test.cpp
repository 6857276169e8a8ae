// razor serve's answers to bad requests: every class answers its 4xx with an OpenAI-style JSON error body,
// and the server still serves /health afterwards (no crash, no hang).
#include <gtest/gtest.h>

#include <chrono>

#include "serve_test_support.h"

namespace {

using razor::testing_serve::json;
using namespace razor::testing_serve;

void ExpectError(const HttpReply& r, int status, const std::string& code = "") {
  EXPECT_EQ(r.status, status) << r.body;
  const json j = r.Json();
  ASSERT_TRUE(j.is_object() && j.contains("error")) << r.body;
  EXPECT_TRUE(j["error"]["message"].is_string()) << r.body;
  EXPECT_TRUE(j["error"]["type"].is_string()) << r.body;
  if (!code.empty()) {
    EXPECT_EQ(j["error"]["code"], code) << r.body;
  }
}

json Prompt(json extra = json::object()) {
  json b = {{"prompt", "Hello"}, {"max_tokens", 2}};
  b.update(extra);
  return b;
}

TEST(ServeErrors, EveryBadRequestGetsItsCode) {
  RAZOR_SERVE_TEST_START(server, "");
  const int port = server.port();
  ExpectError(RawRequest(port, FormatRequest("POST", "/v1/completions", "{\"prompt\": ")), 400);
  ExpectError(RawRequest(port, FormatRequest("POST", "/v1/completions", "[1, 2]")), 400);
  ExpectError(Post(port, "/v1/completions", {{"max_tokens", 2}}), 400);                       // no prompt
  ExpectError(Post(port, "/v1/chat/completions", {{"max_tokens", 2}}), 400);                  // no messages
  ExpectError(Post(port, "/v1/chat/completions", {{"messages", json::array()}}), 400);
  ExpectError(Post(port, "/v1/chat/completions", {{"messages", json::array({{{"role", 3}}})}}), 400);
  ExpectError(Post(port, "/v1/completions", Prompt({{"prompt", 42}})), 400);                  // wrong type
  ExpectError(Post(port, "/v1/completions", Prompt({{"temperature", "hot"}})), 400);
  ExpectError(Post(port, "/v1/completions", Prompt({{"stream", "yes"}})), 400);
  ExpectError(Post(port, "/v1/completions", Prompt({{"stop", json::array({1})}})), 400);
  ExpectError(Post(port, "/v1/completions", Prompt({{"temperature", -0.5}})), 400);
  ExpectError(Post(port, "/v1/completions", Prompt({{"temperature", 2.5}})), 400);
  ExpectError(Post(port, "/v1/completions", Prompt({{"top_p", 0}})), 400);
  ExpectError(Post(port, "/v1/completions", Prompt({{"top_p", 1.5}})), 400);
  ExpectError(Post(port, "/v1/completions", Prompt({{"max_tokens", 0}})), 400);
  ExpectError(Post(port, "/v1/completions", Prompt({{"max_tokens", 5000}})), 400, "context_length_exceeded");
  ExpectError(Post(port, "/v1/completions", Prompt({{"n", 2}})), 400);
  ExpectError(Post(port, "/v1/completions", Prompt({{"razor", {{"kv", "razor"}}}})), 400);  // no profile loaded
  ExpectError(Post(port, "/v1/completions", Prompt({{"razor", {{"kv", "bogus"}}}})), 400);
  std::string long_prompt;
  for (int i = 0; i < 3000; ++i) long_prompt += " word";
  ExpectError(Post(port, "/v1/completions", Prompt({{"prompt", long_prompt}})), 400, "context_length_exceeded");
  ExpectError(Post(port, "/v1/completions", Prompt({{"model", "gpt-4"}})), 404, "model_not_found");
  ExpectError(Get(port, "/v1/nothing"), 404);
  ExpectError(Get(port, "/v1/completions"), 405);
  ExpectError(Post(port, "/health", json::object()), 405);
  ExpectError(RawRequest(port, FormatRequest("POST", "/v1/completions", std::string(2 << 20, ' '))), 413);
  ExpectError(RawRequest(port, "POST /v1/completions HTTP/1.1\r\nHost: x\r\n\r\n"), 411);  // no Content-Length
  ExpectError(RawRequest(port, "NONSENSE\r\n\r\n"), 400);
  ExpectError(RawRequest(port, "GET / HTTP/1.1\r\n" + std::string(20 << 10, 'x') + "\r\n\r\n"), 431);
  // Two Content-Length fields that disagree: where the body ends is ambiguous (RFC 9112 6.3), so 400, never 200.
  const std::string body = R"({"prompt":"Hi","max_tokens":1})";
  ExpectError(RawRequest(port, "POST /v1/completions HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: " +
                                   std::to_string(body.size()) + "\r\n\r\n" + body), 400);
  // The same length twice is no ambiguity: answered.
  EXPECT_EQ(RawRequest(port, "POST /v1/completions HTTP/1.1\r\nContent-Length: " + std::to_string(body.size()) +
                                 "\r\ncontent-length: " + std::to_string(body.size()) + "\r\n\r\n" + body).status, 200);
  // The absolute form of the target (RFC 9112 3.2.2, which a server must accept) names the same route.
  EXPECT_EQ(RawRequest(port, "GET http://127.0.0.1/health HTTP/1.1\r\nHost: x\r\n\r\n").status, 200);
  EXPECT_EQ(RawRequest(port, "GET HTTP://127.0.0.1:8080/v1/models?x=1 HTTP/1.1\r\n\r\n").status, 200);
  ExpectError(RawRequest(port, "GET http://127.0.0.1/nowhere HTTP/1.1\r\n\r\n"), 404);
  EXPECT_EQ(Get(port, "/health").status, 200);
  EXPECT_TRUE(server.alive());
}

TEST(ServeErrors, ApiKeyIsRequiredWhenSet) {
  RAZOR_SERVE_TEST_START(server, "--api-key s3cret");
  const int port = server.port();
  ExpectError(Get(port, "/v1/models"), 401, "invalid_api_key");
  ExpectError(Get(port, "/v1/models", "Authorization: Bearer wrong\r\n"), 401, "invalid_api_key");
  ExpectError(Post(port, "/v1/completions", Prompt()), 401, "invalid_api_key");
  EXPECT_EQ(Get(port, "/v1/models", "Authorization: Bearer s3cret\r\n").status, 200);
  EXPECT_EQ(Post(port, "/v1/completions", Prompt(), "Authorization: Bearer s3cret\r\n").status, 200);
  EXPECT_EQ(Get(port, "/health").status, 200);  // health needs no key
}

TEST(ServeErrors, SlowClientDoesNotBlockOthers) {
  RAZOR_SERVE_TEST_START(server, "");
  // A client that sends half a request and stalls holds only its own connection.
  const int slow = Connect(server.port());
  ASSERT_GE(slow, 0);
  ASSERT_TRUE(SendRaw(slow, "POST /v1/completions HTTP/1.1\r\nContent-Length: 100\r\n\r\n{\"pro"));
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(Get(server.port(), "/health").status, 200);
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
  ::close(slow);
  EXPECT_EQ(Post(server.port(), "/v1/completions", Prompt()).status, 200);
}

}  // namespace
