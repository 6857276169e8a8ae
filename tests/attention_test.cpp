// The flash attention kernel against the plain-softmax reference, on random ragged heads.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "ops/attention.h"
#include "ops/matmul.h"
#include "simd_levels_for_tests.h"

namespace razor {
namespace {

struct RandomHead {
  std::vector<float> k, v, ck, cv;
  std::vector<int32_t> pos;
  KvHeadView view;
};

RandomHead MakeHead(std::mt19937& rng, int64_t len, int d, bool gaps, int64_t comp_count) {
  std::normal_distribution<float> nd(0.0f, 1.0f);
  RandomHead h;
  h.k.resize(len * d);
  h.v.resize(len * d);
  for (auto& x : h.k) x = nd(rng) * 2.0f;
  for (auto& x : h.v) x = nd(rng);
  int32_t p = 0;
  for (int64_t j = 0; j < len; ++j) {
    h.pos.push_back(p);
    p += gaps ? 1 + static_cast<int32_t>(rng() % 3) : 1;
  }
  h.view.k = h.k.data();
  h.view.v = h.v.data();
  h.view.len = len;
  h.view.positions = gaps ? h.pos.data() : nullptr;
  if (comp_count > 0) {
    h.ck.resize(d);
    h.cv.resize(d);
    for (auto& x : h.ck) x = nd(rng);
    for (auto& x : h.cv) x = nd(rng);
    h.view.comp_k = h.ck.data();
    h.view.comp_v = h.cv.data();
    h.view.comp_count = comp_count;
    h.view.comp_max_position = -1;
  }
  return h;
}

// The same tokens laid out as an engine's pool stores them: blocks [2, bt, d] of `type` (K rows, then V rows)
// at base + id * block_bytes, the head's block ids out of order, token j at row first_row + j, every unused
// row poisoned (a kernel that reads outside the head's rows gets NaN / huge numbers).
struct PagedHead {
  std::vector<uint8_t> pool;
  std::vector<int32_t> ids;
  KvHeadView view;
};
PagedHead Page(const RandomHead& h, int d, int64_t bt, int64_t first_row, KvType type) {
  PagedHead p;
  const int64_t len = h.view.len;
  const int64_t n_blocks = (first_row + len + bt - 1) / bt;
  const size_t row_bytes = static_cast<size_t>(d) * KvTypeBytes(type);
  const size_t block_bytes = 2 * bt * row_bytes;
  const int64_t pool_blocks = 2 * n_blocks + 1;
  p.pool.assign(pool_blocks * block_bytes, 0xFF);  // NaN in every type
  for (int64_t b = 0; b < n_blocks; ++b) p.ids.push_back(static_cast<int32_t>(pool_blocks - 1 - 2 * b));
  for (int64_t j = 0; j < len; ++j) {
    const int64_t r = first_row + j;
    uint8_t* blk = p.pool.data() + p.ids[r / bt] * block_bytes;
    StoreKvRow(type, h.k.data() + j * d, d, blk + (r % bt) * row_bytes);
    StoreKvRow(type, h.v.data() + j * d, d, blk + (bt + r % bt) * row_bytes);
  }
  p.view = h.view;
  p.view.k = p.view.v = nullptr;
  p.view.type = type;
  p.view.pool_base = p.pool.data();
  p.view.block_bytes = block_bytes;
  p.view.block_ids = p.ids.data();
  p.view.block_tokens = bt;
  p.view.first_row = first_row;
  return p;
}

// h with its keys and values rounded through `type` (what a cache of that type holds), contiguous fp32.
RandomHead RoundedThrough(const RandomHead& h, int d, KvType type) {
  RandomHead r = h;
  std::vector<uint16_t> tmp(d * 2);
  for (size_t j = 0; j < h.k.size(); j += d) {
    StoreKvRow(type, &h.k[j], d, tmp.data());
    LoadKvRow(type, tmp.data(), d, &r.k[j]);
    StoreKvRow(type, &h.v[j], d, tmp.data());
    LoadKvRow(type, tmp.data(), d, &r.v[j]);
  }
  r.view.k = r.k.data();
  r.view.v = r.v.data();
  r.view.positions = h.view.positions ? r.pos.data() : nullptr;
  if (h.view.comp_count) {
    r.view.comp_k = r.ck.data();
    r.view.comp_v = r.cv.data();
  }
  return r;
}

using testing::ForEachIsa;

TEST(AttentionTest, FlashMatchesReferenceOnRaggedHeads) {
  ForEachIsa([] {
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int d : {16, 64, 128}) {
      for (int64_t len : {1, 5, 63, 64, 65, 300}) {
        // (tokens, group): 4 x 1 rows take the plain block loops; 4 x 3, 13 x 3 and 13 x 7 (tiles of several
        // 16-row panels, partial last panel, row remainders) take the register-blocked AVX2 / AVX-512 kernels.
        for (auto [n_tok, group] : {std::pair<int64_t, int>{4, 1}, {4, 3}, {13, 3}, {13, 7}}) {
          for (bool gaps : {false, true}) {
            for (int64_t comp : {0, 1, 1000}) {
              RandomHead h = MakeHead(rng, len, d, gaps, comp);
              std::vector<float> q(n_tok * group * d), o_ref(q.size()), o_fast(q.size());
              for (auto& x : q) x = nd(rng);
              const int32_t last = gaps ? h.pos.back() : static_cast<int32_t>(len - 1);
              std::vector<int32_t> qpos = {0, last / 2, last, last + 10};
              if (n_tok > 4) {
                qpos.clear();
                for (int64_t t = 0; t + 1 < n_tok; ++t) qpos.push_back(static_cast<int32_t>(last * t / (n_tok - 2)));
                qpos.push_back(last + 10);
              }
              AttentionQuery a{q.data(), group * d, qpos.data(), n_tok, group, d, 1.0f / std::sqrt(float(d)),
                               o_ref.data(), group * d};
              AttendReference(h.view, a);
              a.out = o_fast.data();
              AttendFlash(h.view, a);
              for (size_t i = 0; i < q.size(); ++i)
                ASSERT_NEAR(o_fast[i], o_ref[i], 2e-5f * (1.0f + std::fabs(o_ref[i])))
                    << "d=" << d << " len=" << len << " group=" << group << " gaps=" << gaps << " comp=" << comp;
              // The same tokens, paged in blocks of 7 tokens: both kernels agree with the contiguous result.
              PagedHead pg = Page(h, d, 7, 0, KvType::kF32);
              const KvHeadView& paged = pg.view;
              for (auto fn : {&AttendReference, &AttendFlash}) {
                fn(paged, a);
                for (size_t i = 0; i < q.size(); ++i)
                  ASSERT_NEAR(o_fast[i], o_ref[i], 2e-5f * (1.0f + std::fabs(o_ref[i]))) << "paged";
              }
            }
          }
        }
      }
    }
  });
}

// The AVX-512 block kernels run the same chains of fp32 operations as the AVX2 ones: the same bits.
// Decode: one query token of every group size a decode tile has (1..7 heads, the row kernels: p.v for
// several rows at once), over a paged head whose first token sits mid-block (first_row > 0, as a compressed
// head's is) and whose blocks are split at every block_tokens-th key.
TEST(AttentionTest, DecodeTileOfEveryGroupSizeMatchesReference) {
  ForEachIsa([] {
    std::mt19937 rng(11);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int d : {16, 64, 80, 128}) {
      for (int64_t len : {1, 64, 200}) {
        for (int group = 1; group <= 7; ++group) {
          RandomHead h = MakeHead(rng, len, d, /*gaps=*/false, /*comp_count=*/0);
          constexpr int64_t kBlockTokens = 16, kFirstRow = 5;
          PagedHead pg = Page(h, d, kBlockTokens, kFirstRow, KvType::kF32);
          const KvHeadView& paged = pg.view;
          std::vector<float> q(static_cast<size_t>(group) * d), o_ref(q.size()), o_fast(q.size());
          for (auto& x : q) x = nd(rng);
          const int32_t pos = static_cast<int32_t>(len - 1);
          AttentionQuery a{q.data(), group * d, &pos, 1, group, d, 1.0f / std::sqrt(float(d)), o_ref.data(),
                           group * d};
          AttendReference(h.view, a);
          a.out = o_fast.data();
          AttendFlash(paged, a);
          for (size_t i = 0; i < q.size(); ++i)
            ASSERT_NEAR(o_fast[i], o_ref[i], 2e-5f * (1.0f + std::fabs(o_ref[i])))
                << "d=" << d << " len=" << len << " group=" << group << " i=" << i;
        }
      }
    }
  });
}

TEST(AttentionTest, Avx512BlocksGiveTheAvx2Numbers) {
  const std::string best = MatMulIsa();
  if (!SetMatMulIsa("avx512") || !SetMatMulIsa("avx2")) GTEST_SKIP() << "needs a CPU with AVX-512";
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  for (int d : {48, 64}) {
    RandomHead h = MakeHead(rng, 300, d, true, 1000);
    const int64_t n_tok = 12;  // two tiles of 6 tokens x 7 heads = 42 rows: every tile takes the block kernels
    const int group = 7;
    std::vector<float> q(n_tok * group * d), o2(q.size()), o512(q.size());
    for (auto& x : q) x = nd(rng);
    std::vector<int32_t> qpos;
    for (int64_t t = 0; t < n_tok; ++t) qpos.push_back(static_cast<int32_t>(h.pos.back() * t / (n_tok - 1)));
    std::vector<float> slopes(group, 0.0f);
    for (bool alibi : {false, true}) {
      if (alibi) slopes = {0.5f, 0.25f, 0.125f, 0.0625f, 0.03125f, 0.0078125f, 0.0f};
      AttentionQuery a{q.data(), group * d, qpos.data(), n_tok, group, d, 1.0f / std::sqrt(float(d)),
                       o2.data(), group * d};
      a.alibi_slopes = alibi ? slopes.data() : nullptr;
      ASSERT_TRUE(SetMatMulIsa("avx2"));
      AttendFlash(h.view, a);
      ASSERT_TRUE(SetMatMulIsa("avx512"));
      a.out = o512.data();
      AttendFlash(h.view, a);
      for (size_t i = 0; i < q.size(); ++i) ASSERT_EQ(o512[i], o2[i]) << "d=" << d << " alibi=" << alibi << " i=" << i;
    }
  }
  SetMatMulIsa(best.c_str());
}

// Compensation token: attention equals the brute-force formula
// o = (Σ e^{s_i} v_i + Nd e^{ŝ} v̂) / (Σ e^{s_i} + Nd e^{ŝ}), computed here in double.
TEST(AttentionTest, CompensationTokenEqualsBruteForceFormula) {
  std::mt19937 rng(11);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int d = 32;
  const int64_t len = 40, nd_count = 77;
  RandomHead h = MakeHead(rng, len, d, false, nd_count);
  std::vector<float> q(d), out(d);
  for (auto& x : q) x = nd(rng);
  int32_t pos = static_cast<int32_t>(len - 1);
  const float scale = 1.0f / std::sqrt(float(d));
  AttentionQuery a{q.data(), d, &pos, 1, 1, d, scale, out.data(), d};
  std::vector<double> num(d, 0.0);
  double den = 0;
  for (int64_t j = 0; j < len; ++j) {
    double s = 0;
    for (int i = 0; i < d; ++i) s += double(q[i]) * h.k[j * d + i];
    const double w = std::exp(s * scale);
    den += w;
    for (int i = 0; i < d; ++i) num[i] += w * h.v[j * d + i];
  }
  double sc = 0;
  for (int i = 0; i < d; ++i) sc += double(q[i]) * h.ck[i];
  const double wc = nd_count * std::exp(sc * scale);
  den += wc;
  for (int i = 0; i < d; ++i) num[i] += wc * h.cv[i];
  float lse = 0;
  a.lse = &lse;
  for (auto fn : {&AttendReference, &AttendFlash}) {
    lse = 0;
    fn(h.view, a);
    for (int i = 0; i < d; ++i) EXPECT_NEAR(out[i], num[i] / den, 1e-5);
    EXPECT_NEAR(lse, std::log(den), 1e-4);  // softmax normaliser, compensation token included
  }
}

// ALiBi: the flash kernel adds the same per-key bias - slope * (pq - pk) as the reference, on ragged,
// gapped, paged heads, with and without a compensation token.
TEST(AttentionTest, FlashMatchesReferenceWithAlibiSlopes) {
  ForEachIsa([] {
    std::mt19937 rng(17);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int d : {16, 64}) {
      for (int64_t len : {1, 63, 65, 300}) {
        for (int group : {1, 3}) {
          for (bool gaps : {false, true}) {
            for (int64_t comp : {0, 1000}) {
              RandomHead h = MakeHead(rng, len, d, gaps, comp);
              const int64_t n_tok = 4;
              std::vector<float> q(n_tok * group * d), o_ref(q.size()), o_fast(q.size()), o_plain(q.size());
              for (auto& x : q) x = nd(rng);
              std::vector<float> slopes = {0.5f, 0.0078125f, 0.0f};
              const int32_t last = gaps ? h.pos.back() : static_cast<int32_t>(len - 1);
              std::vector<int32_t> qpos = {0, last / 2, last, last + 10};
              AttentionQuery a{q.data(), group * d, qpos.data(), n_tok, group, d, 1.0f / std::sqrt(float(d)),
                               o_plain.data(), group * d};
              AttendReference(h.view, a);
              a.alibi_slopes = slopes.data();
              a.out = o_ref.data();
              AttendReference(h.view, a);
              a.out = o_fast.data();
              AttendFlash(h.view, a);
              bool differs = false;
              for (size_t i = 0; i < q.size(); ++i) {
                ASSERT_NEAR(o_fast[i], o_ref[i], 2e-5f * (1.0f + std::fabs(o_ref[i])))
                    << "d=" << d << " len=" << len << " group=" << group << " gaps=" << gaps << " comp=" << comp;
                differs |= std::fabs(o_ref[i] - o_plain[i]) > 1e-3f;
              }
              if (len > 1) {
                EXPECT_TRUE(differs) << "slopes changed nothing";
              }
            }
          }
        }
      }
    }
  });
}

// Under ALiBi the compensation token stands for the contiguous dropped positions (comp_max - Nd, comp_max]
// with their exact ALiBi weights (AlibiCompensationBias). When every dropped token has the same key and
// value, the compressed head therefore gives exactly the full-cache result.
TEST(AttentionTest, AlibiCompensationIsExactForIdenticalDroppedTokens) {
  std::mt19937 rng(23);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int d = 16;
  const int64_t n = 200, n0 = 4, n_drop = 150;  // dropped positions [4, 154), window [154, 200)
  std::vector<float> k(n * d), v(n * d), ck(d), cv(d);
  for (auto& x : ck) x = nd(rng);
  for (auto& x : cv) x = nd(rng);
  for (int64_t j = 0; j < n; ++j)
    for (int i = 0; i < d; ++i) {
      const bool dropped = j >= n0 && j < n0 + n_drop;
      k[j * d + i] = dropped ? ck[i] : nd(rng);
      v[j * d + i] = dropped ? cv[i] : nd(rng);
    }
  KvHeadView full;
  full.k = k.data();
  full.v = v.data();
  full.len = n;
  std::vector<float> kk, vv;
  std::vector<int32_t> pos;
  for (int64_t j = 0; j < n; ++j) {
    if (j >= n0 && j < n0 + n_drop) continue;
    kk.insert(kk.end(), &k[j * d], &k[j * d] + d);
    vv.insert(vv.end(), &v[j * d], &v[j * d] + d);
    pos.push_back(static_cast<int32_t>(j));
  }
  KvHeadView comp;
  comp.k = kk.data();
  comp.v = vv.data();
  comp.len = static_cast<int64_t>(pos.size());
  comp.positions = pos.data();
  comp.comp_k = ck.data();
  comp.comp_v = cv.data();
  comp.comp_count = n_drop;
  comp.comp_max_position = static_cast<int32_t>(n0 + n_drop - 1);
  const int group = 3;
  std::vector<float> slopes = {0.25f, 0.01f, 0.0f};
  std::vector<float> q(2 * group * d), o_full(q.size()), o_comp(q.size());
  for (auto& x : q) x = nd(rng);
  std::vector<int32_t> qpos = {static_cast<int32_t>(n - 1), static_cast<int32_t>(n - 1)};
  AttentionQuery a{q.data(), group * d, qpos.data(), 2, group, d, 1.0f / std::sqrt(float(d)), o_full.data(),
                   group * d};
  a.alibi_slopes = slopes.data();
  AttendReference(full, a);
  for (auto fn : {&AttendReference, &AttendFlash}) {
    a.out = o_comp.data();
    fn(comp, a);
    for (size_t i = 0; i < q.size(); ++i) ASSERT_NEAR(o_comp[i], o_full[i], 2e-5f * (1.0f + std::fabs(o_full[i])));
  }
  // Slope 0 reduces to ln(Nd); the bias falls off linearly with the query's distance from the range.
  EXPECT_NEAR(AlibiCompensationBias(comp, 0.0f, 199), std::log(150.0f), 1e-6);
  EXPECT_NEAR(AlibiCompensationBias(comp, 0.5f, 210) - AlibiCompensationBias(comp, 0.5f, 200), -5.0f, 1e-5);
}

TEST(AttentionTest, CausalMaskHidesFutureKeys) {
  // A query at position 0 sees only key 0, whatever follows.
  std::mt19937 rng(3);
  const int d = 8;
  RandomHead h = MakeHead(rng, 10, d, false, 0);
  std::vector<float> q(d, 1.0f), out(d);
  int32_t pos = 0;
  AttentionQuery a{q.data(), d, &pos, 1, 1, d, 0.3f, out.data(), d};
  AttendFlash(h.view, a);
  for (int i = 0; i < d; ++i) EXPECT_FLOAT_EQ(out[i], h.v[i]);
}


// f16 / bf16 storage: the flash kernel over a paged head of that type gives the reference over the same
// rounded values (fp32 rounding only: widening is exact), and stays within the type's rounding of the fp32
// result (measured worst |diff| / (1 + |out|) on these inputs: f16 6.8e-4, bf16 1.6e-2; bounds 4e-3 / 4e-2).
TEST(AttentionTest, HalfStorageMatchesReferenceOnRoundedRows) {
  ForEachIsa([] {
    std::mt19937 rng(23);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (KvType type : {KvType::kF16, KvType::kBF16}) {
      const float type_tol = type == KvType::kF16 ? 4e-3f : 4e-2f;
      for (int d : {16, 64, 80, 128}) {
        for (int64_t len : {1, 65, 300}) {
          for (auto [n_tok, group] : {std::pair<int64_t, int>{1, 1}, {1, 7}, {13, 3}}) {
            for (int64_t comp : {0, 1000}) {
              RandomHead h = MakeHead(rng, len, d, /*gaps=*/true, comp);
              RandomHead rounded = RoundedThrough(h, d, type);
              PagedHead pg = Page(h, d, 16, 3, type);
              std::vector<float> q(n_tok * group * d), o_ref(q.size()), o_fp32(q.size()), o_fast(q.size());
              for (auto& x : q) x = nd(rng);
              std::vector<int32_t> qpos;
              for (int64_t t = 0; t < n_tok; ++t) qpos.push_back(std::max(0, h.pos.back() - static_cast<int32_t>(t % 4)));
              AttentionQuery a{q.data(), group * d, qpos.data(), n_tok, group, d, 1.0f / std::sqrt(float(d)),
                               o_ref.data(), group * d};
              AttendReference(rounded.view, a);
              a.out = o_fp32.data();
              AttendReference(h.view, a);
              for (auto fn : {&AttendReference, &AttendFlash}) {
                a.out = o_fast.data();
                fn(pg.view, a);
                for (size_t i = 0; i < q.size(); ++i) {
                  ASSERT_NEAR(o_fast[i], o_ref[i], 2e-5f * (1.0f + std::fabs(o_ref[i])))
                      << KvTypeName(type) << " d=" << d << " len=" << len << " group=" << group;
                  ASSERT_NEAR(o_fast[i], o_fp32[i], type_tol * (1.0f + std::fabs(o_fp32[i]))) << KvTypeName(type);
                }
              }
            }
          }
        }
      }
    }
  });
}

// f16 / bf16 rows are read where the pool stores them (the decode row kernels widen them in registers) or
// widened into a scratch first (prefill panels, the plain loop): either way exactly, so a paged half head gives
// bit for bit the numbers of a paged fp32 head holding the same rounded values, at every SIMD level, for decode
// tiles of every group size and prefill tiles, ragged lengths, offset first rows and compensation tokens.
TEST(AttentionTest, HalfRowsGiveTheNumbersOfFp32RowsOfTheSameValues) {
  ForEachIsa([] {
    std::mt19937 rng(29);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (KvType type : {KvType::kF16, KvType::kBF16}) {
      for (int d : {16, 48, 64, 128}) {
        for (int64_t len : {1, 17, 64, 65, 300}) {
          for (auto [n_tok, group] : {std::pair<int64_t, int>{1, 1}, {1, 3}, {1, 7}, {2, 4}, {13, 3}}) {
            for (int64_t comp : {0, 1000}) {
              RandomHead h = MakeHead(rng, len, d, /*gaps=*/true, comp);
              RandomHead rounded = RoundedThrough(h, d, type);
              const int64_t first_row = static_cast<int64_t>(rng() % 16);
              PagedHead half = Page(h, d, 16, first_row, type);
              PagedHead fp32 = Page(rounded, d, 16, first_row, KvType::kF32);
              std::vector<float> q(n_tok * group * d), o_half(q.size()), o_fp32(q.size());
              for (auto& x : q) x = nd(rng);
              std::vector<int32_t> qpos;
              for (int64_t t = 0; t < n_tok; ++t) qpos.push_back(std::max(0, h.pos.back() - static_cast<int32_t>(t % 4)));
              AttentionQuery a{q.data(), group * d, qpos.data(), n_tok, group, d, 1.0f / std::sqrt(float(d)),
                               o_half.data(), group * d};
              AttendFlash(half.view, a);
              a.out = o_fp32.data();
              AttendFlash(fp32.view, a);
              for (size_t i = 0; i < q.size(); ++i)
                ASSERT_EQ(o_half[i], o_fp32[i]) << KvTypeName(type) << " d=" << d << " len=" << len << " tokens="
                                                << n_tok << " group=" << group << " comp=" << comp << " i=" << i;
            }
          }
        }
      }
    }
  });
}

}  // namespace
}  // namespace razor

namespace razor {
namespace {

// A head holding only keys [f, n) of h (its own copies), without a compensation token: what a query with a
// sliding window must see.
RandomHead SliceOf(const RandomHead& h, int d, int64_t f, int64_t n) {
  RandomHead s;
  s.k.assign(h.k.begin() + f * d, h.k.begin() + n * d);
  s.v.assign(h.v.begin() + f * d, h.v.begin() + n * d);
  for (int64_t j = f; j < n; ++j) s.pos.push_back(h.view.positions ? h.pos[j] : static_cast<int32_t>(j));
  s.view.k = s.k.data();
  s.view.v = s.v.data();
  s.view.len = n - f;
  s.view.positions = s.pos.data();
  return s;
}

// Sliding window (Gemma 3's local layers): a query at p sees exactly the keys at positions (p - window, p],
// and never the compensation token. The reference against attention over those keys alone, one query at a time.
TEST(AttentionTest, SlidingWindowSeesExactlyTheLastWindowPositions) {
  std::mt19937 rng(21);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  const int d = 16, group = 2;
  for (bool gaps : {false, true}) {
    for (int64_t comp : {0, 1000}) {
      RandomHead h = MakeHead(rng, 90, d, gaps, comp);
      for (int32_t window : {1, 2, 10, 37, 500}) {
        for (int32_t p : {0, 5, 40, h.pos.back(), h.pos.back() + 20}) {
          std::vector<float> q(group * d), out(q.size()), want(q.size());
          for (auto& x : q) x = nd(rng);
          int64_t f = 0, n = 0;
          for (int64_t j = 0; j < h.view.len; ++j) {
            const int32_t pk = gaps ? h.pos[j] : static_cast<int32_t>(j);
            if (pk <= p - window) f = j + 1;
            if (pk <= p) n = j + 1;
          }
          EXPECT_EQ(FirstVisibleKey(h.view, p, window), f) << "window " << window << " p " << p;
          AttentionQuery a{q.data(), group * d, &p, 1, group, d, 0.25f, out.data(), group * d};
          a.window = window;
          AttendReference(h.view, a);
          if (n == f) continue;  // nothing visible: no defined output (the model's own key always is)
          RandomHead s = SliceOf(h, d, f, n);
          AttentionQuery b = a;
          b.window = 0;
          b.out = want.data();
          AttendReference(s.view, b);
          for (size_t i = 0; i < q.size(); ++i)
            ASSERT_NEAR(out[i], want[i], 1e-6f * (1.0f + std::fabs(want[i])))
                << "gaps=" << gaps << " comp=" << comp << " window=" << window << " p=" << p;
        }
      }
    }
  }
}

// The flash kernel against the reference under a sliding window, at every ISA: decode rows (row kernels and
// the plain loop for head_dim 256), prefill tiles (the AVX2 / AVX-512 panel softmax), ragged positions, a
// compensation token (hidden), contiguous and paged fp32 / f16 rows with the head starting mid-block.
TEST(AttentionTest, FlashMatchesReferenceWithSlidingWindow) {
  ForEachIsa([] {
    std::mt19937 rng(23);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (int d : {16, 64, 256}) {
      for (int64_t len : {5, 65, 300}) {
        for (auto [n_tok, group] : {std::pair<int64_t, int>{1, 4}, {4, 1}, {13, 3}, {16, 4}}) {
          for (int32_t window : {1, 7, 64, 100}) {
            const bool gaps = (len + window) % 2 == 1;
            RandomHead h = MakeHead(rng, len, d, gaps, window % 2 ? 1000 : 0);
            std::vector<float> q(n_tok * group * d), o_ref(q.size()), o_fast(q.size());
            for (auto& x : q) x = nd(rng);
            const int32_t last = gaps ? h.pos.back() : static_cast<int32_t>(len - 1);
            std::vector<int32_t> qpos;
            for (int64_t t = 0; t < n_tok; ++t)  // ascending, the last one past every key
              qpos.push_back(n_tok == 1 ? last : static_cast<int32_t>(last * (t + 1) / n_tok));
            AttentionQuery a{q.data(), group * d, qpos.data(), n_tok, group, d, 1.0f / std::sqrt(float(d)),
                             o_ref.data(), group * d};
            a.window = window;
            AttendReference(h.view, a);
            a.out = o_fast.data();
            AttendFlash(h.view, a);
            const std::string what = "d=" + std::to_string(d) + " len=" + std::to_string(len) + " tokens=" +
                                     std::to_string(n_tok) + " group=" + std::to_string(group) + " window=" +
                                     std::to_string(window);
            for (size_t i = 0; i < q.size(); ++i)
              ASSERT_NEAR(o_fast[i], o_ref[i], 2e-5f * (1.0f + std::fabs(o_ref[i]))) << what;
            PagedHead pg = Page(h, d, 7, 3, KvType::kF32);
            AttendFlash(pg.view, a);
            for (size_t i = 0; i < q.size(); ++i)
              ASSERT_NEAR(o_fast[i], o_ref[i], 2e-5f * (1.0f + std::fabs(o_ref[i]))) << what << " paged";
            // f16 rows: the flash kernel equals the reference over the same rounded rows.
            RandomHead r = RoundedThrough(h, d, KvType::kF16);
            a.out = o_ref.data();
            AttendReference(r.view, a);
            PagedHead ph = Page(h, d, 7, 3, KvType::kF16);
            a.out = o_fast.data();
            AttendFlash(ph.view, a);
            for (size_t i = 0; i < q.size(); ++i)
              ASSERT_NEAR(o_fast[i], o_ref[i], 2e-5f * (1.0f + std::fabs(o_ref[i]))) << what << " f16";
          }
        }
      }
    }
  });
}

}  // namespace
}  // namespace razor
