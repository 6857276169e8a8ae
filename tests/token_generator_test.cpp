// TokenGenerator, one token at a time (what Python's stream=True drives): the same ids and text as Generate,
// the text handed out piece by piece adds up to the whole, and `cancelled` stops a prefill between batches
// and a decode between tokens with the error "cancelled", leaving what ran so far.
#include <gtest/gtest.h>

#include "model_test_support.h"
#include "runtime/engine.h"
#include "runtime/generator.h"

namespace razor {
namespace {

using testing::FixturePath;

struct Fixture {
  std::shared_ptr<LoadedModel> model;
  std::unique_ptr<Engine> engine;
  std::vector<int32_t> prompt;
};

Fixture Open() {
  Fixture f;
  auto m = LoadModel(FixturePath("hf/tiny_qwen2"), false);
  EXPECT_TRUE(m.ok()) << m.error();
  f.model = *m;
  auto e = Engine::Open(f.model, {.threads = 2, .kv_type = KvType::kF32});
  EXPECT_TRUE(e.ok()) << e.error();
  f.engine = std::move(e).value();
  for (int i = 0; i < 37; ++i) f.prompt.push_back((i * 7919) % f.model->config.vocab_size);
  return f;
}

std::unique_ptr<Sequence> NewSeq(Engine& e) {
  auto s = e.NewSequence({});
  EXPECT_TRUE(s.ok()) << s.error();
  return std::move(s).value();
}

TEST(TokenGeneratorTest, StepByStepEqualsGenerate) {
  Fixture f = Open();
  GenerationOptions g;
  g.max_new_tokens = 9;
  g.prefill_batch = 8;
  auto whole_seq = NewSeq(*f.engine);
  auto whole = Generate(*f.engine, *whole_seq, f.prompt, g);
  ASSERT_TRUE(whole.ok()) << whole.error();
  ASSERT_EQ(whole->output_ids.size(), 9u);

  auto seq = NewSeq(*f.engine);
  auto gen = TokenGenerator::ForSequence(*f.engine, *seq, f.prompt, g);
  ASSERT_TRUE(gen.ok()) << gen.error();
  ASSERT_TRUE(gen->Prefill().ok());
  EXPECT_EQ(seq->length(), 37);
  int steps = 0;
  while (true) {
    auto more = gen->Next();
    ASSERT_TRUE(more.ok()) << more.error();
    ++steps;
    EXPECT_EQ(gen->result().output_ids.size(), static_cast<size_t>(steps));
    if (!*more) break;
  }
  EXPECT_EQ(steps, 9);
  EXPECT_TRUE(gen->done());
  EXPECT_EQ(gen->result().output_ids, whole->output_ids);
  EXPECT_EQ(gen->result().stop_reason, "length");
  auto after = gen->Next();  // done: no more tokens, no error
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(*after);
}

TEST(TokenGeneratorTest, CancelledStopsAPrefillBetweenBatches) {
  Fixture f = Open();
  GenerationOptions g;
  g.prefill_batch = 10;
  int64_t prefilled = 0;
  g.on_prefill = [&](int64_t done, int64_t) { prefilled = done; };
  g.cancelled = [&] { return prefilled >= 20; };
  auto seq = NewSeq(*f.engine);
  auto gen = TokenGenerator::ForSequence(*f.engine, *seq, f.prompt, g);
  ASSERT_TRUE(gen.ok());
  Status st = gen->Prefill();
  EXPECT_FALSE(st.ok());
  EXPECT_EQ(st.message(), "cancelled");
  EXPECT_EQ(seq->length(), 20);  // two batches ran, the third did not
  EXPECT_TRUE(gen->done());
}

TEST(TokenGeneratorTest, CancelledStopsADecodeBetweenTokens) {
  Fixture f = Open();
  GenerationOptions g;
  g.max_new_tokens = 50;
  auto seq = NewSeq(*f.engine);
  size_t made = 0;
  g.cancelled = [&] { return made >= 3; };
  auto gen = TokenGenerator::ForSequence(*f.engine, *seq, f.prompt, g);
  ASSERT_TRUE(gen.ok());
  ASSERT_TRUE(gen->Prefill().ok());
  Status last = Status::Ok();
  for (int i = 0; i < 50; ++i) {
    auto more = gen->Next();
    if (!more.ok()) {
      last = more.status();
      break;
    }
    made = gen->result().output_ids.size();
  }
  EXPECT_EQ(last.message(), "cancelled");
  EXPECT_EQ(gen->result().output_ids.size(), 3u);
}

TEST(TokenGeneratorTest, APromptLongerThanTheContextIsAnErrorBeforeAnyWork) {
  Fixture f = Open();
  SequenceOptions so;
  so.capacity = 16;
  auto seq = f.engine->NewSequence(so);
  ASSERT_TRUE(seq.ok());
  auto gen = TokenGenerator::ForSequence(*f.engine, **seq, f.prompt, {});
  ASSERT_FALSE(gen.ok());
  EXPECT_NE(gen.error().find("longer than the context"), std::string::npos) << gen.error();
  EXPECT_EQ((*seq)->length(), 0);
}

}  // namespace
}  // namespace razor
