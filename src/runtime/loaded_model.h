// A model ready to run: config, weights (mmapped), tokenizer, from a GGUF file or a Hugging Face directory.
#pragma once

#include <memory>
#include <string>

#include "core/status.h"
#include "model/model_config.h"
#include "model/model_weights.h"
#include "tokenizer/tokenizer.h"

namespace razor {

class GgufFile;

struct LoadedModel {
  std::string path;
  std::string format;                    // "gguf" | "safetensors"
  ModelConfig config;
  ModelWeights weights;
  std::shared_ptr<Tokenizer> tokenizer;  // null when the checkpoint has no tokenizer (tiny test models)
  std::shared_ptr<GgufFile> gguf;        // set for GGUF models (inspect reads its metadata)
};

// Loads a .gguf file or an HF checkpoint directory (config.json + *.safetensors). load_tokenizer=false skips
// the tokenizer (tests of the forward pass).
Result<std::shared_ptr<LoadedModel>> LoadModel(const std::string& path, bool load_tokenizer = true);

}  // namespace razor
