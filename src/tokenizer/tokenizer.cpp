// Tokenizer factories: pick the algorithm from the vocabulary's model type.
#include "tokenizer/tokenizer.h"

#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "io/gguf.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/pretokenizer.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/vocab.h"

namespace razor {

Result<std::shared_ptr<Tokenizer>> Tokenizer::FromGguf(const GgufFile& gguf) {
  auto vocab = VocabFromGguf(gguf);
  if (!vocab) return Err(gguf.path() + ": " + vocab.error());
  if (vocab->model == VocabModel::kSentencePieceBpe) {
    return std::shared_ptr<Tokenizer>(std::make_shared<SpmTokenizer>(std::move(vocab).value()));
  }
  auto pre = PreTokenizer::ForGgufPre(vocab->pre);
  if (!pre) return Err(gguf.path() + ": " + pre.error());
  return std::shared_ptr<Tokenizer>(
      std::make_shared<BpeTokenizer>(std::move(vocab).value(), std::move(pre).value()));
}

namespace {

// Reads and parses a JSON file; `required` false turns a missing file into a null json.
Result<nlohmann::json> ReadJson(const std::string& path, bool required) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (!required) return nlohmann::json();
    return Err(path + ": cannot open");
  }
  std::stringstream buffer;
  buffer << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(buffer.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return Err(path + ": not valid JSON");
  return j;
}

}  // namespace

Result<std::shared_ptr<Tokenizer>> Tokenizer::FromHfDir(const std::string& dir) {
  const std::string tokenizer_path = dir + "/tokenizer.json";
  RAZOR_ASSIGN_OR_RETURN(nlohmann::json tokenizer, ReadJson(tokenizer_path, true));
  RAZOR_ASSIGN_OR_RETURN(nlohmann::json config, ReadJson(dir + "/tokenizer_config.json", false));
  if (!tokenizer.is_object()) return Err(tokenizer_path + ": not a JSON object");
  if (tokenizer.contains("normalizer") && !tokenizer.at("normalizer").is_null()) {
    // NFC (Qwen2/3) is the identity on NFC input; we do not normalize other input (no Unicode tables).
    const std::string type = tokenizer.at("normalizer").value("type", "");
    if (type != "NFC") return Err(tokenizer_path + ": unsupported normalizer '" + type + "'");
  }
  auto vocab = VocabFromHfJson(tokenizer, config);
  if (!vocab) return Err(tokenizer_path + ": " + vocab.error());
  bool add_prefix_space = false;
  const nlohmann::json null_json;
  auto pre = PreTokenizer::FromHfJson(tokenizer.contains("pre_tokenizer") ? tokenizer.at("pre_tokenizer") : null_json,
                                      &add_prefix_space);
  if (!pre) return Err(tokenizer_path + ": " + pre.error());
  vocab->add_space_prefix = add_prefix_space;
  return std::shared_ptr<Tokenizer>(
      std::make_shared<BpeTokenizer>(std::move(vocab).value(), std::move(pre).value()));
}

}  // namespace razor
