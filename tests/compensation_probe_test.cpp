// eval::CompensationProbe on a hand-built full cache: the dropped mass, the token's share and weight and the
// output errors against a brute-force recomputation in the test; a head whose dropped tokens are all equal is
// represented exactly by its compensation token (captured 1, output error ~0, while dropping without a token
// errs); Jensen (captured < 1) once the dropped keys differ; retrieval heads and queries inside the prefix are
// not scored; the summary's pooled ratio.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_test_support.h"
#include "core/thread_pool.h"
#include "eval/compensation_probe.h"
#include "eval/haystack.h"
#include "kv/full_kv_cache.h"
#include "runtime/head_profiler.h"
#include "runtime/loaded_model.h"
#include "scratch_profile.h"

namespace razor::eval {
namespace {

constexpr int kHeads = 4, kKv = 2, kDim = 4;
constexpr int64_t kTokens = 12, kSinks = 1, kWindow = 4, kPrefix = 10;  // dropped: [1, 6)

struct Fixture {
  std::vector<float> k, v;  // [kTokens, kKv * kDim]
  FullKvCache cache{1, kKv, kDim, kTokens};
  explicit Fixture(bool equal_dropped, uint32_t seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> n(0.0f, 1.0f);
    k.resize(kTokens * kKv * kDim);
    v.resize(kTokens * kKv * kDim);
    for (auto& x : k) x = n(rng);
    for (auto& x : v) x = n(rng);
    if (equal_dropped)
      for (int64_t j = 2; j < 6; ++j)
        for (int x = 0; x < kDim; ++x) k[j * kKv * kDim + x] = k[1 * kKv * kDim + x], v[j * kKv * kDim + x] = v[1 * kKv * kDim + x];
    EXPECT_TRUE(cache.Append(0, 0, kTokens, k.data(), v.data()).ok());
    cache.CommitTokens(kTokens);
  }
  const float* key(int64_t j, int g) const { return &k[(j * kKv + g) * kDim]; }
  const float* val(int64_t j, int g) const { return &v[(j * kKv + g) * kDim]; }
};

double Dot(const float* a, const float* b) {
  double s = 0;
  for (int i = 0; i < kDim; ++i) s += double(a[i]) * b[i];
  return s;
}

// Brute force for one query head h (KV head g = h / 2) at position i: the full softmax, razor's softmax over
// the kept tokens plus a token with the mean key / value and logit + ln|D|.
struct Expected {
  double lse, m_drop, share, err_token, err_none, err_ideal;
};
Expected BruteForce(const Fixture& f, const float* q, int g, int64_t i) {
  const double scale = 1.0 / std::sqrt(double(kDim));
  std::vector<double> s(i + 1);
  double mx = -1e300;
  for (int64_t j = 0; j <= i; ++j) s[j] = Dot(q, f.key(j, g)) * scale, mx = std::max(mx, s[j]);
  double z = 0;
  for (double x : s) z += std::exp(x - mx);
  Expected e{};
  e.lse = mx + std::log(z);
  std::vector<float> km(kDim, 0), vm(kDim, 0);
  for (int64_t j = 1; j < 6; ++j)
    for (int x = 0; x < kDim; ++x) km[x] += f.key(j, g)[x] / 5.0f, vm[x] += f.val(j, g)[x] / 5.0f;
  std::vector<double> full(kDim, 0), kept(kDim, 0);
  double zk = 0;
  for (int64_t j = 0; j <= i; ++j) {
    const double p = std::exp(s[j] - e.lse);
    for (int x = 0; x < kDim; ++x) full[x] += p * f.val(j, g)[x];
    if (j >= 1 && j < 6) {
      e.m_drop += p;
    } else {
      zk += p;
      for (int x = 0; x < kDim; ++x) kept[x] += p * f.val(j, g)[x];
    }
  }
  const double c = std::exp(Dot(q, km.data()) * scale + std::log(5.0) - e.lse);
  e.share = c / (zk + c);
  double n_tok = 0, n_none = 0, n_ideal = 0, d = 0;
  for (int x = 0; x < kDim; ++x) {
    const double with = (kept[x] + c * vm[x]) / (zk + c), without = kept[x] / zk;
    const double ideal = kept[x] + e.m_drop * vm[x];  // kept + dropped mass = 1
    n_tok += (with - full[x]) * (with - full[x]);
    n_none += (without - full[x]) * (without - full[x]);
    n_ideal += (ideal - full[x]) * (ideal - full[x]);
    d += full[x] * full[x];
  }
  e.err_token = std::sqrt(n_tok / d), e.err_none = std::sqrt(n_none / d), e.err_ideal = std::sqrt(n_ideal / d);
  return e;
}

// One query token at `pos` for all four query heads; KV head 0 compressed, KV head 1 a retrieval head.
CompensationProbe Probe(const Fixture& f, int64_t pos, const std::vector<float>& q) {
  CompensationProbe p(1, kHeads, kKv, kDim, {true, false}, kSinks, kWindow, kPrefix, nullptr);
  std::vector<float> lse(kHeads);
  for (int h = 0; h < kHeads; ++h) lse[h] = static_cast<float>(BruteForce(f, &q[h * kDim], h / 2, pos).lse);
  const int32_t position = static_cast<int32_t>(pos);
  p.OnAttention(0, q.data(), &position, 1, lse.data(), f.cache);
  return p;
}

std::vector<float> RandomQuery(uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.0f, 1.5f);
  std::vector<float> q(kHeads * kDim);
  for (auto& x : q) x = n(rng);
  return q;
}

TEST(CompensationProbeTest, MatchesBruteForceOnSpreadKeys) {
  const Fixture f(/*equal_dropped=*/false, 7);
  const auto q = RandomQuery(11);
  const CompensationProbe p = Probe(f, 11, q);
  EXPECT_EQ(p.dropped_begin(), 1);
  EXPECT_EQ(p.dropped_end(), 6);
  for (int h = 0; h < kHeads; ++h) {
    SCOPED_TRACE(h);
    const CompensationHeadSums& s = p.head_sums()[h];
    if (h / 2 == 1) {  // retrieval head: not scored
      EXPECT_EQ(s.queries, 0);
      continue;
    }
    const Expected e = BruteForce(f, &q[h * kDim], 0, 11);
    EXPECT_EQ(s.queries, 1);
    EXPECT_NEAR(s.dropped_mass, e.m_drop, 1e-5);
    EXPECT_NEAR(s.token_share, e.share, 1e-5);
    EXPECT_NEAR(s.err_token, e.err_token, 1e-4);
    EXPECT_NEAR(s.err_none, e.err_none, 1e-4);
    EXPECT_NEAR(s.err_ideal_weight, e.err_ideal, 1e-4);
    EXPECT_EQ(s.token_better, e.err_token < e.err_none ? 1 : 0);
    EXPECT_LT(s.token_mass, s.dropped_mass);  // Jensen: the mean key scores below the dropped keys' mass
  }
  const DroppedSpread& sp = p.spreads()[0];
  EXPECT_EQ(sp.dropped, 5);
  EXPECT_LT(sp.key_norm_ratio, 1.0);  // |mean| < mean |k| for keys that differ
  EXPECT_LT(sp.key_cos, 1.0);
  EXPECT_EQ(p.spreads()[1].dropped, 0);  // the retrieval head drops nothing
}

TEST(CompensationProbeTest, EqualDroppedTokensAreRepresentedExactly) {
  const Fixture f(/*equal_dropped=*/true, 3);
  const auto q = RandomQuery(5);
  const CompensationProbe p = Probe(f, 11, q);
  for (int h = 0; h < 2; ++h) {
    SCOPED_TRACE(h);
    const CompensationHeadSums& s = p.head_sums()[h];
    EXPECT_NEAR(s.token_mass / s.dropped_mass, 1.0, 1e-4);
    EXPECT_NEAR(s.token_share, s.dropped_mass, 1e-5);  // kept + token = the full softmax's total
    EXPECT_LT(s.err_token, 1e-5);
    EXPECT_LT(s.err_ideal_weight, 1e-5);
    EXPECT_GT(s.err_none, 1e-3);
    EXPECT_EQ(s.token_better, 1);
  }
  EXPECT_NEAR(p.spreads()[0].key_cos, 1.0, 1e-6);
  EXPECT_NEAR(p.spreads()[0].key_norm_ratio, 1.0, 1e-6);
}

// Three query rows in one call (positions 9, 10, 11): row 0 is inside the prefix and skipped, rows 1 and 2
// match the brute force at their own positions; a thread pool gives the same sums as one thread.
TEST(CompensationProbeTest, SeveralRowsPerCallAndAnyThreadCount) {
  const Fixture f(false, 21);
  std::vector<float> q;
  for (uint32_t r = 0; r < 3; ++r) {
    const auto qr = RandomQuery(30 + r);
    q.insert(q.end(), qr.begin(), qr.end());
  }
  const int32_t positions[3] = {9, 10, 11};
  std::vector<float> lse(3 * kHeads);
  for (int t = 0; t < 3; ++t)
    for (int h = 0; h < kHeads; ++h)
      lse[t * kHeads + h] = static_cast<float>(BruteForce(f, &q[(t * kHeads + h) * kDim], h / 2, positions[t]).lse);
  ThreadPool pool(3);
  CompensationProbe serial(1, kHeads, kKv, kDim, {true, false}, kSinks, kWindow, kPrefix, nullptr);
  CompensationProbe pooled(1, kHeads, kKv, kDim, {true, false}, kSinks, kWindow, kPrefix, &pool);
  serial.OnAttention(0, q.data(), positions, 3, lse.data(), f.cache);
  pooled.OnAttention(0, q.data(), positions, 3, lse.data(), f.cache);
  for (int h = 0; h < 2; ++h) {
    SCOPED_TRACE(h);
    const CompensationHeadSums& s = serial.head_sums()[h];
    EXPECT_EQ(s.queries, 2);
    const Expected e10 = BruteForce(f, &q[(1 * kHeads + h) * kDim], 0, 10);
    const Expected e11 = BruteForce(f, &q[(2 * kHeads + h) * kDim], 0, 11);
    EXPECT_NEAR(s.dropped_mass, e10.m_drop + e11.m_drop, 1e-5);
    EXPECT_NEAR(s.err_token, e10.err_token + e11.err_token, 1e-4);
    const CompensationHeadSums& p = pooled.head_sums()[h];
    EXPECT_EQ(p.queries, s.queries);
    EXPECT_EQ(p.dropped_mass, s.dropped_mass);  // the same sums, in the same order
    EXPECT_EQ(p.err_token, s.err_token);
  }
}

TEST(CompensationProbeTest, QueriesInsideThePrefixAreNotScored) {
  const Fixture f(false, 9);
  const CompensationProbe p = Probe(f, kPrefix - 1, RandomQuery(2));
  for (const auto& s : p.head_sums()) EXPECT_EQ(s.queries, 0);
}

TEST(CompensationProbeTest, SummaryPoolsTheCapturedRatio) {
  CompensationHeadSums a, b, none;
  a.queries = 2, a.dropped_mass = 0.4, a.token_mass = 0.1, a.token_share = 0.2, a.err_token = 0.2, a.err_none = 0.4;
  a.token_better = 2;
  b.queries = 2, b.dropped_mass = 0.2, b.token_mass = 0.2, b.token_share = 0.4, b.err_token = 0.6, b.err_none = 0.2;
  DroppedSpread s1{5, 0.5, 0.6, 0.7}, s2{0, 9, 9, 9};
  const CompensationSummary s = Summarise({a, b, none}, {s1, s2});
  EXPECT_EQ(s.heads, 2);
  EXPECT_EQ(s.queries, 4);
  EXPECT_NEAR(s.captured, 0.3 / 0.6, 1e-12);
  EXPECT_NEAR(s.dropped_mass, 0.15, 1e-12);
  EXPECT_NEAR(s.err_token, 0.2, 1e-12);
  EXPECT_NEAR(s.err_none, 0.15, 1e-12);
  EXPECT_NEAR(s.token_better, 0.5, 1e-12);
  EXPECT_NEAR(s.key_cos, 0.5, 1e-12);  // the head that drops nothing is left out
}

TEST(EvalCompensationTest, BadFlagsAreOneLineErrors) {
  const std::string out = " --out '" + testing_cli::ScratchDir() + "/comp_bad_flags'";
  testing_cli::ExpectCleanError(testing_cli::RunRazor("eval compensation -m /nonexistent.gguf" + out), "nonexistent");
  testing_cli::ExpectCleanError(
      testing_cli::RunRazor("eval compensation -m /nonexistent.gguf --length 256 --steps 256" + out), "--steps");
  testing_cli::ExpectCleanError(testing_cli::RunRazor("eval compensation -m /nonexistent.gguf --samples 0" + out),
                                "--samples");
  testing_cli::ExpectCleanError(testing_cli::RunRazor("eval compensation -m /nonexistent.gguf --kv full" + out),
                                "razor");
  testing_cli::ExpectCleanError(
      testing_cli::RunRazor("eval compensation -m /nonexistent.gguf --decode-fold" + out), "--decode-fold");
}

// Through the binary with the real model and a short scratch profile: 640 tokens, the last 8 scored, a
// 128-token window, so razor drops [4, 504) on every compressed head.
TEST(EvalCompensationTest, ReportsEveryCompressedHeadAndQuery) {
  namespace fs = std::filesystem;
  const char* env = std::getenv("RAZOR_TEST_MODEL");
  if (env == nullptr || !fs::exists(env)) GTEST_SKIP() << "RAZOR_TEST_MODEL not set";
  if (std::getenv("RAZOR_TEST_SANITIZER") != nullptr) GTEST_SKIP() << "skipped under the sanitizer run";
  if (!LoadHaystackText(DefaultHaystackDir()).ok()) GTEST_SKIP() << "no essays (scripts/fetch_eval_data.sh)";
  auto model = LoadModel(env);
  ASSERT_TRUE(model.ok()) << model.error();
  const std::string dir = testing_cli::ScratchDir() + "/eval_compensation";
  fs::remove_all(dir);
  fs::create_directories(dir);
  auto profile = testing::SaveScratchProfile(**model, dir + "/profile.json");
  ASSERT_TRUE(profile.ok()) << profile.error();
  const auto o = testing_cli::RunRazor(fmt::format(
      "eval compensation -m '{}' --profile '{}/profile.json' --length 640 --steps 8 --window-min 128 -t 2 --out '{}/out'",
      env, dir, dir));
  ASSERT_EQ(o.exit_code, 0) << o.err;
  std::ifstream in(dir + "/out/compensation.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  EXPECT_EQ(j.at("window"), 128);
  EXPECT_EQ(j.at("prefix_tokens"), 632);
  const auto& s = j.at("summary");
  const int n_heads = (*model)->config.n_heads, n_kv = (*model)->config.n_kv_heads;
  int compressed = 0;
  for (const auto& c : j.at("captured_per_kv_head")) compressed += !c.is_null();
  const std::vector<bool> retrieval = profile->RetrievalMask();
  EXPECT_EQ(compressed, static_cast<int>(std::count(retrieval.begin(), retrieval.end(), false)));
  EXPECT_EQ(s.at("query_heads").get<int>(), compressed * (n_heads / n_kv));
  EXPECT_EQ(s.at("queries").get<int>(), compressed * (n_heads / n_kv) * 8);
  const double captured = s.at("captured"), dropped = s.at("dropped_mass");
  EXPECT_GT(captured, 0.0);
  EXPECT_LE(captured, 1.0);  // Jensen
  EXPECT_GT(dropped, 0.0);
  EXPECT_LT(dropped, 1.0);
  EXPECT_TRUE(fs::exists(dir + "/out/compensation.png"));
  // The outputs are not overwritten without --force.
  const auto again = testing_cli::RunRazor(fmt::format(
      "eval compensation -m '{}' --profile '{}/profile.json' --length 640 --steps 8 --window-min 128 --out '{}/out'",
      env, dir, dir));
  testing_cli::ExpectCleanError(again, "--force");
  fs::remove_all(dir);
}

}  // namespace
}  // namespace razor::eval
