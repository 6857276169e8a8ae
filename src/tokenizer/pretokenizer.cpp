#include "tokenizer/pretokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <nlohmann/json.hpp>

namespace razor {

const char* const kGpt2Regex =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

// Llama 3 (tokenizer.json of Meta-Llama-3): numbers in groups of up to three digits.
const char* const kLlama3Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// Qwen2 / Qwen2.5 / Qwen3: the Llama 3 pattern with single digits.
const char* const kQwen2Regex =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// HF Digits(individual_digits=true) / (false).
const char* const kDigitRegex = R"(\p{N})";
const char* const kDigitsRegex = R"(\p{N}+)";

}  // namespace

struct PreTokenizer::Regex {
  pcre2_code* code = nullptr;
  ~Regex() { pcre2_code_free(code); }
};

Result<PreTokenizer> PreTokenizer::FromRegexes(const std::vector<std::string>& patterns) {
  PreTokenizer pt;
  for (const std::string& pattern : patterns) {
    int error = 0;
    PCRE2_SIZE error_offset = 0;
    // MATCH_INVALID_UTF: arbitrary bytes are legal input (they become byte tokens), never an error.
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                     PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &error,
                                     &error_offset, nullptr);
    if (code == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(error, message, sizeof(message));
      return Err("pre-tokenizer regex does not compile at offset " + std::to_string(error_offset) +
                 ": " + reinterpret_cast<const char*>(message) + " in /" + pattern + "/");
    }
    pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // falls back to the interpreter when JIT is missing
    auto regex = std::make_shared<Regex>();
    regex->code = code;
    pt.regexes_.push_back(std::move(regex));
  }
  return pt;
}

Result<PreTokenizer> PreTokenizer::ForGgufPre(const std::string& pre) {
  if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3") return FromRegexes({kLlama3Regex});
  if (pre == "qwen2") return FromRegexes({kQwen2Regex});
  if (pre == "smollm") return FromRegexes({kDigitRegex, kGpt2Regex});
  if (pre == "gpt-2" || pre == "gpt2" || pre == "default" || pre.empty()) return FromRegexes({kGpt2Regex});
  return Err("unsupported tokenizer.ggml.pre '" + pre +
             "' (supported: llama-bpe, qwen2, smollm, gpt-2, default)");
}

namespace {

Status CollectHfSteps(const nlohmann::json& node, std::vector<std::string>* patterns, bool* add_prefix_space) {
  if (node.is_null()) return Status::Ok();
  const std::string type = node.value("type", "");
  if (type == "Sequence") {
    for (const auto& step : node.at("pretokenizers")) {
      RAZOR_RETURN_IF_ERROR(CollectHfSteps(step, patterns, add_prefix_space));
    }
    return Status::Ok();
  }
  if (type == "Split") {
    const auto& pattern = node.at("pattern");
    if (!pattern.contains("Regex")) return Err("pre-tokenizer Split: only Regex patterns are supported");
    if (node.value("behavior", "") != "Isolated" || node.value("invert", false)) {
      return Err("pre-tokenizer Split: only behavior Isolated without invert is supported");
    }
    patterns->push_back(pattern.at("Regex").get<std::string>());
    return Status::Ok();
  }
  if (type == "ByteLevel") {
    if (node.value("use_regex", true)) patterns->push_back(kGpt2Regex);
    if (node.value("add_prefix_space", false)) *add_prefix_space = true;
    return Status::Ok();
  }
  if (type == "Digits") {
    patterns->push_back(node.value("individual_digits", false) ? kDigitRegex : kDigitsRegex);
    return Status::Ok();
  }
  return Err("unsupported pre-tokenizer type '" + type + "'");
}

}  // namespace

Result<PreTokenizer> PreTokenizer::FromHfJson(const nlohmann::json& pre_tokenizer, bool* add_prefix_space) {
  std::vector<std::string> patterns;
  *add_prefix_space = false;
  try {
    RAZOR_RETURN_IF_ERROR(CollectHfSteps(pre_tokenizer, &patterns, add_prefix_space));
  } catch (const nlohmann::json::exception& e) {
    return Err(std::string("bad pre_tokenizer in tokenizer.json: ") + e.what());
  }
  return FromRegexes(patterns);
}

namespace {

// Appends the matches of `code` in `piece` and the gaps between them to `out`.
void SplitOne(const pcre2_code* code, pcre2_match_data* match, std::string_view piece,
              std::vector<std::string_view>* out) {
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
  size_t gap_start = 0;
  size_t offset = 0;
  while (offset < piece.size()) {
    const int rc = pcre2_match(code, subject, piece.size(), offset, 0, match, nullptr);
    if (rc < 0) break;  // no further match (or an error): the rest is one gap
    const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(match);
    size_t start = ov[0], end = ov[1];
    if (end == start) {  // empty match: step over one UTF-8 character
      offset = start + 1;
      while (offset < piece.size() && (static_cast<uint8_t>(piece[offset]) & 0xC0) == 0x80) ++offset;
      continue;
    }
    if (start > gap_start) out->push_back(piece.substr(gap_start, start - gap_start));
    out->push_back(piece.substr(start, end - start));
    gap_start = offset = end;
  }
  if (gap_start < piece.size()) out->push_back(piece.substr(gap_start));
}

}  // namespace

std::vector<std::string_view> PreTokenizer::Split(std::string_view text) const {
  std::vector<std::string_view> pieces;
  if (text.empty()) return pieces;
  pieces.push_back(text);
  for (const auto& regex : regexes_) {
    pcre2_match_data* match = pcre2_match_data_create_from_pattern(regex->code, nullptr);
    std::vector<std::string_view> next;
    next.reserve(pieces.size() * 2);
    for (std::string_view piece : pieces) SplitOne(regex->code, match, piece, &next);
    pcre2_match_data_free(match);
    pieces.swap(next);
  }
  return pieces;
}

}  // namespace razor
