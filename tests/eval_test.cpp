// The eval layer: sentence splitting, needle placement, task generators, scoring, reports, KL; and two smoke
// tests with a real model (RAZOR_TEST_MODEL) that check only what must hold.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <regex>
#include <set>

#include <unistd.h>

#include "core/thread_pool.h"
#include "eval/eval_report.h"
#include "eval_word_count.h"
#include "eval/eval_runner.h"
#include "eval/haystack.h"
#include "eval/kld.h"
#include "eval/tasks.h"
#include "runtime/head_profiler.h"
#include "runtime/loaded_model.h"

namespace razor::eval {
namespace {

using test_support::WordCount;

Filler TenWordSentences(int n) {
  std::vector<std::string> s;
  for (int i = 0; i < n; ++i) s.push_back(fmt::format("Sentence {} has exactly ten words in it, no more.", i));
  return Filler::Make(s, WordCount);
}

TaskInputs Inputs(const Filler* essays, const Filler* noise) {
  TaskInputs in;
  in.essays = essays;
  in.noise = noise;
  in.count = WordCount;
  for (int i = 0; i < 400; ++i) {
    std::string w;
    for (int k = i; ; k /= 26) {  // distinct letter-only words
      w += static_cast<char>('a' + k % 26);
      if (k < 26) break;
    }
    in.words.push_back("w" + w + "x");
  }
  return in;
}

TEST(HaystackTest, SplitsSentencesAndKeepsAbbreviationsTogether) {
  auto s = SplitSentences("First one.  Second\nline goes on? Yes! e.g. this stays.\n\nNew paragraph");
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0], "First one.");
  EXPECT_EQ(s[1], "Second line goes on?");
  EXPECT_EQ(s[2], "Yes! e.g. this stays.");  // "Yes!" is followed by lower case: not a sentence end here
  EXPECT_EQ(s[3], "New paragraph");
}

TEST(TasksTest, NeedleGoesToTheRequestedDepthAtASentenceBoundary) {
  const Filler f = TenWordSentences(200);
  for (int depth : {0, 25, 50, 75, 100}) {
    EvalSample s;
    PlaceNeedles(f, 1000, {"The needle is here."}, {double(depth)}, WordCount, &s);
    ASSERT_EQ(s.needle_offsets.size(), 1u);
    EXPECT_EQ(s.document.compare(s.needle_offsets[0], 19, "The needle is here."), 0);
    EXPECT_NEAR(MeasuredDepth(s, 0, WordCount), depth / 100.0, 0.02) << depth;
    // At a boundary: the needle starts the document or follows ". ".
    if (s.needle_offsets[0] > 0) {
      EXPECT_EQ(s.document.substr(s.needle_offsets[0] - 2, 2), ". ");
    }
    EXPECT_LE(WordCount(s.document), 1000);
    EXPECT_GE(WordCount(s.document), 985);
  }
}

TEST(TasksTest, NeedleSampleHoldsItsValueOnceAndIsReproducible) {
  const Filler essays = TenWordSentences(300);
  const TaskInputs in = Inputs(&essays, nullptr);
  auto a = MakeSample("needle", in, 800, 40, 5);
  auto b = MakeSample("needle", in, 800, 40, 5);
  ASSERT_TRUE(a.ok()) << a.error();
  ASSERT_EQ(a->expected.size(), 1u);
  EXPECT_EQ(a->expected[0].size(), 7u);
  EXPECT_EQ(a->document, b->document);
  const std::string& v = a->expected[0];
  EXPECT_EQ(a->document.find(v), a->document.rfind(v));
  EXPECT_NE(a->answer_prefix.find("special magic number"), std::string::npos);
  EXPECT_NEAR(MeasuredDepth(*a, 0, WordCount), 0.40, 0.03);
}

TEST(TasksTest, PasskeyRoundTrip) {
  const Filler noise = Filler::Make(PasskeyFillerSentences(), WordCount);
  const TaskInputs in = Inputs(nullptr, &noise);
  std::set<std::string> keys;
  for (uint64_t seed = 1; seed <= 5; ++seed) {
    auto s = MakeSample("passkey", in, 600, 50, seed);
    ASSERT_TRUE(s.ok()) << s.error();
    const std::string key = s->expected.at(0);
    EXPECT_TRUE(std::regex_match(key, std::regex("[1-9][0-9]{4}")));
    EXPECT_NE(s->document.find("The pass key is " + key + ". Remember it. " + key + " is the pass key."),
              std::string::npos);
    EXPECT_EQ(ScoreAnswer(" " + key + ".", s->expected), 1.0);
    keys.insert(key);
  }
  EXPECT_GT(keys.size(), 3u);
  EXPECT_FALSE(MakeSample("passkey", Inputs(nullptr, nullptr), 600, 50, 1).ok());  // no filler: an error
  EXPECT_FALSE(MakeSample("no_such_task", in, 600, 50, 1).ok());
}

TEST(TasksTest, ScoringNeedsWholeValuesAndCountsFractions) {
  EXPECT_EQ(ScoreAnswer("The number is 12345.", {"12345"}), 1.0);
  EXPECT_EQ(ScoreAnswer("The number is 123456.", {"12345"}), 0.0);  // part of a longer number
  EXPECT_EQ(ScoreAnswer("It is 912345", {"12345"}), 0.0);
  EXPECT_EQ(ScoreAnswer("ABCDE, FGHIJ", {"abcde", "fghij", "klmno", "pqrst"}), 0.5);
  EXPECT_EQ(ScoreAnswer("harbors", {"harbor"}), 0.0);
  EXPECT_EQ(ScoreAnswer("anything", {}), 0.0);
}

TEST(TasksTest, VariableTrackingChainIsCorrectAndInOrder) {
  const Filler noise = Filler::Make(PasskeyFillerSentences(), WordCount);
  auto s = MakeSample("vt", Inputs(nullptr, &noise), 1500, 10, 3);
  ASSERT_TRUE(s.ok()) << s.error();
  ASSERT_EQ(s->needles.size(), 5u);
  ASSERT_EQ(s->expected.size(), 5u);
  // Follow the chain as a reader would, in document order.
  std::map<std::string, std::string> value;
  std::string root_value;
  std::vector<std::pair<size_t, std::string>> ordered;
  for (size_t i = 0; i < s->needles.size(); ++i) ordered.push_back({s->needle_offsets[i], s->needles[i]});
  std::sort(ordered.begin(), ordered.end());
  std::smatch m;
  for (const auto& [off, n] : ordered) {
    if (std::regex_match(n, m, std::regex("VAR ([A-Z]{5}) = ([0-9]{5})\\."))) {
      value[m[1]] = m[2];
      root_value = m[2];
    } else {
      ASSERT_TRUE(std::regex_match(n, m, std::regex("VAR ([A-Z]{5}) = VAR ([A-Z]{5})\\."))) << n;
      ASSERT_TRUE(value.count(m[2])) << "assigned before its source: " << n;
      value[m[1]] = value[m[2]];
    }
  }
  for (const auto& name : s->expected) EXPECT_EQ(value.at(name), root_value) << name;
  EXPECT_NE(s->question.find(root_value), std::string::npos);
}

TEST(TasksTest, MultiKeyAndMultiValueNeedles) {
  const Filler essays = TenWordSentences(300);
  const TaskInputs in = Inputs(&essays, nullptr);
  auto mk = MakeSample("niah_multikey", in, 1200, 50, 11);
  ASSERT_TRUE(mk.ok()) << mk.error();
  ASSERT_EQ(mk->needles.size(), 4u);
  ASSERT_EQ(mk->expected.size(), 1u);
  EXPECT_NE(mk->needles[0].find(mk->expected[0]), std::string::npos);
  std::set<std::string> keys;
  for (const auto& n : mk->needles) keys.insert(n.substr(0, n.find(" is:")));
  EXPECT_EQ(keys.size(), 4u);  // distractors have other keys
  const std::string key = mk->needles[0].substr(37, mk->needles[0].find(" is:") - 37);  // after "...numbers for "
  EXPECT_NE(mk->question.find(key), std::string::npos);

  auto mv = MakeSample("niah_multivalue", in, 1200, 50, 11);
  ASSERT_TRUE(mv.ok());
  ASSERT_EQ(mv->expected.size(), 4u);
  for (const auto& v : mv->expected) EXPECT_NE(mv->document.find(v), std::string::npos);
  EXPECT_EQ(ScoreAnswer(mv->expected[0] + ", " + mv->expected[2], mv->expected), 0.5);
}

TEST(TasksTest, CommonWordsAreTheTenMostFrequent) {
  const Filler essays = TenWordSentences(10);
  auto s = MakeSample("cwe", Inputs(&essays, nullptr), 2000, 50, 4);
  ASSERT_TRUE(s.ok()) << s.error();
  std::map<std::string, int> freq;
  std::smatch m;
  const std::string doc = s->document;
  const std::regex entry("[0-9]+\\. ([a-z]+)");
  for (std::sregex_iterator it(doc.begin(), doc.end(), entry), end; it != end; ++it)
    freq[(*it)[1]]++;
  std::vector<std::pair<int, std::string>> by;
  for (const auto& [w, c] : freq) by.push_back({c, w});
  std::sort(by.rbegin(), by.rend());
  ASSERT_GT(by.size(), 11u);
  EXPECT_GT(by[9].first, by[10].first);
  std::set<std::string> top;
  for (int i = 0; i < 10; ++i) top.insert(by[i].second);
  EXPECT_EQ(top, std::set<std::string>(s->expected.begin(), s->expected.end()));
}

TEST(ReportTest, MergeReplacesACellAndJsonRoundTrips) {
  CellResult a;
  a.task = "needle", a.mode = "razor", a.length = 1024, a.depth = 50, a.score = 0, a.answer = "x|y";
  CellResult b = a;
  b.mode = "full";
  EvalReport r;
  r.eval = "needle";
  MergeCells(&r.cells, {a, b});
  ASSERT_EQ(r.cells.size(), 2u);
  EXPECT_EQ(r.cells[0].mode, "full");  // full sorts first
  a.score = 1;
  MergeCells(&r.cells, {a});
  ASSERT_EQ(r.cells.size(), 2u);
  EXPECT_EQ(r.cells[1].score, 1.0);
  auto back = ReportFromJson(ToJson(r));
  ASSERT_TRUE(back.ok()) << back.error();
  EXPECT_EQ(back->cells[1].answer, "x|y");
  EXPECT_NE(MarkdownReport(r).find("x\\|y"), std::string::npos);
  const RgbImage img = RenderScoreGrid(r, "razor");
  EXPECT_GT(img.width, 100);
  EXPECT_GT(img.height, 100);
  uint8_t red[3], green[3];
  ScoreColour(0, red);
  ScoreColour(1, green);
  EXPECT_GT(red[0], red[1]);
  EXPECT_GT(green[1], green[0]);
}

TEST(KldTest, KlIsZeroForEqualAndMatchesTheFormula) {
  const float a[2] = {0.0f, 0.0f}, b[2] = {std::log(3.0f), 0.0f};
  std::vector<double> p, q;
  LogSoftmax(a, 2, &p);
  LogSoftmax(b, 2, &q);
  EXPECT_NEAR(KlDivergence(p, p), 0.0, 1e-12);
  // P = (1/2, 1/2), Q = (3/4, 1/4): KL = 1/2 ln(2/3) + 1/2 ln 2
  EXPECT_NEAR(KlDivergence(p, q), 0.5 * std::log(2.0 / 3.0) + 0.5 * std::log(2.0), 1e-7);
}

// --- with a real model -----------------------------------------------------------------------------------

class EvalModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const char* env = std::getenv("RAZOR_TEST_MODEL");
    if (env == nullptr || !std::filesystem::exists(env)) GTEST_SKIP() << "RAZOR_TEST_MODEL not set";
    // Two 512-token prompts through the 135M model take minutes under ASan; the release run covers these, and
    // the sanitizer run covers the same kernels and caches through the shorter model tests.
    if (std::getenv("RAZOR_TEST_SANITIZER") != nullptr) GTEST_SKIP() << "skipped under the sanitizer run";
    auto m = LoadModel(env);
    ASSERT_TRUE(m.ok()) << m.error();
    model_ = *m;
    if (!model_->tokenizer) GTEST_SKIP() << "model has no tokenizer";
    noise_ = Filler::Make(PasskeyFillerSentences(), nullptr == model_ ? TokenCounter() : Counter());
  }
  TokenCounter Counter() {
    auto tok = model_->tokenizer;
    return [tok](std::string_view s) { return static_cast<int64_t>(tok->Encode(s, false, false).size()); };
  }
  // The passkey task's inputs: the filler prose, counted in the model's tokens.
  TaskInputs PasskeyInputs() {
    TaskInputs in;
    in.noise = &noise_;
    in.count = Counter();
    return in;
  }
  std::shared_ptr<LoadedModel> model_;
  Filler noise_;
};

// The model's tokenizer with a chat template razor does not render (as Gemma 3 -it's <start_of_turn>).
class UnrenderedTemplate final : public Tokenizer {
 public:
  explicit UnrenderedTemplate(std::shared_ptr<Tokenizer> t) : t_(std::move(t)) {}
  std::vector<int32_t> Encode(std::string_view s, bool bos, bool sp) const override { return t_->Encode(s, bos, sp); }
  std::string TokenToPiece(int32_t id) const override { return t_->TokenToPiece(id); }
  std::string Decode(const std::vector<int32_t>& ids) const override { return t_->Decode(ids); }
  int32_t vocab_size() const override { return t_->vocab_size(); }
  int32_t bos_id() const override { return t_->bos_id(); }
  int32_t eos_id() const override { return t_->eos_id(); }
  bool add_bos() const override { return t_->add_bos(); }
  bool IsEndOfGeneration(int32_t id) const override { return t_->IsEndOfGeneration(id); }
  bool IsSpecial(int32_t id) const override { return t_->IsSpecial(id); }
  ChatTemplateKind chat_template_kind() const override { return ChatTemplateKind::kNone; }
  bool has_chat_template() const override { return true; }
  Result<std::string> ApplyChatTemplate(const std::vector<ChatMessage>&, bool) const override {
    return Err("unrecognised");
  }

 private:
  std::shared_ptr<Tokenizer> t_;
};

// An instruction model whose chat template razor cannot render is refused, not prompted as plain text.
TEST_F(EvalModelTest, AnUnrenderedChatTemplateIsRefusedNotPromptedAsPlainText) {
  model_->tokenizer = std::make_shared<UnrenderedTemplate>(model_->tokenizer);
  auto engine = Engine::Open(model_, {});
  ASSERT_TRUE(engine.ok()) << engine.error();
  EvalRunner runner(**engine, KvCacheOptions{});
  auto s = runner.MakeFitted("passkey", PasskeyInputs(), 256, 50, 1);  // it measures the prompt's overhead
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.error().find("chat template is not one razor renders"), std::string::npos) << s.error();
}

TEST_F(EvalModelTest, FullCacheFindsThePasskeyAt512Tokens) {
  auto engine = Engine::Open(model_, {});
  ASSERT_TRUE(engine.ok()) << engine.error();
  EvalRunner runner(**engine, KvCacheOptions{});
  auto s = runner.MakeFitted("passkey", PasskeyInputs(), 512, 50, 1);
  ASSERT_TRUE(s.ok()) << s.error();
  auto prompt = runner.PromptTokens(*s);
  ASSERT_TRUE(prompt.ok());
  EXPECT_NEAR(static_cast<double>(prompt->size()), 512, 16);
  auto r = runner.Run(*s, *prompt, KvMode::kFull, 512);
  ASSERT_TRUE(r.ok()) << r.error();
  EXPECT_EQ(r->score, 1.0) << "answer: " << r->answer << " key: " << s->expected[0];
}

TEST_F(EvalModelTest, RazorWithAWindowOverThePromptAnswersAsTheFullCache) {
  ThreadPool pool(ThreadPool::DefaultThreadCount());
  // A short profile (which heads it picks does not matter when nothing is dropped) in a scratch file, so the
  // test neither profiles the whole model nor touches the profile cached beside it.
  HeadProfilerOptions po;
  po.block = 64;
  po.repeats = 2;
  auto profile = ProfileHeads(*model_, pool, MathMode::kFast, po);
  ASSERT_TRUE(profile.ok()) << profile.error();
  const auto path = std::filesystem::temp_directory_path() /
                    ("razor_eval_test_profile_" + std::to_string(::getpid()) + ".json");
  ASSERT_TRUE(profile->Save(path.string(), /*overwrite=*/true).ok());
  KvCacheOptions kvo;
  kvo.profile_path = path.string();
  kvo.razor.window_min = 4096;  // W >= N: nothing is dropped
  kvo.mode = KvMode::kRazor;
  auto engine = Engine::Open(model_, {});
  ASSERT_TRUE(engine.ok()) << engine.error();
  ASSERT_TRUE((*engine)->EnsureProfile(kvo).ok());
  EvalRunner runner(**engine, kvo);
  auto s = runner.MakeFitted("passkey", PasskeyInputs(), 512, 25, 2);
  ASSERT_TRUE(s.ok()) << s.error();
  auto prompt = runner.PromptTokens(*s);
  ASSERT_TRUE(prompt.ok());
  auto full = runner.Run(*s, *prompt, KvMode::kFull, 512);
  auto razor = runner.Run(*s, *prompt, KvMode::kRazor, 512);
  ASSERT_TRUE(full.ok()) << full.error();
  ASSERT_TRUE(razor.ok()) << razor.error();
  EXPECT_EQ(razor->answer, full->answer);
  EXPECT_EQ(razor->heads_compressed, 0);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace razor::eval
