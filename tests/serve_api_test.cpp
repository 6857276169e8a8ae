// razor serve's OpenAI surface on the test model: health and models, completions and chat (non-streaming and
// streaming), usage, stop strings, and greedy output equal to `razor run`'s.
#include <gtest/gtest.h>

#include <set>

#include "serve_test_support.h"

namespace {

using razor::testing_serve::json;
using namespace razor::testing_serve;

// `razor run` at temperature 0 with the server's flags: its stdout is the text plus a newline.
razor::testing_cli::Outcome RunGreedy(const std::string& prompt, int n, bool chat) {
  return razor::testing_cli::RunRazor("run -m '" + razor::testing::DefaultModelPath() + "' " + SharedFlags() +
                                      " --temp 0 --no-progress -n " + std::to_string(n) + (chat ? " --chat" : "") +
                                      " -p '" + prompt + "'");
}

std::string StripFinalNewline(std::string s) {
  if (!s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

// The text of a streamed reply, checking every chunk on the way: JSON, one id, [DONE] last.
std::string StreamedText(const HttpReply& r, bool chat, json* usage = nullptr) {
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.headers.count("content-type") ? r.headers.at("content-type") : "", "text/event-stream");
  const auto events = r.Events();
  EXPECT_GE(events.size(), 2u) << r.body;
  if (events.empty()) return "";
  EXPECT_EQ(events.back(), "[DONE]");
  std::set<std::string> ids;
  std::string text, finish;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    const json c = json::parse(events[i], nullptr, false);
    EXPECT_FALSE(c.is_discarded()) << events[i];
    if (c.is_discarded()) continue;
    ids.insert(c.value("id", ""));
    EXPECT_EQ(c["object"], chat ? "chat.completion.chunk" : "text_completion");
    if (c["choices"].empty()) {  // the usage chunk
      if (usage) *usage = c["usage"];
      continue;
    }
    const json& ch = c["choices"][0];
    if (chat) {
      if (i == 0) {
        EXPECT_EQ(ch["delta"].value("role", ""), "assistant");
      }
      text += ch["delta"].value("content", "");
    } else {
      text += ch.value("text", "");
    }
    if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
  }
  EXPECT_EQ(ids.size(), 1u) << "every chunk carries the same id";
  EXPECT_TRUE(finish == "stop" || finish == "length") << r.body;
  return text;
}

TEST(ServeApi, HealthAndModels) {
  RAZOR_SERVE_TEST_START(server, "");
  const HttpReply h = Get(server.port(), "/health");
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.Json(), json({{"status", "ok"}}));
  const HttpReply m = Get(server.port(), "/v1/models");
  ASSERT_EQ(m.status, 200) << m.body;
  const json models = m.Json();
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 1u);
  const std::string model_file = std::filesystem::path(razor::testing::DefaultModelPath()).filename().string();
  EXPECT_EQ(models["data"][0]["id"], model_file);
  EXPECT_EQ(models["data"][0]["object"], "model");
}

TEST(ServeApi, GreedyCompletionEqualsRazorRun) {
  RAZOR_SERVE_TEST_START(server, "");
  const std::string prompt = "The capital of France is";
  const auto run = RunGreedy(prompt, 8, false);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const HttpReply r = Post(server.port(), "/v1/completions", {{"prompt", prompt}, {"max_tokens", 8}, {"temperature", 0}});
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.Json();
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], StripFinalNewline(run.out));
  // usage: the prompt's token count as `razor run` reports it ("prompt: N tokens"), completion <= max_tokens
  const size_t at = run.err.find("prompt: ");
  ASSERT_NE(at, std::string::npos) << run.err;
  EXPECT_EQ(j["usage"]["prompt_tokens"], std::atoi(run.err.c_str() + at + 8));
  EXPECT_GE(j["usage"]["completion_tokens"].get<int>(), 1);
  EXPECT_LE(j["usage"]["completion_tokens"].get<int>(), 8);
  EXPECT_EQ(j["usage"]["total_tokens"].get<int>(),
            j["usage"]["prompt_tokens"].get<int>() + j["usage"]["completion_tokens"].get<int>());
  EXPECT_EQ(j["choices"][0]["finish_reason"], j["usage"]["completion_tokens"] == 8 ? "length" : "stop");
}

TEST(ServeApi, GreedyChatEqualsRazorRunChat) {
  RAZOR_SERVE_TEST_START(server, "");
  const std::string question = "What is two plus two?";
  const auto run = RunGreedy(question, 6, true);
  ASSERT_EQ(run.exit_code, 0) << run.err;
  const json body = {{"messages", json::array({{{"role", "user"}, {"content", question}}})},
                     {"max_completion_tokens", 6},
                     {"temperature", 0}};
  const HttpReply r = Post(server.port(), "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.Json();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(j["choices"][0]["message"]["content"], StripFinalNewline(run.out));
  EXPECT_LE(j["usage"]["completion_tokens"].get<int>(), 6);
}

TEST(ServeApi, StreamingMatchesNonStreaming) {
  RAZOR_SERVE_TEST_START(server, "");
  const json base = {{"prompt", "Once upon a time"}, {"max_tokens", 8}, {"temperature", 0}};
  const HttpReply whole = Post(server.port(), "/v1/completions", base);
  ASSERT_EQ(whole.status, 200) << whole.body;
  json streamed = base;
  streamed["stream"] = true;
  streamed["stream_options"] = {{"include_usage", true}};
  json usage;
  const std::string text = StreamedText(Post(server.port(), "/v1/completions", streamed), false, &usage);
  EXPECT_EQ(text, whole.Json()["choices"][0]["text"]);
  EXPECT_EQ(usage, whole.Json()["usage"]);
}

TEST(ServeApi, ChatStreamingMatchesNonStreaming) {
  RAZOR_SERVE_TEST_START(server, "");
  const json base = {{"messages", json::array({{{"role", "system"}, {"content", "Be brief."}},
                                               {{"role", "user"}, {"content", "Name a colour."}}})},
                     {"max_tokens", 6},
                     {"temperature", 0}};
  const HttpReply whole = Post(server.port(), "/v1/chat/completions", base);
  ASSERT_EQ(whole.status, 200) << whole.body;
  json streamed = base;
  streamed["stream"] = true;
  EXPECT_EQ(StreamedText(Post(server.port(), "/v1/chat/completions", streamed), true),
            whole.Json()["choices"][0]["message"]["content"]);
}

TEST(ServeApi, StopStringCutsTheText) {
  RAZOR_SERVE_TEST_START(server, "");
  const json base = {{"prompt", "The capital of France is"}, {"max_tokens", 8}, {"temperature", 0}};
  const HttpReply free_run = Post(server.port(), "/v1/completions", base);
  ASSERT_EQ(free_run.status, 200) << free_run.body;
  const std::string full = free_run.Json()["choices"][0]["text"];
  ASSERT_GE(full.size(), 4u) << full;
  // A stop string from the middle of the free text: the reply ends right before it, finish_reason "stop".
  const std::string stop = full.substr(full.size() / 2, 2);
  json cut = base;
  cut["stop"] = json::array({"\x01never", stop});
  const HttpReply r = Post(server.port(), "/v1/completions", cut);
  ASSERT_EQ(r.status, 200) << r.body;
  const std::string text = r.Json()["choices"][0]["text"];
  EXPECT_EQ(text, full.substr(0, full.find(stop)));
  EXPECT_EQ(r.Json()["choices"][0]["finish_reason"], "stop");
  cut["stream"] = true;
  EXPECT_EQ(StreamedText(Post(server.port(), "/v1/completions", cut), false), text);
}

}  // namespace
