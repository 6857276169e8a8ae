// Tokenizer tests against references:
//  * llama.cpp's own vocab test vectors (ggml-vocab-*.gguf + .inp/.out, from scripts/fetch_tokenizers.sh),
//  * Hugging Face tokenizers' ids for every case of tests/fixtures/tokenizer_corpus.txt
//    (tests/golden_scripts/make_tokenizer_goldens.py writes tests/fixtures/tokenizer/<vocab>.ids),
//  * transformers' apply_chat_template output and special-token parsing (fixtures/tokenizer/chat.json).
// Data that is not on this machine makes the test skip (RAZOR_TEST_MODEL, RAZOR_TOKENIZER_DIR).
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <mutex>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/tokenizer.h"

namespace razor {
namespace {

std::string TokenizerDataDir() {
  if (const char* d = std::getenv("RAZOR_TOKENIZER_DIR")) return d;
  if (const char* h = std::getenv("RAZOR_HOME")) return std::string(h) + "/tokenizers";
  const char* home = std::getenv("HOME");
  return std::string(home ? home : ".") + "/.cache/razor/tokenizers";
}

bool FileExists(const std::string& path) { return std::ifstream(path).good(); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Fixture(const std::string& rel) { return std::string(RAZOR_SOURCE_DIR) + "/tests/fixtures/" + rel; }

// Where vocabulary `name` comes from; "" when it is not on this machine.
std::string VocabPath(const std::string& name) {
  if (name == "smollm2") {
    const char* p = std::getenv("RAZOR_TEST_MODEL");
    return p != nullptr && FileExists(p) ? p : "";
  }
  if (name == "gemma3") {  // the gemma3-270m GGUF that scripts/test.sh pulls
    const char* p = std::getenv("RAZOR_TEST_GEMMA3");
    return p != nullptr && FileExists(p) ? p : "";
  }
  if (name == "qwen3" || name == "llama3") {
    const std::string dir = TokenizerDataDir() + "/" + name;
    return FileExists(dir + "/tokenizer.json") ? dir : "";
  }
  const std::string path = TokenizerDataDir() + "/llama.cpp-vocab/ggml-vocab-" + name + ".gguf";
  return FileExists(path) ? path : "";
}

// Loads (once per process) the tokenizer of `name`; null + message when it fails.
std::shared_ptr<Tokenizer> LoadVocab(const std::string& name, std::string* error) {
  static std::mutex mu;
  static std::map<std::string, std::shared_ptr<Tokenizer>> cache;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(name); it != cache.end()) return it->second;
  const std::string path = VocabPath(name);
  Result<std::shared_ptr<Tokenizer>> tok = Err("not found");
  if (name == "qwen3" || name == "llama3") {
    tok = Tokenizer::FromHfDir(path);
  } else {
    auto gguf = GgufFile::Open(path);
    if (!gguf) {
      *error = gguf.error();
      return nullptr;
    }
    tok = Tokenizer::FromGguf(*gguf);
  }
  if (!tok) {
    *error = tok.error();
    return nullptr;
  }
  cache[name] = *tok;
  return *tok;
}

#define LOAD_OR_SKIP(var, name)                                                              \
  if (VocabPath(name).empty()) GTEST_SKIP() << name << " vocabulary not on this machine "   \
                                            << "(RAZOR_TEST_MODEL / scripts/fetch_tokenizers.sh)"; \
  std::string load_error_;                                                                   \
  auto var = LoadVocab(name, &load_error_);                                                  \
  ASSERT_NE(var, nullptr) << load_error_

std::string Ids(const std::vector<int32_t>& ids) {
  std::string s;
  for (int32_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

std::vector<int32_t> ParseIds(const std::string& line) {
  std::vector<int32_t> ids;
  std::istringstream in(line);
  for (int64_t v; in >> v;) ids.push_back(static_cast<int32_t>(v));
  return ids;
}

// -------------------------------------------------------------------------------- unit tests

TEST(TokenizerPreTokenizer, Gpt2SplitsWordsNumbersAndSpaces) {
  auto pt = PreTokenizer::ForGgufPre("gpt-2");
  ASSERT_TRUE(pt) << pt.error();
  std::vector<std::string> got;
  for (auto p : pt->Split("Hello  world, I'm 12345!\n")) got.emplace_back(p);
  const std::vector<std::string> want = {"Hello", " ", " world", ",", " I", "'m", " 12345", "!", "\n"};
  EXPECT_EQ(got, want);
}

TEST(TokenizerPreTokenizer, Llama3GroupsDigitsByThree) {
  auto pt = PreTokenizer::ForGgufPre("llama-bpe");
  ASSERT_TRUE(pt) << pt.error();
  std::vector<std::string> got;
  for (auto p : pt->Split("x=1234567 DON'T\n\n  y")) got.emplace_back(p);
  const std::vector<std::string> want = {"x", "=", "123", "456", "7", " DON", "'T", "\n\n", " ", " y"};
  EXPECT_EQ(got, want);
}

TEST(TokenizerPreTokenizer, SmollmSplitsEveryDigitAndAcceptsInvalidUtf8) {
  auto pt = PreTokenizer::ForGgufPre("smollm");
  ASSERT_TRUE(pt) << pt.error();
  std::vector<std::string> got;
  for (auto p : pt->Split("a 42")) got.emplace_back(p);
  EXPECT_EQ(got, (std::vector<std::string>{"a", " ", "4", "2"}));
  std::string joined;
  for (auto p : pt->Split("ok \xff\xfe bytes")) joined += p;
  EXPECT_EQ(joined, "ok \xff\xfe bytes");
  EXPECT_FALSE(PreTokenizer::ForGgufPre("no-such-pre"));
}

TEST(TokenizerChatTemplate, DetectsSmolLM2DefaultSystemPrompt) {
  const std::string jinja =
      "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
      "'<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}"
      "{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
      "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
  const ChatFormat f = DetectChatFormat(jinja);
  EXPECT_EQ(f.kind, ChatTemplateKind::kChatML);
  EXPECT_EQ(f.default_system, "You are a helpful AI assistant named SmolLM, trained by Hugging Face");
  auto text = RenderChat(f, "", {{"user", "hi"}}, true);
  ASSERT_TRUE(text);
  EXPECT_EQ(*text,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
            "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
  EXPECT_FALSE(RenderChat(DetectChatFormat("{{ messages }}"), "", {{"user", "hi"}}, true));
}

// ------------------------------------------------------------------- llama.cpp test vectors

class TokenizerLlamaCppVectors : public testing::TestWithParam<std::string> {};

TEST_P(TokenizerLlamaCppVectors, MatchAll) {
  const std::string name = GetParam();
  LOAD_OR_SKIP(tok, name);
  const std::string base = VocabPath(name);
  const std::string inp = ReadFile(base + ".inp");
  std::vector<std::string> outs;
  {
    std::istringstream in(ReadFile(base + ".out"));
    for (std::string line; std::getline(in, line);) outs.push_back(line);
  }
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> inputs;
  for (size_t pos = 0; pos < inp.size();) {
    const size_t next = inp.find(sep, pos);
    if (next == std::string::npos) {
      inputs.push_back(inp.substr(pos));
      break;
    }
    inputs.push_back(inp.substr(pos, next - pos));
    pos = next + sep.size();
  }
  ASSERT_EQ(inputs.size(), outs.size());
  size_t passed = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const std::vector<int32_t> want = ParseIds(outs[i]);
    const std::vector<int32_t> got = tok->Encode(inputs[i], /*add_bos=*/false, /*parse_special=*/false);
    if (got == want) {
      ++passed;
    } else {
      ADD_FAILURE() << name << " vector " << i << " '" << inputs[i] << "'\n want " << Ids(want) << "\n  got "
                    << Ids(got);
    }
  }
  std::printf("[ llama.cpp vectors ] %s: %zu / %zu passed\n", name.c_str(), passed, inputs.size());
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, TokenizerLlamaCppVectors,
                         testing::Values("llama-bpe", "llama-spm", "qwen2", "gpt-2"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) c = (c == '-') ? '_' : c;
                           return n;
                         });

// ------------------------------------------------------------------- HF goldens on the corpus

uint64_t Fnv1a64(const std::vector<int32_t>& ids) {
  uint64_t h = 0xCBF29CE484222325ull;
  for (int32_t id : ids) {
    const auto u = static_cast<uint32_t>(id);
    for (int b = 0; b < 4; ++b) h = (h ^ ((u >> (8 * b)) & 0xFF)) * 0x100000001B3ull;
  }
  return h;
}

// Every corpus line, then every block of 10 lines joined with '\n' (as the golden script does).
std::vector<std::string> CorpusCases() {
  std::vector<std::string> lines;
  const std::string text = ReadFile(Fixture("tokenizer_corpus.txt"));
  for (size_t pos = 0; pos < text.size();) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    lines.push_back(text.substr(pos, nl - pos));
    pos = nl + 1;
  }
  std::vector<std::string> cases = lines;
  for (size_t i = 0; i < lines.size(); i += 10) {
    std::string block;
    for (size_t k = i; k < std::min(lines.size(), i + 10); ++k) block += (k == i ? "" : "\n") + lines[k];
    cases.push_back(block);
  }
  return cases;
}

class TokenizerCorpus : public testing::TestWithParam<std::string> {};

TEST_P(TokenizerCorpus, IdsMatchHuggingFaceAndRoundTrip) {
  const std::string name = GetParam();
  LOAD_OR_SKIP(tok, name);
  const std::vector<std::string> cases = CorpusCases();
  ASSERT_GE(cases.size(), 2000u);
  std::vector<std::string> golden;
  {
    std::istringstream in(ReadFile(Fixture("tokenizer/" + name + ".ids")));
    for (std::string line; std::getline(in, line);) golden.push_back(line);
  }
  ASSERT_EQ(golden.size(), cases.size()) << "regenerate with make_tokenizer_goldens.py goldens";
  size_t matched = 0, round_trips = 0, tokens = 0;
  int reported = 0;
  for (size_t i = 0; i < cases.size(); ++i) {
    const std::vector<int32_t> ids = tok->Encode(cases[i], /*add_bos=*/false, /*parse_special=*/false);
    tokens += ids.size();
    char want_hash[17];
    std::snprintf(want_hash, sizeof(want_hash), "%016llx", static_cast<unsigned long long>(Fnv1a64(ids)));
    if (golden[i] == std::to_string(ids.size()) + " " + want_hash) {
      ++matched;
    } else if (reported++ < 8) {
      ADD_FAILURE() << name << " case " << i << " differs from HF (golden '" << golden[i] << "'; see "
                    << "make_tokenizer_goldens.py show " << name << " " << i << ")\n text: '" << cases[i]
                    << "'\n ours: " << Ids(ids);
    }
    if (tok->Decode(ids) == cases[i]) {
      ++round_trips;
    } else if (reported++ < 8) {
      ADD_FAILURE() << name << " case " << i << " does not round-trip: '" << cases[i] << "' -> '"
                    << tok->Decode(ids) << "'";
    }
  }
  std::printf("[ HF corpus goldens ] %s: %zu / %zu cases identical, %zu / %zu round-trip, %zu tokens\n",
              name.c_str(), matched, cases.size(), round_trips, cases.size(), tokens);
  EXPECT_EQ(matched, cases.size());
  EXPECT_EQ(round_trips, cases.size());
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, TokenizerCorpus, testing::Values("smollm2", "qwen3", "llama3", "llama-spm", "gemma3"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n) c = (c == '-') ? '_' : c;
                           return n;
                         });

// ------------------------------------------------------------- chat templates and special tokens

class TokenizerChat : public testing::TestWithParam<std::string> {};

TEST_P(TokenizerChat, TemplateAndSpecialTokensMatchTransformers) {
  const std::string name = GetParam();
  LOAD_OR_SKIP(tok, name);
  const nlohmann::json all = nlohmann::json::parse(ReadFile(Fixture("tokenizer/chat.json")));
  const nlohmann::json& g = all.at(name);
  for (const auto& conv : g.at("conversations")) {
    std::vector<ChatMessage> messages;
    for (const auto& m : conv.at("messages")) messages.push_back({m.at("role"), m.at("content")});
    auto text = tok->ApplyChatTemplate(messages, conv.at("add_generation_prompt").get<bool>());
    ASSERT_TRUE(text) << text.error();
    EXPECT_EQ(*text, conv.at("text").get<std::string>());
    EXPECT_EQ(Ids(tok->Encode(*text, false, true)), Ids(conv.at("ids").get<std::vector<int32_t>>()));
  }
  for (const auto& s : g.at("special_strings")) {
    const std::string text = s.at("text");
    EXPECT_EQ(Ids(tok->Encode(text, false, true)), Ids(s.at("ids").get<std::vector<int32_t>>())) << text;
    EXPECT_EQ(tok->Decode(tok->Encode(text, false, true)), text);
  }
}

INSTANTIATE_TEST_SUITE_P(Tokenizer, TokenizerChat, testing::Values("smollm2", "qwen3", "llama3"));

TEST(TokenizerSpecial, ChatMLMarkersAreParsedOnlyWhenAsked) {
  LOAD_OR_SKIP(tok, "smollm2");
  const std::string text = "<|im_start|>user\nhi<|im_end|>";
  const std::vector<int32_t> parsed = tok->Encode(text, false, true);
  ASSERT_EQ(parsed.size(), 5u);
  EXPECT_EQ(tok->TokenToPiece(parsed[0]), "<|im_start|>");
  EXPECT_TRUE(tok->IsSpecial(parsed[0]));
  EXPECT_TRUE(tok->IsEndOfGeneration(parsed[4]));
  EXPECT_EQ(tok->Decode(parsed), text);
  const std::vector<int32_t> plain = tok->Encode(text, false, false);
  EXPECT_GT(plain.size(), parsed.size());
  for (int32_t id : plain) EXPECT_FALSE(tok->IsSpecial(id));
  EXPECT_EQ(tok->Decode(plain), text);
  EXPECT_EQ(tok->chat_template_kind(), ChatTemplateKind::kChatML);
  EXPECT_EQ(tok->vocab_size(), 49152);
}

TEST(TokenizerSpecial, SpmAddsBosAndSpacePrefix) {
  LOAD_OR_SKIP(tok, "llama-spm");
  EXPECT_TRUE(tok->add_bos());
  const std::vector<int32_t> ids = tok->Encode("Hello world", true, false);
  ASSERT_FALSE(ids.empty());
  EXPECT_EQ(ids[0], tok->bos_id());
  EXPECT_EQ(tok->TokenToPiece(ids[1]), " Hello");
  EXPECT_EQ(tok->Decode({ids.begin() + 1, ids.end()}), "Hello world");
  EXPECT_EQ(tok->Encode("", false, false).size(), 0u);
}

}  // namespace
}  // namespace razor
