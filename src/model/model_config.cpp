#include "model/model_config.h"

#include <fmt/format.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "io/gguf.h"

namespace razor {

const char* ArchitectureName(Architecture a) {
  switch (a) {
    case Architecture::kLlama: return "llama";
    case Architecture::kQwen2: return "qwen2";
    case Architecture::kQwen3: return "qwen3";
    case Architecture::kBloom: return "bloom";
  }
  return "?";
}

std::string SupportedArchitectures() {
  return "llama (Llama 2/3, SmolLM2, Mistral), qwen2, qwen3, bloom";
}

std::vector<float> AlibiSlopes(int n_heads) {
  std::vector<float> slopes;
  if (n_heads <= 0) return slopes;
  int p2 = 1;
  while (p2 * 2 <= n_heads) p2 *= 2;
  const double base = std::pow(2.0, -8.0 / p2);
  for (int i = 1; i <= p2; ++i) slopes.push_back(static_cast<float>(std::pow(base, i)));
  const double extra = std::pow(2.0, -4.0 / p2);  // 2^(-8 / (2 p2))
  for (int i = 0; i < n_heads - p2; ++i) slopes.push_back(static_cast<float>(std::pow(extra, 2 * i + 1)));
  return slopes;
}

Status ModelConfig::Validate() const {
  auto bad = [&](const std::string& what) {
    return Err(fmt::format("invalid model config ({}): {}", ArchitectureName(arch), what));
  };
  if (n_layers <= 0 || n_layers > 1024) return bad(fmt::format("layer count {}", n_layers));
  if (dim <= 0 || n_heads <= 0 || n_kv_heads <= 0 || head_dim <= 0 || ffn_dim <= 0 || vocab_size <= 0)
    return bad(fmt::format("dim={} heads={} kv_heads={} head_dim={} ffn={} vocab={}", dim, n_heads, n_kv_heads,
                           head_dim, ffn_dim, vocab_size));
  if (n_heads % n_kv_heads != 0) return bad(fmt::format("{} heads not divisible by {} kv heads", n_heads, n_kv_heads));
  if (head_dim % 2 != 0) return bad(fmt::format("odd head_dim {}", head_dim));
  if (!alibi && rope_dim != head_dim) return bad(fmt::format("partial RoPE ({} of {} dims) is not supported", rope_dim, head_dim));
  if (context_length <= 0) return bad("context length missing");
  if (!(rope_theta > 0)) return bad("rope base must be > 0");
  return Status::Ok();
}

Result<ModelConfig> ConfigFromGguf(const GgufFile& g) {
  auto arch_name = g.GetString("general.architecture");
  if (!arch_name) return Err(g.path() + ": " + arch_name.error());
  ModelConfig c;
  const std::string a = *arch_name;
  if (a == "llama") c.arch = Architecture::kLlama;
  else if (a == "qwen2") c.arch = Architecture::kQwen2;
  else if (a == "qwen3") c.arch = Architecture::kQwen3;
  else if (a == "bloom") c.arch = Architecture::kBloom;
  else
    return Err(fmt::format("{}: unsupported architecture '{}' (supported: {})", g.path(), a, SupportedArchitectures()));
  c.name = g.GetStringOr("general.name").value_or(a);

  auto need_int = [&](const std::string& key, int* out) -> Status {
    auto v = g.GetInt(a + "." + key);
    if (!v) return Err(g.path() + ": " + v.error());
    if (*v <= 0 || *v > (int64_t(1) << 31)) return Err(fmt::format("{}: {}.{} = {} is out of range", g.path(), a, key, *v));
    *out = static_cast<int>(*v);
    return Status::Ok();
  };
  RAZOR_RETURN_IF_ERROR(need_int("block_count", &c.n_layers));
  RAZOR_RETURN_IF_ERROR(need_int("embedding_length", &c.dim));
  RAZOR_RETURN_IF_ERROR(need_int("feed_forward_length", &c.ffn_dim));
  RAZOR_RETURN_IF_ERROR(need_int("attention.head_count", &c.n_heads));
  RAZOR_RETURN_IF_ERROR(need_int("context_length", &c.context_length));
  c.n_kv_heads = static_cast<int>(g.GetIntOr(a + ".attention.head_count_kv").value_or(c.n_heads));
  c.head_dim = static_cast<int>(g.GetIntOr(a + ".attention.key_length").value_or(c.dim / c.n_heads));
  c.rope_dim = static_cast<int>(g.GetIntOr(a + ".rope.dimension_count").value_or(c.head_dim));
  c.rms_eps = static_cast<float>(g.GetFloatOr(a + ".attention.layer_norm_rms_epsilon").value_or(1e-5));
  c.rope_theta = g.GetFloatOr(a + ".rope.freq_base").value_or(10000.0);
  if (auto st = g.GetStringOr(a + ".rope.scaling.type"); st && *st != "none") {
    return Err(fmt::format("{}: RoPE scaling type '{}' is not supported (supported: none, llama3 via rope_freqs)",
                           g.path(), *st));
  }
  if (auto v = g.GetIntOr(a + ".vocab_size")) {
    c.vocab_size = static_cast<int>(*v);
  } else if (const TensorView* emb = g.FindTensor("token_embd.weight")) {
    c.vocab_size = static_cast<int>(emb->rows());
  }
  if (c.arch == Architecture::kBloom) {
    // llama.cpp's BLOOM: LayerNorms with bias, fused QKV regrouped to [3, n_heads, head_dim], ALiBi.
    if (c.n_kv_heads != c.n_heads || c.head_dim * c.n_heads != c.dim)
      return Err(fmt::format("{}: BLOOM with {} heads / {} KV heads of {} for width {} is not supported", g.path(),
                             c.n_heads, c.n_kv_heads, c.head_dim, c.dim));
    c.rms_eps = static_cast<float>(g.GetFloatOr(a + ".attention.layer_norm_epsilon").value_or(1e-5));
    c.rope_dim = c.head_dim;  // unused: no RoPE
    c.layer_norm = c.embedding_norm = c.fused_qkv = c.fused_qkv_split = c.dense_bias = c.gelu_mlp = c.alibi = true;
    c.tied_embeddings = g.FindTensor("output.weight") == nullptr;
    RAZOR_RETURN_IF_ERROR(c.Validate());
    return c;
  }
  // llama.cpp permutes llama Q/K weights for interleaved RoPE; qwen2/qwen3 keep HF's half-split layout.
  c.rope_layout = c.arch == Architecture::kLlama ? RopeLayout::kInterleaved : RopeLayout::kHalfSplit;
  c.qkv_bias = g.FindTensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = c.arch == Architecture::kQwen3;
  c.tied_embeddings = g.FindTensor("output.weight") == nullptr;
  RAZOR_RETURN_IF_ERROR(c.Validate());
  return c;
}

Result<ModelConfig> ConfigFromHfJson(const std::string& path) {
  std::ifstream in(path);
  if (!in) return Err(path + ": cannot open");
  nlohmann::json j;
  try {
    in >> j;
  } catch (const std::exception& e) {
    return Err(path + ": invalid JSON: " + e.what());
  }
  if (!j.is_object()) return Err(path + ": expected a JSON object");
  ModelConfig c;
  const std::string type = j.value("model_type", "");
  if (type == "llama" || type == "mistral") c.arch = Architecture::kLlama;
  else if (type == "qwen2") c.arch = Architecture::kQwen2;
  else if (type == "qwen3") c.arch = Architecture::kQwen3;
  else if (type == "bloom") c.arch = Architecture::kBloom;
  else
    return Err(fmt::format("{}: unsupported model_type '{}' (supported: {})", path, type, SupportedArchitectures()));
  c.name = type;
  if (c.arch == Architecture::kBloom) {
    try {
      c.n_layers = j.contains("n_layer") ? j["n_layer"].get<int>() : j.at("num_hidden_layers").get<int>();
      c.dim = j.contains("hidden_size") ? j["hidden_size"].get<int>() : j.at("n_embed").get<int>();
      c.n_heads = j.contains("n_head") ? j["n_head"].get<int>() : j.at("num_attention_heads").get<int>();
      c.vocab_size = j.at("vocab_size").get<int>();
      c.rms_eps = j.value("layer_norm_epsilon", 1e-5f);
      c.tied_embeddings = j.value("tie_word_embeddings", true);
      // ALiBi has no trained position table; BLOOM was trained at 2048 tokens.
      c.context_length = j.value("seq_length", j.value("max_position_embeddings", 2048));
      if (j.value("apply_residual_connection_post_layernorm", false))
        return Err(path + ": apply_residual_connection_post_layernorm = true is not supported");
    } catch (const std::exception& e) {
      return Err(path + ": " + e.what());
    }
    if (c.n_heads <= 0 || c.dim % c.n_heads != 0)
      return Err(fmt::format("{}: hidden_size {} is not a multiple of n_head {}", path, c.dim, c.n_heads));
    c.n_kv_heads = c.n_heads;
    c.head_dim = c.dim / c.n_heads;
    c.ffn_dim = 4 * c.dim;
    c.rope_dim = c.head_dim;  // unused: no RoPE
    c.layer_norm = c.embedding_norm = c.fused_qkv = c.dense_bias = c.gelu_mlp = c.alibi = true;
    RAZOR_RETURN_IF_ERROR(c.Validate());
    return c;
  }
  try {
    c.n_layers = j.at("num_hidden_layers").get<int>();
    c.dim = j.at("hidden_size").get<int>();
    c.n_heads = j.at("num_attention_heads").get<int>();
    c.n_kv_heads = j.value("num_key_value_heads", c.n_heads);
    c.head_dim = (j.contains("head_dim") && !j["head_dim"].is_null()) ? j["head_dim"].get<int>() : c.dim / c.n_heads;
    c.ffn_dim = j.at("intermediate_size").get<int>();
    c.vocab_size = j.at("vocab_size").get<int>();
    c.context_length = j.value("max_position_embeddings", 2048);
    c.rms_eps = j.value("rms_norm_eps", 1e-6f);
    c.tied_embeddings = j.value("tie_word_embeddings", false);
    // transformers >= 5 writes "rope_parameters"; older versions "rope_theta" + "rope_scaling".
    nlohmann::json rope = nlohmann::json::object();
    if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) rope = j["rope_parameters"];
    else if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) rope = j["rope_scaling"];
    c.rope_theta = rope.contains("rope_theta") ? rope["rope_theta"].get<double>() : j.value("rope_theta", 10000.0);
    std::string rope_type = rope.value("rope_type", rope.value("type", std::string("default")));
    if (rope_type == "llama3") {
      c.rope_scaling.kind = RopeScaling::Kind::kLlama3;
      c.rope_scaling.factor = rope.at("factor").get<double>();
      c.rope_scaling.low_freq_factor = rope.at("low_freq_factor").get<double>();
      c.rope_scaling.high_freq_factor = rope.at("high_freq_factor").get<double>();
      c.rope_scaling.original_max_positions = rope.at("original_max_position_embeddings").get<double>();
    } else if (rope_type != "default") {
      return Err(fmt::format("{}: RoPE type '{}' is not supported (supported: default, llama3)", path, rope_type));
    }
    if (j.contains("sliding_window") && j["sliding_window"].is_number_integer() &&
        j.value("use_sliding_window", type == "mistral")) {
      // Full attention equals sliding-window attention up to the window: cap the context there.
      c.context_length = std::min(c.context_length, j["sliding_window"].get<int>());
    }
  } catch (const std::exception& e) {
    return Err(path + ": " + e.what());
  }
  c.rope_dim = c.head_dim;
  c.rope_layout = RopeLayout::kHalfSplit;
  c.qkv_bias = c.arch == Architecture::kQwen2;
  c.qk_norm = c.arch == Architecture::kQwen3;
  RAZOR_RETURN_IF_ERROR(c.Validate());
  return c;
}

}  // namespace razor
