#include "tokenizer/vocab.h"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "io/gguf.h"

namespace razor {

void Vocab::Finish() {
  token_to_id.clear();
  token_to_id.reserve(tokens.size());
  for (int32_t id = 0; id < size(); ++id) {
    if (types[id] == TokenType::kUnused && tokens[id].empty()) continue;  // hole in the id range
    token_to_id.emplace(tokens[id], id);  // the first id wins on duplicates
  }
  end_of_generation_ids.clear();
  if (eos_id >= 0) end_of_generation_ids.push_back(eos_id);
  // End-of-turn markers of the chat formats we render, plus the common end-of-text tokens.
  for (const char* text : {"<|eot_id|>", "<|eom_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>",
                           "<|endoftext|>", "<|end_of_text|>", "<EOT>"}) {
    const int32_t id = Find(text);
    if (id >= 0 && IsSpecial(id)) end_of_generation_ids.push_back(id);
  }
  std::sort(end_of_generation_ids.begin(), end_of_generation_ids.end());
  end_of_generation_ids.erase(std::unique(end_of_generation_ids.begin(), end_of_generation_ids.end()),
                              end_of_generation_ids.end());
}

namespace {

void AddMerge(Vocab* vocab, const std::string& left, const std::string& right, int32_t rank) {
  vocab->merge_rank.emplace(left + " " + right, rank);
}

// A merge line "left right": the separator is the first space after the first character
// (byte-level alphabets never contain a raw space, so there is exactly one).
Status AddMergeLine(Vocab* vocab, const std::string& line, int32_t rank) {
  const size_t space = line.find(' ', 1);
  if (space == std::string::npos) return Err("merge " + std::to_string(rank) + " has no space: '" + line + "'");
  AddMerge(vocab, line.substr(0, space), line.substr(space + 1), rank);
  return Status::Ok();
}

}  // namespace

Result<Vocab> VocabFromGguf(const GgufFile& gguf) {
  Vocab vocab;
  RAZOR_ASSIGN_OR_RETURN(const std::string model, gguf.GetString("tokenizer.ggml.model"));
  if (model == "gpt2") {
    vocab.model = VocabModel::kBytePairGpt2;
  } else if (model == "llama") {
    vocab.model = VocabModel::kSentencePieceBpe;
  } else {
    return Err("unsupported tokenizer.ggml.model '" + model + "' (supported: gpt2, llama)");
  }
  vocab.pre = gguf.GetStringOr("tokenizer.ggml.pre").value_or("default");
  RAZOR_ASSIGN_OR_RETURN(const std::vector<std::string>* tokens, gguf.GetStringArray("tokenizer.ggml.tokens"));
  vocab.tokens = *tokens;
  const size_t n = vocab.tokens.size();
  if (n == 0) return Err("tokenizer.ggml.tokens is empty");
  vocab.types.assign(n, TokenType::kNormal);
  if (gguf.Find("tokenizer.ggml.token_type") != nullptr) {
    RAZOR_ASSIGN_OR_RETURN(const std::vector<int64_t>* types, gguf.GetIntArray("tokenizer.ggml.token_type"));
    if (types->size() != n) return Err("tokenizer.ggml.token_type has a different length than tokens");
    for (size_t i = 0; i < n; ++i) {
      const int64_t t = (*types)[i];
      vocab.types[i] = (t >= 0 && t <= 6) ? static_cast<TokenType>(t) : TokenType::kNormal;
    }
  }
  if (gguf.Find("tokenizer.ggml.scores") != nullptr) {
    RAZOR_ASSIGN_OR_RETURN(const std::vector<double>* scores, gguf.GetFloatArray("tokenizer.ggml.scores"));
    if (scores->size() != n) return Err("tokenizer.ggml.scores has a different length than tokens");
    vocab.scores.assign(scores->begin(), scores->end());
  }
  if (vocab.model == VocabModel::kSentencePieceBpe && vocab.scores.empty()) {
    return Err("tokenizer.ggml.model is 'llama' but tokenizer.ggml.scores is missing");
  }
  if (vocab.model == VocabModel::kBytePairGpt2) {
    RAZOR_ASSIGN_OR_RETURN(const std::vector<std::string>* merges, gguf.GetStringArray("tokenizer.ggml.merges"));
    vocab.merge_rank.reserve(merges->size());
    for (size_t i = 0; i < merges->size(); ++i) {
      RAZOR_RETURN_IF_ERROR(AddMergeLine(&vocab, (*merges)[i], static_cast<int32_t>(i)));
    }
    vocab.ignore_merges = vocab.pre == "llama-bpe" || vocab.pre == "llama3" || vocab.pre == "llama-v3";
  }
  auto id_or = [&](const char* key) -> int32_t {
    const auto v = gguf.GetIntOr(key);
    return (v && *v >= 0 && static_cast<size_t>(*v) < n) ? static_cast<int32_t>(*v) : -1;
  };
  vocab.bos_id = id_or("tokenizer.ggml.bos_token_id");
  vocab.eos_id = id_or("tokenizer.ggml.eos_token_id");
  vocab.unk_id = id_or("tokenizer.ggml.unknown_token_id");
  const bool spm = vocab.model == VocabModel::kSentencePieceBpe;
  auto bool_or = [&](const char* key, bool fallback) {
    auto r = gguf.Find(key) != nullptr ? gguf.GetBool(key) : Result<bool>(fallback);
    return r ? *r : fallback;
  };
  vocab.add_bos = bool_or("tokenizer.ggml.add_bos_token", spm || vocab.ignore_merges) && vocab.bos_id >= 0;
  vocab.add_space_prefix = bool_or("tokenizer.ggml.add_space_prefix", spm);
  vocab.chat_template = gguf.GetStringOr("tokenizer.chat_template").value_or("");
  vocab.Finish();
  const int32_t eot = id_or("tokenizer.ggml.eot_token_id");
  if (eot >= 0 && !std::binary_search(vocab.end_of_generation_ids.begin(), vocab.end_of_generation_ids.end(), eot)) {
    vocab.end_of_generation_ids.push_back(eot);
    std::sort(vocab.end_of_generation_ids.begin(), vocab.end_of_generation_ids.end());
  }
  return vocab;
}

namespace {

// tokenizer_config.json names special tokens either as a string or as {"content": ...}.
std::string TokenContent(const nlohmann::json& config, const char* key) {
  if (!config.is_object() || !config.contains(key)) return "";
  const auto& v = config.at(key);
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content") && v.at("content").is_string()) return v.at("content").get<std::string>();
  return "";
}

Status FillFromHfJson(const nlohmann::json& tokenizer, const nlohmann::json& config, Vocab* vocab) {
  const auto& model = tokenizer.at("model");
  if (model.value("type", "BPE") != "BPE" || model.value("byte_fallback", false)) {
    return Err("tokenizer.json: only byte-level BPE models are supported (model.type BPE without byte_fallback)");
  }
  vocab->model = VocabModel::kBytePairGpt2;
  vocab->ignore_merges = model.value("ignore_merges", false);
  // Ids: the model's vocab plus added_tokens; holes (ids nobody names) become unused empty tokens.
  int64_t max_id = -1;
  for (const auto& [text, id] : model.at("vocab").items()) max_id = std::max<int64_t>(max_id, id.get<int64_t>());
  const nlohmann::json empty_array = nlohmann::json::array();
  const auto& added = tokenizer.contains("added_tokens") ? tokenizer.at("added_tokens") : empty_array;
  for (const auto& t : added) max_id = std::max<int64_t>(max_id, t.at("id").get<int64_t>());
  if (max_id < 0 || max_id > (1 << 24)) return Err("tokenizer.json: vocab is empty or ids are out of range");
  vocab->tokens.assign(max_id + 1, "");
  vocab->types.assign(max_id + 1, TokenType::kUnused);
  for (const auto& [text, id] : model.at("vocab").items()) {
    const int64_t i = id.get<int64_t>();
    if (i < 0) return Err("tokenizer.json: negative id for '" + text + "'");
    vocab->tokens[i] = text;
    vocab->types[i] = TokenType::kNormal;
  }
  for (const auto& t : added) {
    const int64_t i = t.at("id").get<int64_t>();
    vocab->tokens[i] = t.at("content").get<std::string>();
    vocab->types[i] = t.value("special", false) ? TokenType::kControl : TokenType::kUserDefined;
  }
  const auto& merges = model.at("merges");
  vocab->merge_rank.reserve(merges.size());
  int32_t rank = 0;
  for (const auto& m : merges) {
    if (m.is_string()) {
      RAZOR_RETURN_IF_ERROR(AddMergeLine(vocab, m.get<std::string>(), rank));
    } else {
      AddMerge(vocab, m.at(0).get<std::string>(), m.at(1).get<std::string>(), rank);
    }
    ++rank;
  }
  vocab->Finish();
  vocab->bos_id = vocab->Find(TokenContent(config, "bos_token"));
  vocab->eos_id = vocab->Find(TokenContent(config, "eos_token"));
  vocab->unk_id = vocab->Find(TokenContent(config, "unk_token"));
  // BOS is added when the config says so, else when the post-processor's template starts with it.
  bool add_bos = false;
  if (config.is_object() && config.contains("add_bos_token") && config.at("add_bos_token").is_boolean()) {
    add_bos = config.at("add_bos_token").get<bool>();
  } else if (tokenizer.contains("post_processor") && tokenizer.at("post_processor").is_object()) {
    const auto& post = tokenizer.at("post_processor");
    if (post.value("type", "") == "TemplateProcessing" && !post.at("single").empty() &&
        post.at("single").at(0).contains("SpecialToken")) {
      const std::string first = post.at("single").at(0).at("SpecialToken").value("id", "");
      add_bos = !first.empty() && vocab->Find(first) == vocab->bos_id;
    }
  }
  vocab->add_bos = add_bos && vocab->bos_id >= 0;
  if (config.is_object() && config.contains("chat_template") && config.at("chat_template").is_string()) {
    vocab->chat_template = config.at("chat_template").get<std::string>();
  }
  vocab->Finish();  // again: EOS is known now
  return Status::Ok();
}

}  // namespace

Result<Vocab> VocabFromHfJson(const nlohmann::json& tokenizer, const nlohmann::json& config) {
  Vocab vocab;
  try {
    RAZOR_RETURN_IF_ERROR(FillFromHfJson(tokenizer, config, &vocab));
  } catch (const nlohmann::json::exception& e) {
    return Err(std::string("tokenizer.json: ") + e.what());
  }
  return vocab;
}

}  // namespace razor
