// The retrieval-head profiler: planted induction / echo heads are found and ranked first, scores match a
// brute-force softmax, split prompts score the same, profiles are reproducible, and on SmolLM2 the top
// induction heads stand far above the median head.
#include "runtime/head_profiler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>

#include "kv/full_kv_cache.h"
#include "model_test_support.h"
#include "ops/attention.h"
#include "runtime/heatmap_png.h"

namespace razor {
namespace {

// A hand-made attention problem: q / k for every (layer, head) over a BOS + block x R sequence.
//   echo head     (layer 0, KV head 1, query head 2): q_i = a e(tok_i), k_p = a e(tok_p)   -> attends to copies j
//   induction head(layer 2, KV head 0, query head 1): q_i = a e(tok_i), k_p = a e(tok_{p-1}) -> attends to j + 1
// Everything else is Gaussian noise. Seen through the observer exactly as the Transformer would show it.
struct PlantedProblem {
  static constexpr int kLayers = 3, kHeads = 4, kKvHeads = 2, kDim = 16;
  static constexpr int kEchoLayer = 0, kEchoKv = 1, kEchoQ = 2;
  static constexpr int kIndLayer = 2, kIndKv = 0, kIndQ = 1;
  int64_t block, repeats, n;
  std::vector<int32_t> tokens;                 // [n]
  std::vector<std::vector<float>> q, k, v;     // per layer: [n, heads * d], [n, kv * d], [n, kv * d]

  PlantedProblem(int64_t L, int R, uint32_t seed) : block(L), repeats(R), n(1 + L * R) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> gauss(0.0f, 1.0f);
    const int vocab = 200;
    std::vector<std::vector<float>> emb(vocab, std::vector<float>(kDim));
    for (auto& e : emb) {
      float norm = 0;
      for (auto& x : e) {
        x = gauss(rng);
        norm += x * x;
      }
      for (auto& x : e) x /= std::sqrt(norm);
    }
    std::vector<int32_t> ids(vocab - 1);
    for (int i = 0; i < vocab - 1; ++i) ids[i] = i + 1;
    std::shuffle(ids.begin(), ids.end(), rng);  // distinct ids in the block: copies are the only repeats
    tokens.push_back(0);
    for (int r = 0; r < R; ++r) tokens.insert(tokens.end(), ids.begin(), ids.begin() + L);
    const float a = 6.0f;
    for (int l = 0; l < kLayers; ++l) {
      q.emplace_back(n * kHeads * kDim);
      k.emplace_back(n * kKvHeads * kDim);
      v.emplace_back(n * kKvHeads * kDim);
      for (auto& x : q[l]) x = gauss(rng);
      for (auto& x : k[l]) x = gauss(rng);
      for (auto& x : v[l]) x = gauss(rng);
      for (int64_t p = 0; p < n; ++p) {
        for (int i = 0; i < kDim; ++i) {
          if (l == kEchoLayer) {
            q[l][(p * kHeads + kEchoQ) * kDim + i] = a * emb[tokens[p]][i];
            k[l][(p * kKvHeads + kEchoKv) * kDim + i] = a * emb[tokens[p]][i];
          }
          if (l == kIndLayer) {
            q[l][(p * kHeads + kIndQ) * kDim + i] = a * emb[tokens[p]][i];
            if (p > 0) k[l][(p * kKvHeads + kIndKv) * kDim + i] = a * emb[tokens[p - 1]][i];
          }
        }
      }
    }
  }

  // Runs the sequence in calls of the given sizes (summing to n), as Transformer::Forward would.
  HeadScoreObserver Observe(const std::vector<int64_t>& calls, ThreadPool* pool) const {
    HeadScoreObserver obs(kLayers, kHeads, kKvHeads, kDim, block, pool);
    FullKvCache cache(kLayers, kKvHeads, kDim, n);
    int64_t pos0 = 0;
    for (int64_t len : calls) {
      std::vector<int32_t> positions(len);
      for (int64_t t = 0; t < len; ++t) positions[t] = static_cast<int32_t>(pos0 + t);
      for (int l = 0; l < kLayers; ++l) {
        EXPECT_TRUE(cache.Append(l, pos0, len, &k[l][pos0 * kKvHeads * kDim], &v[l][pos0 * kKvHeads * kDim]).ok());
        std::vector<float> lse(len * kHeads), out(len * kHeads * kDim);
        for (int g = 0; g < kKvHeads; ++g) {
          AttentionQuery a;
          a.q = &q[l][pos0 * kHeads * kDim + g * (kHeads / kKvHeads) * kDim];
          a.q_token_stride = kHeads * kDim;
          a.positions = positions.data();
          a.n_tokens = len;
          a.n_group_heads = kHeads / kKvHeads;
          a.head_dim = kDim;
          a.scale = 1.0f / std::sqrt(float(kDim));
          a.out = &out[g * (kHeads / kKvHeads) * kDim];
          a.out_token_stride = kHeads * kDim;
          a.lse = &lse[g * (kHeads / kKvHeads)];
          a.lse_token_stride = kHeads;
          AttendFlash(cache.View(l, g), a);
        }
        obs.OnAttention(l, &q[l][pos0 * kHeads * kDim], positions.data(), len, lse.data(), cache);
      }
      cache.CommitTokens(len);
      pos0 += len;
    }
    return obs;
  }

  // Brute force: the full softmax row of every scored query, summed at the copy positions.
  void Reference(std::vector<float>* ind, std::vector<float>* echo) const {
    ind->assign(kLayers * kHeads, 0.0f);
    echo->assign(kLayers * kHeads, 0.0f);
    const int group = kHeads / kKvHeads;
    for (int l = 0; l < kLayers; ++l)
      for (int h = 0; h < kHeads; ++h) {
        double si = 0, se = 0;
        int64_t count = 0;
        for (int64_t i = 1 + block; i < n; ++i, ++count) {
          std::vector<double> s(i + 1);
          double m = -1e30, z = 0;
          for (int64_t j = 0; j <= i; ++j) {
            double dot = 0;
            for (int x = 0; x < kDim; ++x)
              dot += double(q[l][(i * kHeads + h) * kDim + x]) * k[l][(j * kKvHeads + h / group) * kDim + x];
            s[j] = dot / std::sqrt(double(kDim));
            m = std::max(m, s[j]);
          }
          for (double x : s) z += std::exp(x - m);
          for (int64_t j = i - block; j >= 1; j -= block) {
            si += std::exp(s[j + 1] - m) / z;
            se += std::exp(s[j] - m) / z;
          }
        }
        (*ind)[l * kHeads + h] = static_cast<float>(si / count);
        (*echo)[l * kHeads + h] = static_cast<float>(se / count);
      }
  }
};

HeadProfile ProfileFrom(const HeadScoreObserver& obs, double ind_ratio, double echo_ratio) {
  HeadProfile p;
  p.model.architecture = "llama";
  p.model.n_layers = PlantedProblem::kLayers;
  p.model.n_heads = PlantedProblem::kHeads;
  p.model.n_kv_heads = PlantedProblem::kKvHeads;
  p.model.head_dim = PlantedProblem::kDim;
  p.params.induction_ratio = ind_ratio;
  p.params.echo_ratio = echo_ratio;
  p.q_induction = obs.MeanInduction();
  p.q_echo = obs.MeanEcho();
  p.SelectRetrievalHeads();
  return p;
}

TEST(HeadProfiler, PlantedInductionAndEchoHeadsRankFirst) {
  using P = PlantedProblem;
  const P prob(/*L=*/24, /*R=*/3, /*seed=*/5);
  ThreadPool pool(2);
  const HeadScoreObserver obs = prob.Observe({prob.n}, &pool);
  EXPECT_EQ(obs.scored_queries(0), 2 * 24);  // repeats 2..R
  const HeadProfile p = ProfileFrom(obs, 0.1, 0.1);  // 1 of 6 KV heads each

  ASSERT_EQ(p.by_induction.size(), 1u);
  ASSERT_EQ(p.by_echo.size(), 1u);
  EXPECT_EQ(p.by_induction[0], (KvHeadId{P::kIndLayer, P::kIndKv}));
  EXPECT_EQ(p.by_echo[0], (KvHeadId{P::kEchoLayer, P::kEchoKv}));
  EXPECT_EQ(p.retrieval, (std::vector<KvHeadId>{{P::kEchoLayer, P::kEchoKv}, {P::kIndLayer, P::kIndKv}}));

  const float ind = p.q_induction[P::kIndLayer * P::kHeads + P::kIndQ];
  const float echo = p.q_echo[P::kEchoLayer * P::kHeads + P::kEchoQ];
  std::printf("planted induction head: induction %.3f echo %.3f; planted echo head: echo %.3f induction %.3f\n", ind,
              p.q_echo[P::kIndLayer * P::kHeads + P::kIndQ], echo, p.q_induction[P::kEchoLayer * P::kHeads + P::kEchoQ]);
  EXPECT_GT(ind, 0.8f);
  EXPECT_GT(echo, 0.5f);  // the current token matches itself too: copies get 1/2 (copy 2) and 2/3 (copy 3)
  // The other metric of each planted head stays low (j and j + 1 are not confused).
  EXPECT_LT(p.q_echo[P::kIndLayer * P::kHeads + P::kIndQ], 0.1f);
  EXPECT_LT(p.q_induction[P::kEchoLayer * P::kHeads + P::kEchoQ], 0.1f);
  // The KV head takes the max of its group: the noise query head sharing the induction KV head is low.
  EXPECT_LT(p.q_induction[P::kIndLayer * P::kHeads + (P::kIndQ ^ 1)], 0.2f);
  EXPECT_FLOAT_EQ(p.kv_induction_at(P::kIndLayer, P::kIndKv), ind);
}

TEST(HeadProfiler, ScoresMatchBruteForceSoftmax) {
  const PlantedProblem prob(/*L=*/9, /*R=*/4, /*seed=*/11);
  const HeadScoreObserver obs = prob.Observe({prob.n}, nullptr);
  std::vector<float> ind, echo;
  prob.Reference(&ind, &echo);
  const auto got_ind = obs.MeanInduction(), got_echo = obs.MeanEcho();
  for (size_t i = 0; i < ind.size(); ++i) {
    EXPECT_NEAR(got_ind[i], ind[i], 2e-5) << "induction, layer " << i / 4 << " head " << i % 4;
    EXPECT_NEAR(got_echo[i], echo[i], 2e-5) << "echo, layer " << i / 4 << " head " << i % 4;
  }
}

// A split moves query tokens between attention tiles, and AttendFlash picks its code path per tile
// (register-blocked FMA kernels for tiles of >= 8 rows, plain loops the compiler may or may not contract
// into FMAs below that), so scores agree to fp32 rounding, not bit for bit (-O1 builds differ in the last bit).
void ExpectSameUpToRounding(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], 1e-5f * std::fabs(want[i]) + 1e-9f) << "head " << i;
}

TEST(HeadProfiler, PromptSplitAcrossCallsScoresTheSame) {
  const PlantedProblem prob(/*L=*/20, /*R=*/4, /*seed=*/3);  // n = 81
  ThreadPool pool(2);
  const HeadScoreObserver whole = prob.Observe({81}, &pool);
  // Splits that cut inside the first block, at the copy boundary and inside later copies.
  for (const std::vector<int64_t>& calls : {std::vector<int64_t>{10, 30, 41}, {21, 60}, {1, 1, 79}, {50, 31}}) {
    const HeadScoreObserver split = prob.Observe(calls, &pool);
    SCOPED_TRACE(::testing::Message() << "split into " << calls.size() << " calls, first " << calls[0]);
    ExpectSameUpToRounding(split.MeanInduction(), whole.MeanInduction());
    ExpectSameUpToRounding(split.MeanEcho(), whole.MeanEcho());
    EXPECT_EQ(split.scored_queries(1), whole.scored_queries(1));
  }
  const HeadScoreObserver serial = prob.Observe({81}, nullptr);
  EXPECT_EQ(serial.MeanInduction(), whole.MeanInduction()) << "thread count must not change the scores";
}

// Tokenizer stand-in: every id divisible by 3 is special.
class EveryThirdSpecial final : public Tokenizer {
 public:
  std::vector<int32_t> Encode(std::string_view, bool, bool) const override { return {}; }
  std::string TokenToPiece(int32_t) const override { return ""; }
  std::string Decode(const std::vector<int32_t>&) const override { return ""; }
  int32_t vocab_size() const override { return 256; }
  int32_t bos_id() const override { return 7; }
  int32_t eos_id() const override { return 8; }
  bool add_bos() const override { return true; }
  bool IsEndOfGeneration(int32_t id) const override { return id == 8; }
  bool IsSpecial(int32_t id) const override { return id % 3 == 0; }
  ChatTemplateKind chat_template_kind() const override { return ChatTemplateKind::kNone; }
  bool has_chat_template() const override { return false; }
  Result<std::string> ApplyChatTemplate(const std::vector<ChatMessage>&, bool) const override { return Err("none"); }
};

TEST(HeadProfiler, PromptLayoutRangeCapAndSpecials) {
  ModelConfig c;
  c.vocab_size = 256;
  c.context_length = 128;
  HeadProfilerOptions o;  // block 2500, repeats 4: capped to (128 - 1) / 4 = 31
  HeadProfileParams p;
  auto prompt = MakeProfilePrompt(c, nullptr, -1, o, &p);
  ASSERT_TRUE(prompt.ok()) << prompt.error();
  EXPECT_EQ(p.block, 31);
  EXPECT_EQ(p.token_lo, 64);
  EXPECT_EQ(p.token_hi, 128);
  EXPECT_EQ(p.bos_id, 1);
  ASSERT_EQ(prompt->size(), 1u + 31 * 4);
  EXPECT_EQ((*prompt)[0], 1);
  for (int64_t i = 1; i < 1 + 31; ++i) {
    EXPECT_GE((*prompt)[i], 64);
    EXPECT_LT((*prompt)[i], 128);
    for (int r = 1; r < 4; ++r) EXPECT_EQ((*prompt)[i + r * 31], (*prompt)[i]);
  }

  EveryThirdSpecial tok;
  auto with_tok = MakeProfilePrompt(c, &tok, -1, o, &p);
  ASSERT_TRUE(with_tok.ok());
  EXPECT_EQ(p.bos_id, 7);
  EXPECT_EQ((*with_tok)[0], 7);
  for (size_t i = 1; i < with_tok->size(); ++i) EXPECT_NE((*with_tok)[i] % 3, 0) << "special id in the block";

  o.token_lo = 60;
  o.token_hi = 61;  // only id 60, which is special
  EXPECT_FALSE(MakeProfilePrompt(c, &tok, -1, o, &p).ok());
  o.token_lo = 300;
  o.token_hi = 400;
  EXPECT_FALSE(MakeProfilePrompt(c, nullptr, -1, o, &p).ok());
  o = HeadProfilerOptions{};
  o.repeats = 1;
  EXPECT_FALSE(MakeProfilePrompt(c, nullptr, -1, o, &p).ok());

  // Seeds: same seed, same block; another seed, another block.
  o = HeadProfilerOptions{};
  auto a = MakeProfilePrompt(c, nullptr, -1, o, &p);
  auto b = MakeProfilePrompt(c, nullptr, -1, o, &p);
  o.seed = 2;
  auto d = MakeProfilePrompt(c, nullptr, -1, o, &p);
  EXPECT_EQ(*a, *b);
  EXPECT_NE(*a, *d);
}

TEST(HeadProfiler, TinyModelProfileIsReproducible) {
  auto loaded = LoadModel(testing::FixturePath("hf/tiny_llama"), false);
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  const LoadedModel& m = **loaded;
  ThreadPool pool(2);
  HeadProfilerOptions o;
  o.seed = 42;
  int64_t last_done = 0, last_total = 0;
  o.on_progress = [&](int64_t done, int64_t total) {
    EXPECT_EQ(done, last_done + 1);
    last_done = done;
    last_total = total;
  };
  auto a = ProfileHeads(m, pool, MathMode::kExact, o);
  ASSERT_TRUE(a.ok()) << a.error();
  EXPECT_EQ(last_done, last_total);
  EXPECT_EQ(last_total, m.config.n_layers);  // one Forward call
  EXPECT_EQ(a->params.block, (m.config.context_length - 1) / 4);
  EXPECT_TRUE(a->CheckMatches(ModelIdentityOf(m)).ok());

  last_done = 0;
  auto b = ProfileHeads(m, pool, MathMode::kExact, o);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(a->ToJson(), b->ToJson()) << "same seed must give the same profile, byte for byte";

  o.seed = 43;
  last_done = 0;
  auto c = ProfileHeads(m, pool, MathMode::kExact, o);
  ASSERT_TRUE(c.ok());
  EXPECT_NE(a->q_induction, c->q_induction) << "another seed is another token block";

  // Split into forward calls of 16 tokens: the same scores up to the rounding of batched matmuls.
  o.seed = 42;
  o.batch = 16;
  last_done = 0;
  auto s = ProfileHeads(m, pool, MathMode::kExact, o);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(last_total, m.config.n_layers * ((1 + 4 * a->params.block + 15) / 16));
  for (size_t i = 0; i < a->q_induction.size(); ++i) {
    EXPECT_NEAR(s->q_induction[i], a->q_induction[i], 1e-5);
    EXPECT_NEAR(s->q_echo[i], a->q_echo[i], 1e-5);
  }
}

TEST(HeadProfiler, HeatmapMarksRetrievalHeads) {
  const PlantedProblem prob(24, 3, 5);
  const HeadProfile p = ProfileFrom(prob.Observe({prob.n}, nullptr), 0.1, 0.1);
  HeatmapLayout lay;
  const RgbImage img = RenderHeadProfile(p, &lay);
  ASSERT_GT(img.width, 0);
  ASSERT_GT(img.height, 0);
  ASSERT_EQ(img.pixels.size(), size_t(img.width) * img.height * 3);
  auto is_red = [](const uint8_t* px) { return px[0] > 200 && px[1] < 60 && px[2] < 60; };
  using P = PlantedProblem;
  // Retrieval cells carry the red outline at their top-left corner; others do not.
  EXPECT_TRUE(is_red(img.at(lay.induction_kv_x + P::kIndKv * lay.kv_cell_w, lay.grid_y + P::kIndLayer * lay.cell_h)));
  EXPECT_TRUE(is_red(img.at(lay.echo_kv_x + P::kEchoKv * lay.kv_cell_w, lay.grid_y + P::kEchoLayer * lay.cell_h)));
  EXPECT_FALSE(is_red(img.at(lay.induction_kv_x + 1 * lay.kv_cell_w, lay.grid_y + 1 * lay.cell_h)));
  // The cell centre shows the viridis colour of its score (the metric's max maps to 1).
  const uint8_t* centre = img.at(lay.induction_kv_x + P::kIndKv * lay.kv_cell_w + lay.kv_cell_w / 2,
                                 lay.grid_y + P::kIndLayer * lay.cell_h + lay.cell_h / 2);
  uint8_t top[3];
  Viridis(1.0f, top);
  EXPECT_EQ(centre[0], top[0]);
  EXPECT_EQ(centre[1], top[1]);
  EXPECT_EQ(centre[2], top[2]);
  uint8_t lo[3];
  Viridis(0.0f, lo);
  EXPECT_NEAR(lo[0], 68, 4);  // matplotlib viridis(0) = (68, 1, 84)
  EXPECT_NEAR(lo[2], 84, 4);

  const std::string path = (std::filesystem::temp_directory_path() / "razor_heatmap_test.png").string();
  ASSERT_TRUE(WriteHeadProfilePng(p, path).ok());
  std::ifstream in(path, std::ios::binary);
  char sig[8] = {};
  in.read(sig, 8);
  EXPECT_EQ(std::string(sig, 8), std::string("\x89PNG\r\n\x1a\n", 8));
  EXPECT_FALSE(WritePng(img, "/nonexistent_dir/x.png").ok());
}

// The real default model: a short profile must find induction heads far above the median head.
TEST(HeadProfiler, SmolLM2ShortProfileFindsInductionHeads) {
  const std::string path = testing::DefaultModelPath();
  if (path.empty()) GTEST_SKIP() << "RAZOR_TEST_MODEL not set";
  auto loaded = LoadModel(path, true);
  ASSERT_TRUE(loaded.ok()) << loaded.error();
  ThreadPool pool(2);
  HeadProfilerOptions o;
  o.block = 128;
  o.repeats = 3;
  auto p = ProfileHeads(**loaded, pool, MathMode::kFast, o);
  ASSERT_TRUE(p.ok()) << p.error();
  auto median = [](std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const auto ind = p->Ranked(p->kv_induction), echo = p->Ranked(p->kv_echo);
  const float top_ind = p->kv_induction_at(ind[0].layer, ind[0].kv_head);
  const float top_echo = p->kv_echo_at(echo[0].layer, echo[0].kv_head);
  const float med_ind = median(p->kv_induction), med_echo = median(p->kv_echo);
  std::printf("induction: top");
  for (int i = 0; i < 5; ++i)
    std::printf(" L%d.H%d=%.3f", ind[i].layer, ind[i].kv_head, p->kv_induction_at(ind[i].layer, ind[i].kv_head));
  std::printf("  median %.4f\necho:      top", med_ind);
  for (int i = 0; i < 5; ++i)
    std::printf(" L%d.H%d=%.3f", echo[i].layer, echo[i].kv_head, p->kv_echo_at(echo[i].layer, echo[i].kv_head));
  std::printf("  median %.4f\nretrieval: %zu of %d KV heads\n", med_echo, p->retrieval.size(), p->total_kv_heads());
  EXPECT_GE(top_ind, 5 * med_ind);
  EXPECT_GT(top_ind, 0.3f) << "an induction head of a trained model puts most of its mass on the next token";
  EXPECT_GE(top_echo, 3 * med_echo);
}

}  // namespace
}  // namespace razor
