// RazorKvCache against FullKvCache and brute force: identical views when nothing is dropped, exact sinks +
// window + compensation token after compression, measured bytes vs the kept-fraction formula, bounded memory
// with decode folding, RSS that really drops, and the streaming baseline.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "kv/full_kv_cache.h"
#include "kv/razor_kv_cache.h"
#include "ops/attention.h"

namespace razor {
namespace {

// Deterministic K/V of (layer, head, position, dim) in [-1, 1): lets a test recompute any dropped row.
struct Synth {
  int layers, heads, d;
  uint64_t seed = 1;
  float At(int kv, int l, int h, int64_t p, int i) const {
    uint64_t x = seed * 0x9E3779B97F4A7C15ull ^ (uint64_t(kv) << 62) ^ (uint64_t(l) << 52) ^ (uint64_t(h) << 44) ^
                 (uint64_t(p) << 12) ^ uint64_t(i);
    x ^= x >> 30; x *= 0xBF58476D1CE4E5B9ull; x ^= x >> 27; x *= 0x94D049BB133111EBull; x ^= x >> 31;
    return static_cast<float>(x >> 40) / static_cast<float>(1 << 23) - 1.0f;
  }
  float K(int l, int h, int64_t p, int i) const { return At(0, l, h, p, i); }
  float V(int l, int h, int64_t p, int i) const { return At(1, l, h, p, i); }
  // k, v: [n, heads * d] for positions [pos0, pos0 + n) of layer l.
  void Fill(int l, int64_t pos0, int64_t n, std::vector<float>* k, std::vector<float>* v) const {
    k->resize(n * heads * d);
    v->resize(k->size());
    for (int64_t t = 0; t < n; ++t)
      for (int h = 0; h < heads; ++h)
        for (int i = 0; i < d; ++i) {
          (*k)[(t * heads + h) * d + i] = K(l, h, pos0 + t, i);
          (*v)[(t * heads + h) * d + i] = V(l, h, pos0 + t, i);
        }
  }
};

// Feeds tokens [pos0, pos0 + n) the way Transformer::Forward does: per layer Append then OnLayerDone.
void Feed(KvCache& cache, const Synth& s, int64_t n, int64_t chunk = 1 << 30) {
  std::vector<float> k, v;
  for (int64_t b = 0; b < n; b += chunk) {
    const int64_t len = std::min(chunk, n - b);
    const int64_t pos0 = cache.sequence_length();
    for (int l = 0; l < s.layers; ++l) {
      s.Fill(l, pos0, len, &k, &v);
      ASSERT_TRUE(cache.Append(l, pos0, len, k.data(), v.data()).ok());
      cache.OnLayerDone(l, len > 1);
    }
    cache.CommitTokens(len);
  }
}
void Prompt(KvCache& cache, const Synth& s, int64_t n, int64_t chunk = 1 << 30) {
  cache.BeginPrefill(n);
  Feed(cache, s, n, chunk);
}
void Decode(KvCache& cache, const Synth& s, int64_t steps) { Feed(cache, s, steps, 1); }

int32_t PosAt(const KvHeadView& v, int64_t j) { return v.positions ? v.positions[j] : static_cast<int32_t>(j); }

// The view's tokens copied into plain arrays (contiguous form), for exact comparisons.
struct Flat {
  std::vector<float> k, v, ck, cv;
  std::vector<int32_t> pos;
  KvHeadView view;
};
Flat Flatten(const KvHeadView& in, int d) {
  Flat f;
  for (int64_t j = 0; j < in.len; ++j) {
    f.k.insert(f.k.end(), in.key(j, d), in.key(j, d) + d);
    f.v.insert(f.v.end(), in.value(j, d), in.value(j, d) + d);
    f.pos.push_back(PosAt(in, j));
  }
  f.view.k = f.k.data();
  f.view.v = f.v.data();
  f.view.len = in.len;
  f.view.positions = f.pos.data();
  if (in.comp_count > 0) {
    f.ck.assign(in.comp_k, in.comp_k + d);
    f.cv.assign(in.comp_v, in.comp_v + d);
    f.view.comp_k = f.ck.data();
    f.view.comp_v = f.cv.data();
    f.view.comp_count = in.comp_count;
    f.view.comp_max_position = in.comp_max_position;
  }
  return f;
}

// AttendFlash of `group` random query heads at the given positions.
std::vector<float> Attend(const KvHeadView& view, int d, const std::vector<int32_t>& qpos, uint32_t seed) {
  const int group = 2;
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> q(qpos.size() * group * d), out(q.size());
  for (auto& x : q) x = nd(rng);
  AttentionQuery a{q.data(), group * d, qpos.data(), static_cast<int64_t>(qpos.size()), group, d,
                   1.0f / std::sqrt(float(d)), out.data(), group * d};
  AttendFlash(view, a);
  return out;
}

KvHeadPolicy MakePolicy(RazorParams p, int layers, int heads, std::vector<bool> retrieval = {}) {
  auto r = KvHeadPolicy::Make(p, layers, heads, std::move(retrieval));
  EXPECT_TRUE(r.ok()) << r.error();
  return std::move(r).value();
}

std::vector<bool> EveryThird(int n) {
  std::vector<bool> r(n);
  for (int i = 0; i < n; ++i) r[i] = i % 3 == 1;
  return r;
}

void ExpectSameView(const KvHeadView& a, const KvHeadView& b, int d, const std::string& where) {
  ASSERT_EQ(a.len, b.len) << where;
  for (int64_t j = 0; j < a.len; ++j) {
    ASSERT_EQ(PosAt(a, j), PosAt(b, j)) << where << " token " << j;
    ASSERT_EQ(std::memcmp(a.key(j, d), b.key(j, d), d * sizeof(float)), 0) << where << " key " << j;
    ASSERT_EQ(std::memcmp(a.value(j, d), b.value(j, d), d * sizeof(float)), 0) << where << " value " << j;
  }
  EXPECT_EQ(a.comp_count, b.comp_count) << where;
}

// The kept tokens of a compressed head are exactly sinks [0, N0) + window [seq - W, seq), with the synthetic
// rows, and the compensation token is the double-precision mean of every other token before the window.
void ExpectCompressedHead(const KvHeadView& view, const Synth& s, int l, int h, int64_t seq, int64_t n0,
                          int64_t w, bool comp, const std::string& where) {
  const int d = s.d;
  ASSERT_EQ(view.len, n0 + w) << where;
  for (int64_t j = 0; j < view.len; ++j) {
    const int64_t want = j < n0 ? j : seq - w + (j - n0);
    ASSERT_EQ(PosAt(view, j), want) << where << " token " << j;
    for (int i = 0; i < d; ++i) {
      ASSERT_EQ(view.key(j, d)[i], s.K(l, h, want, i)) << where << " token " << j;
      ASSERT_EQ(view.value(j, d)[i], s.V(l, h, want, i)) << where << " token " << j;
    }
  }
  const int64_t nd = seq - w - n0;
  if (!comp) {
    EXPECT_EQ(view.comp_count, 0) << where;
    EXPECT_EQ(view.comp_k, nullptr) << where;
    return;
  }
  ASSERT_EQ(view.comp_count, nd) << where;
  EXPECT_EQ(view.comp_max_position, seq - w - 1) << where;
  for (int i = 0; i < d; ++i) {
    double sk = 0, sv = 0;
    for (int64_t p = n0; p < seq - w; ++p) {
      sk += s.K(l, h, p, i);
      sv += s.V(l, h, p, i);
    }
    ASSERT_EQ(view.comp_k[i], static_cast<float>(sk / nd)) << where << " dim " << i;
    ASSERT_EQ(view.comp_v[i], static_cast<float>(sv / nd)) << where << " dim " << i;
  }
}

TEST(KvHeadPolicyTest, WindowFormulaAndErrors) {
  RazorParams p;  // paper defaults: N0 = 4, S0 = 4000, C = 5
  KvHeadPolicy policy = MakePolicy(p, 2, 4, std::vector<bool>(8, false));
  EXPECT_EQ(policy.Window(8192), 4000);
  EXPECT_EQ(policy.Window(100000), 20000);
  EXPECT_FALSE(policy.WouldCompress(4004));
  EXPECT_TRUE(policy.WouldCompress(4005));
  // The numbers: r = 0.15, C = 5 saves 43% at 8K and ~68% in the long-context limit.
  EXPECT_NEAR(1.0 - ExpectedKeptFraction(0.15, 8192, 4, 4000, true), 0.4345, 1e-3);
  EXPECT_NEAR(1.0 - ExpectedKeptFraction(0.15, 10000000, 4, 2000000, true), 0.68, 1e-3);
  EXPECT_EQ(ExpectedKeptFraction(0.15, 100, 4, 4000, true), 1.0);
  EXPECT_FALSE(KvHeadPolicy::Make(p, 2, 4, std::vector<bool>(7)).ok());  // profile of the wrong size
  EXPECT_FALSE(KvHeadPolicy::Make(p, 2, 4, {}).ok());                    // razor needs a profile
  RazorParams bad = p;
  bad.sinks = -1;
  EXPECT_FALSE(KvHeadPolicy::Make(bad, 2, 4, std::vector<bool>(8)).ok());
  bad = p;
  bad.window_frac = 1.5;
  EXPECT_FALSE(KvHeadPolicy::Make(bad, 2, 4, std::vector<bool>(8)).ok());
  p.mode = KvMode::kStreaming;
  KvHeadPolicy streaming = MakePolicy(p, 2, 4);
  EXPECT_FALSE(streaming.compensation());
  EXPECT_TRUE(streaming.compresses(1, 3));
  EXPECT_EQ(ParseKvMode("streaming").value(), KvMode::kStreaming);
  EXPECT_FALSE(ParseKvMode("fast").ok());
}

// (1) W >= N: razor drops nothing, and every view equals the full cache's bit for bit, attention included.
TEST(RazorKvCacheTest, HugeWindowEqualsFullCache) {
  const Synth s{3, 3, 32};
  const int64_t n = 700;
  RazorParams p;
  p.window_min = 1 << 30;
  p.block_tokens = 64;
  RazorKvCache razor(MakePolicy(p, s.layers, s.heads, EveryThird(9)), s.d, 2000);
  FullKvCache full(s.layers, s.heads, s.d, 2000);
  EXPECT_TRUE(razor.wants_single_prefill_call());
  Prompt(razor, s, n);
  Prompt(full, s, n, 256);
  Decode(razor, s, 5);
  Decode(full, s, 5);
  EXPECT_EQ(razor.stats().heads_compressed, 0);
  EXPECT_EQ(razor.stats().heads_too_short, 6);  // the 6 non-retrieval heads were left whole
  const std::vector<int32_t> qpos = {0, 3, 64, 400, 704};
  for (int l = 0; l < s.layers; ++l)
    for (int h = 0; h < s.heads; ++h) {
      const KvHeadView a = razor.View(l, h), b = full.View(l, h);
      ExpectSameView(a, b, s.d, fmt::format("layer {} head {}", l, h));
      EXPECT_EQ(Attend(a, s.d, qpos, l * 10 + h), Attend(b, s.d, qpos, l * 10 + h));
    }
}

// (2) Compression keeps exactly sinks + window; the compensation token is the brute-force mean; chunked
// prefill gives the same result as one call; attention over the paged view equals attention over a copy.
TEST(RazorKvCacheTest, CompressionKeepsSinksWindowAndMeanOfDropped) {
  const Synth s{2, 3, 16};
  const int64_t n = 1000, n0 = 4, w = 100;
  RazorParams p;
  p.sinks = n0;
  p.window_min = w;
  p.window_frac = 0.05;  // 50 < S0
  p.block_tokens = 16;
  std::vector<bool> retrieval = {false, true, false, true, false, false};
  for (int64_t chunk : {int64_t{1} << 30, int64_t{300}}) {
    RazorKvCache cache(MakePolicy(p, s.layers, s.heads, retrieval), s.d, 4096);
    Prompt(cache, s, n, chunk);
    const RazorKvStats st = cache.stats();
    EXPECT_EQ(st.heads_compressed, 4);
    EXPECT_EQ(st.heads_full, 2);
    EXPECT_EQ(st.window, w);
    EXPECT_EQ(st.tokens_dropped, 4 * (n - n0 - w));
    for (int l = 0; l < s.layers; ++l)
      for (int h = 0; h < s.heads; ++h) {
        const std::string where = fmt::format("chunk {} layer {} head {}", chunk, l, h);
        const KvHeadView view = cache.View(l, h);
        if (retrieval[l * s.heads + h]) {
          ASSERT_EQ(view.len, n) << where;
          EXPECT_EQ(view.comp_count, 0);
          for (int64_t j = 0; j < n; j += 37) EXPECT_EQ(view.key(j, s.d)[5], s.K(l, h, j, 5)) << where;
        } else {
          ExpectCompressedHead(view, s, l, h, n, n0, w, true, where);
        }
        Flat flat = Flatten(view, s.d);
        const std::vector<int32_t> qpos = {999, 1000, 1003};
        EXPECT_EQ(Attend(view, s.d, qpos, 3), Attend(flat.view, s.d, qpos, 3)) << where;
      }
    // Re-packed: a compressed head holds ceil((N0 + W) / bt) blocks.
    EXPECT_EQ(cache.kv_block_bytes(), (4 * 7 + 2 * 63) * RazorKvCache::block_bytes(16, s.d, KvType::kF32));
    // Paper decode: compressed heads grow by one token per step; the compensation token stays.
    Decode(cache, s, 3);
    EXPECT_EQ(cache.View(0, 0).len, n0 + w + 3);
    EXPECT_EQ(cache.View(0, 0).comp_count, n - n0 - w);
    EXPECT_EQ(cache.View(0, 0).positions[n0 + w + 2], n + 2);
  }
}

// (3) Measured bytes == what the pool handed out, and the reduction matches the formula within a block.
TEST(RazorKvCacheTest, BytesMatchPoolAndKeptFractionFormula) {
  const Synth s{30, 3, 64};
  const int64_t n = 8192;
  RazorParams p;
  p.sinks = 4;
  p.window_min = 1024;
  p.window_frac = 0.2;
  std::vector<bool> retrieval(90, false);
  std::mt19937 rng(5);
  for (int picked = 0; picked < 14;) {  // 14 / 90 = 0.156 of the KV heads
    const size_t i = rng() % 90;
    if (!retrieval[i]) retrieval[i] = true, ++picked;
  }
  auto pool = std::make_shared<KvBlockPool>(RazorKvCache::block_bytes(64, s.d, KvType::kF32));
  RazorKvCache cache(MakePolicy(p, s.layers, s.heads, retrieval), s.d, n, KvType::kF32, pool);
  const size_t head_full_bytes = n * 2 * s.d * sizeof(float);
  cache.BeginPrefill(n);
  std::vector<float> k, v;
  size_t peak = 0;
  for (int l = 0; l < s.layers; ++l) {
    s.Fill(l, 0, n, &k, &v);
    ASSERT_TRUE(cache.Append(l, 0, n, k.data(), v.data()).ok());
    peak = std::max(peak, pool->bytes_in_use());
    cache.OnLayerDone(l, true);
  }
  cache.CommitTokens(n);
  const int64_t w = 1638;  // max(1024, 8192 / 5)
  size_t expect_blocks = 0;
  for (int l = 0; l < s.layers; ++l)
    for (int h = 0; h < s.heads; ++h) {
      const KvHeadView view = cache.View(l, h);
      EXPECT_EQ(view.len, retrieval[l * 3 + h] ? n : 4 + w);
      expect_blocks += (view.first_row + view.len + 63) / 64;
    }
  EXPECT_EQ(cache.kv_block_bytes(), pool->bytes_in_use());
  EXPECT_EQ(cache.kv_block_bytes(), expect_blocks * pool->block_bytes());
  EXPECT_EQ(cache.compensation_bytes(), 76u * 2 * s.d * sizeof(float));
  EXPECT_EQ(cache.bytes_allocated(), cache.kv_block_bytes() + cache.compensation_bytes());
  const RazorKvStats st = cache.stats();
  EXPECT_EQ(st.full_cache_bytes, 90 * head_full_bytes);
  const double measured = static_cast<double>(cache.bytes_allocated()) / static_cast<double>(90 * head_full_bytes);
  const double r = 14.0 / 90.0;
  const double formula = ExpectedKeptFraction(r, n, 4, w, true);
  EXPECT_NEAR(cache.policy().ExpectedKeptFraction(n), formula, 1e-12);
  EXPECT_GE(measured, formula);
  EXPECT_LE(measured - formula, (1 - r) * 64.0 / n);  // a compressed head rounds up to whole blocks
  // Layer by layer: at most one layer holds its whole prompt at a time.
  EXPECT_LE(peak, cache.bytes_allocated() + 3 * head_full_bytes);
  std::printf("[ measured ] kept %.4f of the full KV (formula %.4f): %.1f MiB of %.1f MiB; index %.2f MiB; "
              "peak %.1f MiB\n", measured, formula, cache.bytes_allocated() / 1048576.0,
              st.full_cache_bytes / 1048576.0, st.index_bytes / 1048576.0, peak / 1048576.0);
  cache.Clear();
  EXPECT_EQ(pool->bytes_in_use(), 0u);
  EXPECT_EQ(cache.bytes_allocated(), 0u);
}

// (4) decode_fold: a compressed head keeps exactly N0 + W tokens and its bytes stop changing; the folded
// compensation token is the mean of everything before the window. Without folding the cache grows.
TEST(RazorKvCacheTest, DecodeFoldKeepsMemoryBounded) {
  const Synth s{2, 2, 16};
  const int64_t n = 600, n0 = 4, w = 128;
  for (KvMode mode : {KvMode::kRazor, KvMode::kStreaming}) {
    RazorParams p;
    p.mode = mode;
    p.sinks = n0;
    p.window_min = w;
    p.window_frac = 0.1;
    p.block_tokens = 16;
    p.decode_fold = true;
    const bool comp = mode == KvMode::kRazor;
    RazorKvCache cache(MakePolicy(p, s.layers, s.heads, comp ? std::vector<bool>(4, false) : std::vector<bool>{}),
                       s.d, n + 5000);
    Prompt(cache, s, n);
    Decode(cache, s, 100);
    const size_t bytes_100 = cache.bytes_allocated();
    ExpectCompressedHead(cache.View(1, 1), s, 1, 1, n + 100, n0, w, comp, "after 100");
    for (int64_t step = 100; step < 4000; ++step) {
      Decode(cache, s, 1);
      ASSERT_EQ(cache.bytes_allocated(), bytes_100) << "step " << step;
    }
    EXPECT_EQ(cache.kv_block_bytes(), cache.pool().bytes_in_use());
    EXPECT_EQ(cache.stats().tokens_folded, 4 * 4000);
    for (int l = 0; l < s.layers; ++l)
      for (int h = 0; h < s.heads; ++h) {
        const KvHeadView view = cache.View(l, h);
        ExpectCompressedHead(view, s, l, h, n + 4000, n0, w, comp, fmt::format("after 4000, {} {}", l, h));
        Flat flat = Flatten(view, s.d);
        const std::vector<int32_t> qpos = {n + 3999, n + 4000};
        EXPECT_EQ(Attend(view, s.d, qpos, 9), Attend(flat.view, s.d, qpos, 9));
      }
  }
  RazorParams p;  // paper decode (no folding): grows
  p.sinks = n0;
  p.window_min = w;
  p.block_tokens = 16;
  RazorKvCache grows(MakePolicy(p, s.layers, s.heads, std::vector<bool>(4, false)), s.d, n + 5000);
  Prompt(grows, s, n);
  Decode(grows, s, 100);
  const size_t bytes_100 = grows.bytes_allocated();
  Decode(grows, s, 3900);
  EXPECT_GT(grows.bytes_allocated(), bytes_100 + 4 * 3800 * 2 * s.d * sizeof(float));
}

size_t RssBytes() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::stoull(line.substr(6)) * 1024;
  return 0;
}

// (5) Compressing a ~190 MiB cache gives the memory back to the system: RSS drops by most of the freed bytes.
TEST(RazorKvCacheTest, CompressionLowersRss) {
  const int layers = 6, heads = 4, d = 128;
  const int64_t n = 8192;
  RazorParams p;
  p.mode = KvMode::kStreaming;
  p.window_min = 256;
  p.window_frac = 0.0;
  RazorKvCache cache(MakePolicy(p, layers, heads), d, n);
  std::vector<float> k(n * heads * d), v(k.size());
  for (size_t i = 0; i < k.size(); ++i) k[i] = v[i] = static_cast<float>(i % 1013);
  cache.BeginPrefill(n);
  for (int l = 0; l < layers; ++l) ASSERT_TRUE(cache.Append(l, 0, n, k.data(), v.data()).ok());
  const size_t bytes_full = cache.bytes_allocated(), rss_full = RssBytes();
  for (int l = 0; l < layers; ++l) cache.OnLayerDone(l, true);  // compress every layer now
  cache.CommitTokens(n);
  const size_t freed = bytes_full - cache.bytes_allocated(), rss_after = RssBytes();
  ASSERT_GT(freed, size_t{150} << 20);
  std::printf("[ measured ] cache %.1f -> %.1f MiB; RSS %.1f -> %.1f MiB\n", bytes_full / 1048576.0,
              cache.bytes_allocated() / 1048576.0, rss_full / 1048576.0, rss_after / 1048576.0);
  EXPECT_GE(static_cast<double>(rss_full) - static_cast<double>(rss_after), 0.85 * static_cast<double>(freed));
}

// (6) Full mode: the same random K/V through FullKvCache and RazorKvCache give identical views.
TEST(RazorKvCacheTest, FullModeMatchesFullKvCache) {
  const int layers = 2, heads = 3, d = 24;
  RazorParams p;
  p.mode = KvMode::kFull;
  p.block_tokens = 32;
  RazorKvCache razor(MakePolicy(p, layers, heads), d, 1000);
  FullKvCache full(layers, heads, d, 1000);
  EXPECT_FALSE(razor.wants_single_prefill_call());
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  auto feed = [&](int64_t len) {
    const int64_t pos0 = full.sequence_length();
    for (int l = 0; l < layers; ++l) {
      std::vector<float> k(len * heads * d), v(k.size());
      for (auto& x : k) x = nd(rng);
      for (auto& x : v) x = nd(rng);
      ASSERT_TRUE(full.Append(l, pos0, len, k.data(), v.data()).ok());
      ASSERT_TRUE(razor.Append(l, pos0, len, k.data(), v.data()).ok());
      razor.OnLayerDone(l, len > 1);
    }
    full.CommitTokens(len);
    razor.CommitTokens(len);
  };
  razor.BeginPrefill(300);
  feed(128), feed(128), feed(44);
  for (int i = 0; i < 50; ++i) feed(1);
  for (int l = 0; l < layers; ++l)
    for (int h = 0; h < heads; ++h) ExpectSameView(razor.View(l, h), full.View(l, h), d, fmt::format("{} {}", l, h));
  EXPECT_EQ(razor.kv_block_bytes(), razor.pool().bytes_in_use());
  EXPECT_EQ(razor.kv_block_bytes(), size_t(layers * heads * 11) * RazorKvCache::block_bytes(32, d, KvType::kF32));  // 350 -> 11 blocks
  std::vector<float> k(heads * d), v(k.size());
  EXPECT_FALSE(razor.Append(0, 351, 1, k.data(), v.data()).ok());  // gap in positions
  EXPECT_FALSE(razor.Append(0, 350, 651, std::vector<float>(651 * heads * d).data(),
                            std::vector<float>(651 * heads * d).data()).ok());  // over capacity
}

// (7) Streaming: every head keeps sinks + window, none has a compensation token.
TEST(RazorKvCacheTest, StreamingKeepsSinksAndWindowWithoutCompensation) {
  const Synth s{2, 3, 8};
  const int64_t n = 500, n0 = 4, w = 64;
  RazorParams p;
  p.mode = KvMode::kStreaming;
  p.compensation = true;  // ignored in streaming mode
  p.sinks = n0;
  p.window_min = w;
  p.window_frac = 0.0;
  p.block_tokens = 16;
  RazorKvCache cache(MakePolicy(p, s.layers, s.heads), s.d, 1000);
  EXPECT_TRUE(cache.wants_single_prefill_call());
  Prompt(cache, s, n);
  EXPECT_EQ(cache.stats().heads_compressed, 6);
  EXPECT_EQ(cache.compensation_bytes(), 0u);
  for (int l = 0; l < s.layers; ++l)
    for (int h = 0; h < s.heads; ++h)
      ExpectCompressedHead(cache.View(l, h), s, l, h, n, n0, w, false, fmt::format("{} {}", l, h));
}

// One layer, two heads (head 1 a retrieval head), 2 sinks, a 40-token window, 8-token blocks: the shape of
// the tests of heads a short prompt leaves whole.
RazorParams SinksTwoWindowForty() {
  RazorParams p;
  p.sinks = 2;
  p.window_min = 40;
  p.window_frac = 0.0;
  p.block_tokens = 8;
  return p;
}

// A short first prompt is left whole; a continuation that pushes it past N0 + W compresses it then.
TEST(RazorKvCacheTest, ContinuationPromptCompressesHeadsLeftWhole) {
  const Synth s{1, 2, 8};
  RazorKvCache cache(MakePolicy(SinksTwoWindowForty(), 1, 2, {false, true}), s.d, 1000);
  Prompt(cache, s, 30);
  EXPECT_EQ(cache.stats().heads_too_short, 1);
  EXPECT_EQ(cache.View(0, 0).len, 30);
  Prompt(cache, s, 70);
  EXPECT_EQ(cache.stats().heads_too_short, 0);
  ExpectCompressedHead(cache.View(0, 0), s, 0, 0, 100, 2, 40, true, "continuation");
  EXPECT_EQ(cache.View(0, 1).len, 100);
  cache.Clear();
  EXPECT_EQ(cache.sequence_length(), 0);
  EXPECT_EQ(cache.kv_block_bytes(), 0u);
  Prompt(cache, s, 100);  // after Clear a new prompt starts from position 0
  ExpectCompressedHead(cache.View(0, 0), s, 0, 0, 100, 2, 40, true, "after clear");
}

// decode_fold bounds a head whose prompt was too short to cut: once decode takes it past N0 + W it is cut and
// then folds, holding N0 + W rows and a compensation token over everything dropped (without decode_fold it
// grows, as the paper's cache does).
TEST(RazorKvCacheTest, DecodeFoldCutsAHeadLeftWholeByAShortPrompt) {
  const Synth s{1, 2, 8};
  RazorParams p = SinksTwoWindowForty();
  for (bool fold : {false, true}) {
    p.decode_fold = fold;
    RazorKvCache cache(MakePolicy(p, 1, 2, {false, true}), s.d, 1000);
    Prompt(cache, s, 30);
    EXPECT_EQ(cache.stats().heads_too_short, 1);
    Decode(cache, s, 70);
    EXPECT_EQ(cache.View(0, 1).len, 100);  // the retrieval head keeps everything
    if (!fold) {
      EXPECT_EQ(cache.View(0, 0).len, 100);
      EXPECT_EQ(cache.stats().heads_too_short, 1);
      continue;
    }
    EXPECT_EQ(cache.stats().heads_too_short, 0);
    EXPECT_EQ(cache.stats().heads_compressed, 1);
    const KvHeadView v = cache.View(0, 0);
    ASSERT_EQ(v.len, 2 + 40);
    EXPECT_EQ(v.comp_count, 100 - 2 - 40);
    for (int64_t j = 0; j < 2; ++j) EXPECT_EQ(PosAt(v, j), j);             // the sinks
    for (int64_t j = 2; j < v.len; ++j) EXPECT_EQ(PosAt(v, j), 60 + (j - 2));  // the last 40 positions
  }
}


float RoundThrough(KvType t, float x) {
  uint16_t h[2];
  float y;
  StoreKvRow(t, &x, 1, h);
  LoadKvRow(t, h, 1, &y);
  return y;
}

// f16 / bf16 storage: every kept row reads back as the stored type's rounding of what was appended, the
// compensation token is the exact (double-summed) mean of the rounded dropped rows, kept in fp32, and the
// blocks take half the bytes of an fp32 cache with the same policy.
TEST(RazorKvCacheTest, HalfStorageKeepsRoundedRowsAndExactCompensation) {
  for (KvType type : {KvType::kF16, KvType::kBF16}) {
    const Synth s{2, 3, 64};
    RazorParams p;
    p.sinks = 4;
    p.window_min = 40;
    p.window_frac = 0.0;
    p.decode_fold = true;
    p.block_tokens = 16;
    const std::vector<bool> retrieval = {true, false, false, false, true, false};
    RazorKvCache cache(MakePolicy(p, s.layers, s.heads, retrieval), s.d, 1000, type);
    RazorKvCache f32(MakePolicy(p, s.layers, s.heads, retrieval), s.d, 1000, KvType::kF32);
    const int64_t n = 300, steps = 37;
    Prompt(cache, s, n);
    Decode(cache, s, steps);
    Prompt(f32, s, n);
    Decode(f32, s, steps);
    EXPECT_EQ(cache.kv_block_bytes() * 2, f32.kv_block_bytes()) << KvTypeName(type);
    EXPECT_EQ(cache.compensation_bytes(), f32.compensation_bytes());
    std::vector<float> row(s.d);
    for (int l = 0; l < s.layers; ++l)
      for (int h = 0; h < s.heads; ++h) {
        const KvHeadView v = cache.View(l, h);
        ASSERT_EQ(v.type, type);
        ASSERT_EQ(v.len, retrieval[l * s.heads + h] ? n + steps : 4 + 40);
        for (int64_t j = 0; j < v.len; ++j) {
          const int32_t pos = PosAt(v, j);
          v.KeyF32(j, s.d, row.data());
          for (int i = 0; i < s.d; ++i) ASSERT_EQ(row[i], RoundThrough(type, s.K(l, h, pos, i))) << j;
          v.ValueF32(j, s.d, row.data());
          for (int i = 0; i < s.d; ++i) ASSERT_EQ(row[i], RoundThrough(type, s.V(l, h, pos, i))) << j;
        }
        if (retrieval[l * s.heads + h]) {
          EXPECT_EQ(v.comp_count, 0);
          continue;
        }
        // Dropped: positions [4, n + steps - 40), every one folded into the token.
        const int64_t dropped = n + steps - 40 - 4;
        ASSERT_EQ(v.comp_count, dropped);
        for (int i = 0; i < s.d; ++i) {
          double sk = 0, sv = 0;
          for (int64_t q = 4; q < 4 + dropped; ++q) {
            sk += RoundThrough(type, s.K(l, h, q, i));
            sv += RoundThrough(type, s.V(l, h, q, i));
          }
          ASSERT_EQ(v.comp_k[i], static_cast<float>(sk / dropped)) << i;
          ASSERT_EQ(v.comp_v[i], static_cast<float>(sv / dropped)) << i;
        }
      }
  }
}

// A shared pool with a fixed capacity: the sequence that cannot get blocks gets an error naming the pool;
// the sequence already running is untouched (same rows, can still grow once blocks come back).
TEST(RazorKvCacheTest, PoolExhaustionIsAnErrorForThatSequenceOnly) {
  const Synth s{2, 2, 32};
  RazorParams p;
  p.mode = KvMode::kFull;
  p.block_tokens = 16;
  const size_t block = RazorKvCache::block_bytes(16, s.d, KvType::kF16);
  // 2 layers x 2 heads x 4 blocks (64 tokens) for the first sequence, 4 blocks left over.
  auto pool = std::make_shared<KvBlockPool>(block, KvBlockPoolOptions{.capacity_bytes = 20 * block});
  RazorKvCache a(MakePolicy(p, s.layers, s.heads), s.d, 1000, KvType::kF16, pool);
  RazorKvCache b(MakePolicy(p, s.layers, s.heads), s.d, 1000, KvType::kF16, pool);
  Prompt(a, s, 64);
  ASSERT_EQ(pool->blocks_in_use(), 16u);
  std::vector<float> k, v;
  s.Fill(0, 0, 64, &k, &v);
  b.BeginPrefill(64);
  const Status st = b.Append(0, 0, 64, k.data(), v.data());  // needs 8 blocks, 4 are left
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("KV pool exhausted"), std::string::npos) << st.message();
  EXPECT_EQ(pool->blocks_in_use(), 20u);  // head 0 took the last 4 blocks, head 1 found none
  std::vector<float> row(s.d);
  for (int l = 0; l < s.layers; ++l)
    for (int h = 0; h < s.heads; ++h) {
      const KvHeadView view = a.View(l, h);
      ASSERT_EQ(view.len, 64);
      for (int64_t j = 0; j < 64; ++j) {
        view.KeyF32(j, s.d, row.data());
        for (int i = 0; i < s.d; ++i) ASSERT_EQ(row[i], RoundThrough(KvType::kF16, s.K(l, h, j, i)));
      }
    }
  b.Clear();  // the failed sequence gives back what it took
  EXPECT_EQ(pool->blocks_in_use(), 16u);
  Decode(a, s, 5);  // a grows again
  EXPECT_EQ(a.View(1, 1).len, 69);
}

}  // namespace
}  // namespace razor
