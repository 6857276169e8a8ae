// The versioned head-profile JSON: round trip, selection, refusing a profile for another model, one-line
// errors for corrupt files, and Save never silently replacing a different file.
#include "kv/head_profile.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <unistd.h>

namespace razor {
namespace {

ModelIdentity SmallIdentity() {
  ModelIdentity id;
  id.architecture = "llama";
  id.name = "Tiny";
  id.n_layers = 4;
  id.n_heads = 6;
  id.n_kv_heads = 2;
  id.head_dim = 16;
  id.fingerprint = "fnv1a64:0123456789abcdef";
  return id;
}

HeadProfile RandomProfile(uint32_t seed) {
  HeadProfile p;
  p.model = SmallIdentity();
  p.params.induction_ratio = 0.25;
  p.params.echo_ratio = 0.1;
  p.params.block = 31;
  p.params.repeats = 4;
  p.params.seed = seed;
  p.params.token_lo = 64;
  p.params.token_hi = 128;
  p.params.bos_id = 1;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  p.q_induction.resize(p.model.n_layers * p.model.n_heads);
  p.q_echo.resize(p.q_induction.size());
  for (auto& x : p.q_induction) x = u(rng) * 0.1f;
  for (auto& x : p.q_echo) x = u(rng) * 0.1f;
  p.SelectRetrievalHeads();
  return p;
}

std::string TempPath(const std::string& name) {
  auto dir = std::filesystem::temp_directory_path() / ("razor_head_profile_test_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  return (dir / name).string();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(HeadProfile, HeadsForRatioIsCeilWithoutFloatingNoise) {
  EXPECT_EQ(HeadsForRatio(0.14, 100), 14);  // 0.14 * 100 = 14.000000000000002 in doubles
  EXPECT_EQ(HeadsForRatio(0.14, 90), 13);
  EXPECT_EQ(HeadsForRatio(0.01, 90), 1);
  EXPECT_EQ(HeadsForRatio(0.0, 90), 0);
  EXPECT_EQ(HeadsForRatio(1.0, 90), 90);
}

TEST(HeadProfile, KvScoreIsMaxOverGroupAndRankingIsGlobal) {
  HeadProfile p;
  p.model = SmallIdentity();  // 4 layers x 2 KV heads, 3 query heads per KV head
  p.params.induction_ratio = 0.25;  // 2 of 8
  p.params.echo_ratio = 0.1;        // 1 of 8
  p.q_induction.assign(24, 0.01f);
  p.q_echo.assign(24, 0.01f);
  p.q_induction[3 * 6 + 4] = 0.9f;  // layer 3, query head 4 -> KV head 1
  p.q_induction[0 * 6 + 2] = 0.5f;  // layer 0, query head 2 -> KV head 0
  p.q_induction[1 * 6 + 0] = 0.4f;  // third: not selected
  p.q_echo[2 * 6 + 5] = 0.7f;       // layer 2, KV head 1
  p.SelectRetrievalHeads();
  EXPECT_FLOAT_EQ(p.kv_induction_at(3, 1), 0.9f);
  EXPECT_FLOAT_EQ(p.kv_induction_at(3, 0), 0.01f);
  ASSERT_EQ(p.by_induction.size(), 2u);
  EXPECT_EQ(p.by_induction[0], (KvHeadId{3, 1}));
  EXPECT_EQ(p.by_induction[1], (KvHeadId{0, 0}));
  ASSERT_EQ(p.by_echo.size(), 1u);
  EXPECT_EQ(p.by_echo[0], (KvHeadId{2, 1}));
  EXPECT_EQ(p.retrieval, (std::vector<KvHeadId>{{0, 0}, {2, 1}, {3, 1}}));  // sorted union
  EXPECT_TRUE(p.IsRetrieval(2, 1));
  EXPECT_FALSE(p.IsRetrieval(1, 0));
  auto mask = p.RetrievalMask();
  EXPECT_EQ(std::count(mask.begin(), mask.end(), true), 3);
  EXPECT_TRUE(mask[3 * 2 + 1]);
}

TEST(HeadProfile, JsonRoundTripIsExact) {
  const HeadProfile p = RandomProfile(7);
  const std::string json = p.ToJson();
  auto back = HeadProfile::FromJson(json, "mem");
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->ToJson(), json);
  EXPECT_EQ(back->q_induction, p.q_induction);  // floats survive bit for bit
  EXPECT_EQ(back->kv_echo, p.kv_echo);
  EXPECT_EQ(back->retrieval, p.retrieval);
  EXPECT_EQ(back->by_induction, p.by_induction);
  EXPECT_EQ(back->model.fingerprint, p.model.fingerprint);
  EXPECT_EQ(back->params.seed, 7u);
  EXPECT_EQ(back->params.token_hi, 128);
  EXPECT_NE(json.find("\"version\": 1"), std::string::npos);
}

TEST(HeadProfile, SaveLoadAndNoSilentOverwrite) {
  const std::string path = TempPath("p.json");
  std::filesystem::remove(path);
  const HeadProfile a = RandomProfile(1), b = RandomProfile(2);
  ASSERT_TRUE(a.Save(path, false).ok());
  auto loaded = HeadProfile::Load(path);
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  EXPECT_EQ(loaded->ToJson(), a.ToJson());
  EXPECT_TRUE(a.Save(path, false).ok()) << "saving the identical profile again is not an overwrite";
  Status st = b.Save(path, false);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("already exists"), std::string::npos) << st.message();
  EXPECT_EQ(ReadFile(path), a.ToJson()) << "a refused save must leave the file alone";
  ASSERT_TRUE(b.Save(path, true).ok());
  EXPECT_EQ(ReadFile(path), b.ToJson());
  // A file that is not a profile is not replaced either.
  const std::string other = TempPath("notes.txt");
  { std::ofstream(other) << "my notes\n"; }
  st = a.Save(other, false);
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(ReadFile(other), "my notes\n");
}

TEST(HeadProfile, RefusesProfileOfAnotherModelNamingBoth) {
  const HeadProfile p = RandomProfile(3);
  ModelIdentity same = p.model;
  EXPECT_TRUE(p.CheckMatches(same).ok());

  ModelIdentity deeper = p.model;
  deeper.name = "Bigger";
  deeper.n_layers = 30;
  Status st = p.CheckMatches(deeper);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("4 layers"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("30 layers"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("'Tiny'"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("'Bigger'"), std::string::npos) << st.message();
  EXPECT_FALSE(p.CheckMatches(deeper, /*require_same_fingerprint=*/false).ok()) << "shapes must always match";

  ModelIdentity requant = p.model;
  requant.fingerprint = "fnv1a64:fedcba9876543210";
  st = p.CheckMatches(requant);
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("0123456789abcdef"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("fedcba9876543210"), std::string::npos) << st.message();
  EXPECT_TRUE(p.CheckMatches(requant, /*require_same_fingerprint=*/false).ok());

  ModelIdentity gqa = p.model;
  gqa.n_kv_heads = 3;
  EXPECT_FALSE(p.CheckMatches(gqa).ok());
}

void ExpectOneLineError(const std::string& text, const std::string& needle) {
  auto r = HeadProfile::FromJson(text, "bad.json");
  ASSERT_FALSE(r.ok()) << "accepted: " << text.substr(0, 80);
  EXPECT_EQ(r.error().find('\n'), std::string::npos) << r.error();
  EXPECT_EQ(r.error().rfind("bad.json: ", 0), 0u) << r.error();
  EXPECT_NE(r.error().find(needle), std::string::npos) << r.error();
}

TEST(HeadProfile, CorruptFilesGiveOneLineErrors) {
  const std::string good = RandomProfile(4).ToJson();
  ExpectOneLineError(good.substr(0, good.size() / 2), "bad JSON");
  ExpectOneLineError("", "bad JSON");
  ExpectOneLineError("\x89PNG\r\n", "bad JSON");
  ExpectOneLineError("[1, 2, 3]", "format");
  ExpectOneLineError("{\"format\": \"something-else\"}", "format");

  auto edit = [&](const std::string& from, const std::string& to) {
    std::string s = good;
    const size_t at = s.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    return s.replace(at, from.size(), to);
  };
  ExpectOneLineError(edit("\"version\": 1", "\"version\": 99"), "version 99");
  ExpectOneLineError(edit("\"n_layers\": 4", "\"n_layers\": 5"), "5 rows");
  ExpectOneLineError(edit("\"n_layers\": 4", "\"n_layers\": \"four\""), "n_layers");
  ExpectOneLineError(edit("\"fingerprint\"", "\"fingerprint_\""), "fingerprint");
  ExpectOneLineError(edit("\"retrieval_kv_heads\": [", "\"retrieval_kv_heads\": [\n  [9, 0],"), "[9, 0]");

  auto missing = HeadProfile::Load(TempPath("does_not_exist.json"));
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.error().find("cannot open"), std::string::npos) << missing.error();
}

TEST(HeadProfile, FingerprintSeesNamesTypesAndShapes) {
  TensorView a{"blk.0.attn_q.weight", TensorType::Q4_1, {576, 576}};
  TensorView b{"blk.0.attn_k.weight", TensorType::Q4_1, {576, 192}};
  const std::string base = TensorTableFingerprint({&a, &b});
  EXPECT_EQ(base.rfind("fnv1a64:", 0), 0u);
  EXPECT_EQ(base.size(), 8u + 16u);
  EXPECT_EQ(TensorTableFingerprint({&a, &b}), base);
  TensorView a2 = a;
  a2.type = TensorType::Q8_0;
  EXPECT_NE(TensorTableFingerprint({&a2, &b}), base);
  TensorView b2 = b;
  b2.shape = {576, 193};
  EXPECT_NE(TensorTableFingerprint({&a, &b2}), base);
  TensorView b3 = b;
  b3.name = "blk.0.attn_v.weight";
  EXPECT_NE(TensorTableFingerprint({&a, &b3}), base);
}

}  // namespace
}  // namespace razor
