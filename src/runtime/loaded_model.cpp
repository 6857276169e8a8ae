#include "runtime/loaded_model.h"

#include <filesystem>

#include "io/gguf.h"
#include "io/safetensors.h"

namespace razor {

Result<std::shared_ptr<LoadedModel>> LoadModel(const std::string& path, bool load_tokenizer) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (!fs::exists(path, ec)) return Err(path + ": no such file or directory");
  auto m = std::make_shared<LoadedModel>();
  m->path = path;
  if (fs::is_directory(path, ec)) {
    m->format = "safetensors";
    const std::string cfg = (fs::path(path) / "config.json").string();
    if (!fs::exists(cfg, ec)) return Err(path + ": not a model directory (no config.json)");
    RAZOR_ASSIGN_OR_RETURN(m->config, ConfigFromHfJson(cfg));
    RAZOR_ASSIGN_OR_RETURN(auto ckpt, SafetensorsCheckpoint::Open(path));
    auto shared = std::make_shared<SafetensorsCheckpoint>(std::move(ckpt));
    RAZOR_ASSIGN_OR_RETURN(m->weights, LoadWeightsFromSafetensors(shared, m->config, path));
    if (load_tokenizer && fs::exists(fs::path(path) / "tokenizer.json", ec)) {
      RAZOR_ASSIGN_OR_RETURN(m->tokenizer, Tokenizer::FromHfDir(path));
    }
    return m;
  }
  m->format = "gguf";
  RAZOR_ASSIGN_OR_RETURN(GgufFile g, GgufFile::Open(path));
  m->gguf = std::make_shared<GgufFile>(std::move(g));
  RAZOR_ASSIGN_OR_RETURN(m->config, ConfigFromGguf(*m->gguf));
  RAZOR_ASSIGN_OR_RETURN(m->weights, LoadWeightsFromGguf(m->gguf, m->config));
  if (load_tokenizer) {
    RAZOR_ASSIGN_OR_RETURN(m->tokenizer, Tokenizer::FromGguf(*m->gguf));
  }
  return m;
}

}  // namespace razor
