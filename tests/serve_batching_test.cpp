// razor serve's scheduler: concurrent streams run in one batch and each produces the text it produces alone
// (temperature 0); a client that leaves mid-stream has its sequence dropped and the server goes on.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "serve_test_support.h"

namespace {

using razor::testing_serve::json;
using namespace razor::testing_serve;

std::string StreamText(const HttpReply& r) {
  std::string text;
  for (const std::string& e : r.Events()) {
    if (e == "[DONE]") continue;
    const json c = json::parse(e, nullptr, false);
    if (c.is_discarded() || c["choices"].empty()) continue;
    text += c["choices"][0].value("text", "");
  }
  return text;
}

json Request(const std::string& prompt, int max_tokens, bool stream) {
  return {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"stream", stream}};
}

TEST(ServeBatching, ConcurrentStreamsEqualEachAlone) {
  RAZOR_SERVE_TEST_START(server, "");
  const std::vector<std::string> prompts = {"The capital of France is", "My favourite food is",
                                            "In the beginning there was"};
  std::vector<std::string> alone;
  for (const auto& p : prompts) {
    const HttpReply r = Post(server.port(), "/v1/completions", Request(p, 8, false));
    ASSERT_EQ(r.status, 200) << r.body;
    alone.push_back(r.Json()["choices"][0]["text"]);
  }
  std::vector<HttpReply> replies(prompts.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < prompts.size(); ++i)
    clients.emplace_back([&, i] { replies[i] = Post(server.port(), "/v1/completions", Request(prompts[i], 8, true)); });
  for (auto& t : clients) t.join();
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(replies[i].status, 200) << replies[i].body;
    ASSERT_FALSE(replies[i].Events().empty());
    EXPECT_EQ(replies[i].Events().back(), "[DONE]");
    EXPECT_EQ(StreamText(replies[i]), alone[i]) << "prompt " << i;
  }
  // A client has its last event before the scheduler's iteration ends and publishes the metrics: wait for it.
  std::string metrics;
  for (int i = 0; i < 100; ++i) {
    metrics = Get(server.port(), "/metrics").body;
    if (MetricValue(metrics, "razor:num_requests_running") == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(MetricValue(metrics, "razor:num_requests_running"), 0) << metrics;
  EXPECT_GT(MetricValue(metrics, "razor:generation_tokens_total"), 0) << metrics;
  // Six requests finished: six first tokens and six ends observed; every other generated token is one
  // inter-token gap; every bucket count is cumulative up to the +Inf one.
  const double generated = MetricValue(metrics, "razor:generation_tokens_total");
  EXPECT_EQ(MetricValue(metrics, "razor:time_to_first_token_seconds_count"), 6) << metrics;
  EXPECT_EQ(MetricValue(metrics, "razor:e2e_request_latency_seconds_count"), 6) << metrics;
  EXPECT_EQ(MetricValue(metrics, "razor:inter_token_latency_seconds_count"), generated - 6) << metrics;
  EXPECT_EQ(MetricValue(metrics, "razor:time_to_first_token_seconds_bucket{le=\"+Inf\"}"), 6) << metrics;
  EXPECT_GT(MetricValue(metrics, "razor:e2e_request_latency_seconds_sum"), 0) << metrics;
}

TEST(ServeBatching, DisconnectMidStreamCancelsTheSequence) {
  RAZOR_SERVE_TEST_START(server, "");
  const int fd = Connect(server.port());
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(SendRaw(fd, FormatRequest("POST", "/v1/completions", Request("Tell me a long story.", 1500, true).dump())));
  std::string seen;
  char buf[4096];
  while (seen.find("data: ") == std::string::npos) {  // the stream has started
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    ASSERT_GT(n, 0);
    seen.append(buf, static_cast<size_t>(n));
  }
  ::close(fd);
  double running = -1;
  for (int i = 0; i < 100; ++i) {  // within 10 s the sequence is gone (1500 tokens would take far longer)
    running = MetricValue(Get(server.port(), "/metrics").body, "razor:num_requests_running");
    if (running == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(running, 0);
  const std::string metrics = Get(server.port(), "/metrics").body;
  EXPECT_EQ(MetricValue(metrics, "razor:kv_bytes_held"), 0) << metrics;
  EXPECT_LT(MetricValue(metrics, "razor:generation_tokens_total"), 1500) << metrics;
  const HttpReply after = Post(server.port(), "/v1/completions", Request("Hello", 4, false));
  EXPECT_EQ(after.status, 200) << after.body;
}

}  // namespace
