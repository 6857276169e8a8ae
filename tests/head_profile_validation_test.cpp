// Hostile head-profile JSON: every integer is range-checked as a JSON number before it becomes an int. Before,
// get<int> wrapped a KV head of 2^40 to 0 (a valid head) and a version of 2^32 + 1 to 1; a failed rename said
// "cannot write (Success)".
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "kv/head_profile.h"

namespace razor {
namespace {

using nlohmann::json;

json ValidProfile() {
  HeadProfile p;
  p.model = {"llama", "tiny", 2, 2, 1, 16, "fnv1a64:0000000000000000"};
  p.q_induction = {0.5f, 0.4f, 0.1f, 0.05f};
  p.q_echo = {0.2f, 0.1f, 0.3f, 0.0f};
  p.params.induction_ratio = 0.5;
  p.params.echo_ratio = 0.0;
  p.SelectRetrievalHeads();
  return json::parse(p.ToJson());
}

void ExpectRejected(const json& j, const std::string& must_contain) {
  SCOPED_TRACE(j.dump());
  auto p = HeadProfile::FromJson(j.dump(), "p.json");
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.error().find(must_contain), std::string::npos) << p.error();
}

TEST(HeadProfileValidationTest, ValidProfileReads) {
  auto p = HeadProfile::FromJson(ValidProfile().dump(), "p.json");
  ASSERT_TRUE(p.ok()) << p.error();
  EXPECT_EQ(p->retrieval.size(), 1u);
}

TEST(HeadProfileValidationTest, HeadIndicesThatWouldWrapAreRejected) {
  for (const char* list : {"by_induction", "by_echo"}) {
    json j = ValidProfile();
    j["selected"][list] = json::array({json::array({0, int64_t{1} << 40})});
    ExpectRejected(j, "outside");
  }
  json j = ValidProfile();
  j["retrieval_kv_heads"] = json::array({json::array({(int64_t{1} << 32), 0})});
  ExpectRejected(j, "outside");
  j = ValidProfile();
  j["retrieval_kv_heads"] = json::array({json::array({0, uint64_t{1} << 63})});
  ExpectRejected(j, "outside");
}

TEST(HeadProfileValidationTest, ShapeVersionAndParamsAreRangeChecked) {
  json j = ValidProfile();
  j["version"] = (int64_t{1} << 32) + 1;  // wrapped to 1 before
  ExpectRejected(j, "version");
  j = ValidProfile();
  j["model"]["n_layers"] = (int64_t{1} << 32) + 2;
  ExpectRejected(j, "n_layers");
  j = ValidProfile();
  j["model"]["n_kv_heads"] = 0;
  ExpectRejected(j, "n_kv_heads");
  j = ValidProfile();
  j["params"]["induction_ratio"] = 5.0;
  ExpectRejected(j, "induction_ratio");
  j = ValidProfile();
  j["params"]["token_range"] = json::array({-5, 10});
  ExpectRejected(j, "token_range");
  j = ValidProfile();
  j["params"]["seed"] = -1;
  ExpectRejected(j, "seed");
}

TEST(HeadProfileValidationTest, SaveOntoADirectorySaysWhy) {
  const std::string dir = ::testing::TempDir() + "/razor_profile_dir_" + std::to_string(::getpid());
  std::filesystem::create_directories(dir);
  auto p = HeadProfile::FromJson(ValidProfile().dump(), "p.json");
  ASSERT_TRUE(p.ok()) << p.error();
  Status st = p->Save(dir, /*overwrite=*/true);
  ASSERT_FALSE(st.ok());
  EXPECT_EQ(st.message().find("Success"), std::string::npos) << st.message();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace razor
