// libFuzzer target for `razor serve`'s request parsing: the input is the raw bytes a client sends.
//
// Feeds: the bytes into ReadHttpRequest (tools/serve/http_message.cpp) through a Unix socketpair whose write
// side is shut down after them (the reader sees them, then end of stream; nothing waits on the deadline), with
// small limits so the 431 / 413 paths are reached. When a request is read, its body goes to
// ParseCompletionRequest (tools/serve/completion_request.cpp) for each served-model set-up below (ChatML,
// Llama 3 and Qwen3 chat formats; small and larger contexts; with and without a head profile), as a
// completion and/or a chat completion depending on the path.
//
// Asserts (abort on failure):
//  * a read error has status 0 (nothing sent) or one of the 4xx statuses the reader answers, and a non-empty
//    one-line message;
//  * a read request has a method, a path starting with '/' without its query, lower-case trimmed headers, no
//    Transfer-Encoding, a body of exactly Content-Length bytes (equal to the bytes after the blank line) within
//    the limit, and a POST has a Content-Length;
//  * an ApiError has a 4xx status, a non-empty message and type, a param that names a field (no client text),
//    and a body that is a JSON {"error": {...}} object;
//  * an accepted request has a non-empty prompt of in-vocabulary ids, 1 <= max_tokens, prompt + max_tokens <=
//    context, sampler values in their documented ranges, at most 16 stops, a compressing KV mode only when the
//    model has a head profile, and (completions) the BOS the vocabulary asks for and a prompt that decodes back
//    to the text sent.
//
// The tokenizers are built here (no model download, no fixture file: the repository's tiny GGUF fixtures carry
// no BPE merges): byte-level BPE over GPT-2's 256-character byte alphabet plus a few merges and the chat
// formats' special tokens, as a SmolLM2 / Llama 3 / Qwen3 GGUF would describe them.
//
// Build and run (clang):
//   CXX=clang++ cmake --preset fuzz && cmake --build --preset fuzz -j2
//   build/fuzz/fuzz_serve_request -max_total_time=60 fuzz/corpus_serve_request
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "serve/completion_request.h"
#include "serve/http_message.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/vocab.h"

namespace {

using namespace razor;
using namespace razor::serve;

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool OneLine(const std::string& s) { return !s.empty() && s.find_first_of("\r\n") == std::string::npos; }

// A byte-level BPE vocabulary: ids 0..255 are the bytes (GPT-2 alphabet), then a few merges' results, then the
// special tokens (control type, so a completion's text never turns into them).
std::shared_ptr<Tokenizer> MakeTokenizer(const std::string& pre, const std::vector<std::string>& specials,
                                         const std::string& bos, const std::string& eos, bool add_bos,
                                         const std::string& chat_template) {
  Vocab v;
  v.model = VocabModel::kBytePairGpt2;
  v.pre = pre;
  for (int b = 0; b < 256; ++b) v.tokens.push_back(ByteToUnicode(static_cast<uint8_t>(b)));
  const std::string space = ByteToUnicode(' ');  // "Ġ"
  const std::vector<std::pair<std::string, std::string>> merges = {
      {"h", "e"}, {space, "t"}, {space + "t", "he"}, {"i", "n"}, {"e", "r"}, {space, "a"}, {"o", "n"}, {"r", "e"}};
  for (size_t i = 0; i < merges.size(); ++i) {
    v.merge_rank.emplace(merges[i].first + " " + merges[i].second, static_cast<int32_t>(i));
    v.tokens.push_back(merges[i].first + merges[i].second);
  }
  v.types.assign(v.tokens.size(), TokenType::kNormal);
  for (const std::string& s : specials) {
    v.tokens.push_back(s);
    v.types.push_back(TokenType::kControl);
  }
  v.ignore_merges = pre == "llama-bpe";
  v.chat_template = chat_template;
  v.Finish();
  v.bos_id = v.Find(bos);
  v.eos_id = v.Find(eos);
  v.add_bos = add_bos && v.bos_id >= 0;
  v.Finish();  // again, now that EOS is known
  auto p = PreTokenizer::ForGgufPre(pre);
  if (!p) std::abort();
  return std::make_shared<BpeTokenizer>(std::move(v), std::move(p).value());
}

// One served-model set-up: its tokenizer kept alive next to the ServedModel that points at it.
struct Setup {
  std::shared_ptr<Tokenizer> tokenizer;
  ServedModel model;
};

std::vector<Setup> MakeSetups() {
  std::vector<Setup> s(3);
  // SmolLM2-style ChatML with a default system prompt; a small context so the length checks bite.
  s[0].tokenizer = MakeTokenizer("smollm", {"<|endoftext|>", "<|im_start|>", "<|im_end|>"}, "<|endoftext|>",
                                 "<|endoftext|>", false,
                                 "{% if messages[0]['role'] != 'system' %}{{ '<|im_start|>system\\nYou are a "
                                 "helpful AI assistant<|im_end|>\\n' }}{% endif %}{% for message in messages %}"
                                 "{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
                                 "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
                                 "{% endif %}");
  s[0].model = {"fuzz-model", nullptr, 96, KvMode::kFull, false};
  // Llama 3 (BOS prefix, trimmed content), a head profile loaded and razor the default KV mode.
  s[1].tokenizer = MakeTokenizer("llama-bpe",
                                 {"<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                                  "<|eot_id|>"},
                                 "<|begin_of_text|>", "<|end_of_text|>", true,
                                 "{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + "
                                 "message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + "
                                 "'<|eot_id|>' }}{% endfor %}{% if add_generation_prompt %}{{ "
                                 "'<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}{% endif %}");
  s[1].model = {"fuzz-model", nullptr, 512, KvMode::kRazor, true};
  // Qwen3-style ChatML with think blocks; no add_generation_prompt in the template (always adds the header).
  s[2].tokenizer = MakeTokenizer("qwen2", {"<|endoftext|>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"},
                                 "<|endoftext|>", "<|im_end|>", false,
                                 "{%- set ns = namespace(last_query_index=messages|length - 1) %}{%- for message in "
                                 "messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content }}"
                                 "{%- if '<think>' in message.content %}{%- endif %}{{- '<|im_end|>\\n' }}"
                                 "{%- endfor %}");
  s[2].model = {"other-model", nullptr, 4096, KvMode::kFull, true};
  for (Setup& x : s) x.model.tokenizer = x.tokenizer.get();
  return s;
}

const std::vector<Setup>& Setups() {
  static const std::vector<Setup> setups = MakeSetups();
  return setups;
}

const HttpLimits kLimits{/*max_header_bytes=*/1024, /*max_body_bytes=*/4096, std::chrono::milliseconds(200)};

void CheckReadError(const HttpReadError& e, size_t input_size) {
  const int st = e.status;
  Check(st == 0 || st == 400 || st == 408 || st == 411 || st == 413 || st == 431);
  Check(st != 0 || input_size == 0);  // 0 only when nothing was sent (the write side always shuts down)
  Check(OneLine(e.message));
}

void CheckRequest(const HttpRequest& r, const std::string& sent, bool all_sent) {
  Check(!r.method.empty() && r.method.find(' ') == std::string::npos);
  Check(!r.path.empty() && r.path[0] == '/' && r.path.find('?') == std::string::npos);
  for (const auto& [name, value] : r.headers) {
    Check(!name.empty() && name.find(':') == std::string::npos);
    for (char c : name) Check(!(c >= 'A' && c <= 'Z'));
    if (!value.empty()) {
      Check(value.front() != ' ' && value.front() != '\t' && value.back() != ' ' && value.back() != '\t');
    }
  }
  Check(r.header("transfer-encoding") == nullptr);
  Check(r.body.size() <= kLimits.max_body_bytes);
  const std::string* length = r.header("content-length");
  if (r.method == "POST") Check(length != nullptr);
  if (length == nullptr) {
    Check(r.body.empty());
  } else {
    Check(std::stoull(*length) == r.body.size());
  }
  if (all_sent) {  // the body is the bytes after the first blank line
    const size_t end = sent.find("\r\n\r\n");
    Check(end != std::string::npos && sent.compare(end + 4, r.body.size(), r.body) == 0);
  }
}

void CheckApiError(const ApiError& e) {
  Check(e.status >= 400 && e.status <= 499);
  Check(!e.message.empty() && !e.type.empty());
  for (char c : e.param) Check((c >= 'a' && c <= 'z') || c == '_' || c == '.');
  const auto body = nlohmann::json::parse(e.Body(), nullptr, /*allow_exceptions=*/false);
  Check(body.is_object() && body.contains("error") && body["error"].is_object() &&
        body["error"]["message"].is_string());
}

// The completion's prompt text when the body sends one (a string or an array of one string).
std::string PromptText(const std::string& body) {
  const auto j = nlohmann::json::parse(body, nullptr, /*allow_exceptions=*/false);
  const nlohmann::json& p = j.at("prompt");
  return p.is_string() ? p.get<std::string>() : p.at(0).get<std::string>();
}

void CheckCompletion(const CompletionRequest& r, bool chat, const ServedModel& m, const std::string& body) {
  const GenerationJob& job = r.job;
  const Tokenizer& tok = *m.tokenizer;
  Check(r.chat == chat);
  Check(!job.prompt.empty());
  for (int32_t id : job.prompt) Check(id >= 0 && id < tok.vocab_size());
  const int64_t prompt = static_cast<int64_t>(job.prompt.size());
  Check(job.max_tokens >= 1 && prompt < m.context && job.max_tokens <= m.context - prompt);
  const SamplerParams& s = job.sampler;
  Check(s.temperature >= 0.0f && s.temperature <= 2.0f);
  Check(s.top_p > 0.0f && s.top_p <= 1.0f);
  Check(s.min_p >= 0.0f && s.min_p <= 1.0f);
  Check(s.repeat_penalty > 0.0f && s.repeat_penalty <= 10.0f);
  Check(s.top_k >= 0 && s.top_k <= (1 << 30));
  Check(job.stops.size() <= 16);
  Check(job.kv == KvMode::kFull || m.has_profile);
  if (!chat) {
    // BOS when the vocabulary asks for it, then the text's own ids: no special token, and they decode back.
    const bool bos = tok.add_bos();
    if (bos) Check(job.prompt[0] == tok.bos_id());
    const std::vector<int32_t> text_ids(job.prompt.begin() + (bos ? 1 : 0), job.prompt.end());
    for (int32_t id : text_ids) Check(!tok.IsSpecial(id));
    Check(tok.Decode(text_ids) == PromptText(body));
  }
}

// Writes what fits into the socket without blocking; true when all of it went.
bool WriteAll(int fd, const uint8_t* data, size_t size) {
  while (size > 0) {
    const ssize_t n = ::send(fd, data, size, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    data += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  (void)Setups();
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size > (64 << 10)) return -1;  // far past the limits; keep under the socket buffer (reject from corpus)
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) std::abort();
  const bool all_sent = WriteAll(fds[1], data, size);
  ::shutdown(fds[1], SHUT_WR);
  HttpRequest request;
  HttpReadError error;
  const bool ok = ReadHttpRequest(fds[0], kLimits, &request, &error);
  ::close(fds[0]);
  ::close(fds[1]);
  if (!ok) {
    CheckReadError(error, size);
    return 0;
  }
  CheckRequest(request, std::string(reinterpret_cast<const char*>(data), size), all_sent);

  // The routes as the server has them; any other path tries both (the mutated path keeps the body reachable).
  std::vector<bool> modes;
  if (request.path == "/v1/completions") modes = {false};
  else if (request.path == "/v1/chat/completions") modes = {true};
  else modes = {false, true};
  for (const Setup& setup : Setups()) {
    for (bool chat : modes) {
      auto parsed = ParseCompletionRequest(request.body, chat, setup.model);
      if (auto* e = std::get_if<ApiError>(&parsed)) CheckApiError(*e);
      else CheckCompletion(std::get<CompletionRequest>(parsed), chat, setup.model, request.body);
    }
  }
  return 0;
}
