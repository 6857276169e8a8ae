// razor serve admits by each policy's own KV footprint (Engine::PlannedPeakKvBytes): with the same pool, a
// request whose full cache cannot fit is refused by a full-cache server (400 kv_pool_too_small) and served
// by a razor server, whose compressed heads need a fraction of it; and a long razor prompt, prefilled in
// slices beside a running stream, gives that stream the text it gives alone.
#include <gtest/gtest.h>

#include <thread>

#include "model_test_support.h"
#include "scratch_profile.h"
#include "serve_test_support.h"

namespace {

using razor::testing_serve::json;
using namespace razor::testing_serve;

// ~700 tokens of varied text (a counting essay).
std::string LongPrompt() {
  std::string p = "Notes on the numbers.\n";
  for (int i = 0; i < 90; ++i) p += "Entry " + std::to_string(i) + " says the river ran north. ";
  return p;
}

std::string RazorFlags() {
  static const std::string path = [] {
    const std::string p = razor::testing_cli::ScratchDir() + "/serve_admission_profile.json";
    auto m = razor::LoadModel(razor::testing::DefaultModelPath(), false);
    if (!m.ok() || !razor::testing::SaveScratchProfile(**m, p).ok()) return std::string();
    return p;
  }();
  return "--kv razor --profile '" + path + "' --window-min 64 --window-frac 0.1";
}

TEST(ServeAdmission, RazorServesWhatAFullCacheCannotFitInTheSamePool) {
  const json request = {{"prompt", LongPrompt()}, {"max_tokens", 8}, {"temperature", 0}};
  {
    RAZOR_SERVE_TEST_START(full, "--kv full --kv-pool-mib 8");
    const HttpReply r = Post(full.port(), "/v1/completions", request);
    EXPECT_EQ(r.status, 400) << r.body;
    EXPECT_EQ(r.Json()["error"].value("code", ""), "kv_pool_too_small") << r.body;
    EXPECT_NE(r.body.find("full policy"), std::string::npos) << r.body;
  }
  RAZOR_SERVE_TEST_START(razor, RazorFlags() + " --kv-pool-mib 8");
  const HttpReply r = Post(razor.port(), "/v1/completions", request);
  ASSERT_EQ(r.status, 200) << r.body << razor.log();
  EXPECT_GT(r.Json()["usage"].value("prompt_tokens", 0), 600) << r.body;
  EXPECT_EQ(r.Json()["usage"].value("completion_tokens", 0), 8) << r.body;
  // The extension asks this razor server for a full cache: that request's footprint does not fit.
  json as_full = request;
  as_full["razor"] = {{"kv", "full"}};
  const HttpReply f = Post(razor.port(), "/v1/completions", as_full);
  EXPECT_EQ(f.status, 400) << f.body;
}

TEST(ServeAdmission, ASlicedRazorPromptBesideAStreamLeavesItsTextAsAlone) {
  RAZOR_SERVE_TEST_START(server, RazorFlags());
  const json stream_req = {{"prompt", "Once upon a time"}, {"max_tokens", 40}, {"temperature", 0}};
  const json long_req = {{"prompt", LongPrompt()}, {"max_tokens", 4}, {"temperature", 0}};
  const HttpReply alone = Post(server.port(), "/v1/completions", stream_req);
  ASSERT_EQ(alone.status, 200) << alone.body;
  const HttpReply long_alone = Post(server.port(), "/v1/completions", long_req);
  ASSERT_EQ(long_alone.status, 200) << long_alone.body;
  HttpReply with_long, long_reply;
  std::thread a([&] { with_long = Post(server.port(), "/v1/completions", stream_req); });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));  // the stream decodes when the long prompt comes
  std::thread b([&] { long_reply = Post(server.port(), "/v1/completions", long_req); });
  a.join();
  b.join();
  ASSERT_EQ(with_long.status, 200) << with_long.body;
  ASSERT_EQ(long_reply.status, 200) << long_reply.body;
  EXPECT_EQ(with_long.Json()["choices"][0]["text"], alone.Json()["choices"][0]["text"]);
  EXPECT_EQ(long_reply.Json()["choices"][0]["text"], long_alone.Json()["choices"][0]["text"]);
}

}  // namespace
