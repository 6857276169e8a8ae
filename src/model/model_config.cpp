#include "model/model_config.h"

#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <optional>
#include <sstream>
#include <nlohmann/json.hpp>

#include "io/gguf.h"

namespace razor {

const char* ArchitectureName(Architecture a) {
  switch (a) {
    case Architecture::kLlama: return "llama";
    case Architecture::kQwen2: return "qwen2";
    case Architecture::kQwen3: return "qwen3";
    case Architecture::kBloom: return "bloom";
    case Architecture::kGemma3: return "gemma3";
  }
  return "?";
}

std::string SupportedArchitectures() {
  return "llama (Llama 2/3, SmolLM2, Mistral), qwen2, qwen3, bloom, gemma3 (GGUF)";
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
  auto in = [](int v, int lo, int hi) { return v >= lo && v <= hi; };
  if (!in(n_layers, 1, kMaxLayers)) return bad(fmt::format("layer count {} (1..{})", n_layers, kMaxLayers));
  if (!in(dim, 1, kMaxDim) || !in(n_heads, 1, kMaxHeads) || !in(n_kv_heads, 1, kMaxHeads) ||
      !in(head_dim, 1, kMaxHeadDim) || !in(ffn_dim, 1, kMaxDim) || !in(vocab_size, 1, kMaxVocab))
    return bad(fmt::format("dim={} heads={} kv_heads={} head_dim={} ffn={} vocab={} (each must be >= 1; at most dim, "
                           "ffn {}, heads {}, head_dim {}, vocab {})",
                           dim, n_heads, n_kv_heads, head_dim, ffn_dim, vocab_size, kMaxDim, kMaxHeads, kMaxHeadDim,
                           kMaxVocab));
  if (n_heads % n_kv_heads != 0) return bad(fmt::format("{} heads not divisible by {} kv heads", n_heads, n_kv_heads));
  if (head_dim % 2 != 0) return bad(fmt::format("odd head_dim {}", head_dim));
  if (!alibi && rope_dim != head_dim) return bad(fmt::format("partial RoPE ({} of {} dims) is not supported", rope_dim, head_dim));
  if (!in(context_length, 1, kMaxContext))
    return bad(fmt::format("context length {} (1..{})", context_length, kMaxContext));
  if (!std::isfinite(rms_eps) || rms_eps < 0) return bad(fmt::format("norm epsilon {} must be finite and >= 0", rms_eps));
  if (!(rope_theta > 0) || !std::isfinite(rope_theta)) return bad("rope base must be finite and > 0");
  if (!(rope_theta_local > 0) || !std::isfinite(rope_theta_local)) return bad("local rope base must be finite and > 0");
  if (sliding_window < 0 || swa_period < 0) return bad(fmt::format("sliding window {} / period {}", sliding_window, swa_period));
  if (!std::isfinite(attn_scale) || attn_scale < 0) return bad(fmt::format("query scale {}", attn_scale));
  if (rope_scaling.kind == RopeScaling::Kind::kLlama3) {
    const RopeScaling& r = rope_scaling;
    // rope.cpp divides by factor, by both frequency factors and by their difference.
    const bool ok = std::isfinite(r.factor) && r.factor > 0 && std::isfinite(r.low_freq_factor) &&
                    r.low_freq_factor > 0 && std::isfinite(r.high_freq_factor) &&
                    r.high_freq_factor > r.low_freq_factor && std::isfinite(r.original_max_positions) &&
                    r.original_max_positions > 0;
    if (!ok)
      return bad(fmt::format("llama3 RoPE scaling factor={} low_freq_factor={} high_freq_factor={} "
                             "original_max_position_embeddings={} (need all finite, > 0, high > low)",
                             r.factor, r.low_freq_factor, r.high_freq_factor, r.original_max_positions));
  }
  return Status::Ok();
}

namespace {

// A norm epsilon as float. A double outside float's range would convert with undefined behaviour: it
// becomes NaN, which Validate rejects.
float EpsilonOr(std::optional<double> v, double fallback) {
  const double d = v.value_or(fallback);
  return std::isfinite(d) && std::fabs(d) <= 1.0 ? static_cast<float>(d) : std::numeric_limits<float>::quiet_NaN();
}

}  // namespace

// Gemma 3 as llama.cpp writes and runs it (llama-model.cpp, LLM_ARCH_GEMMA3): norm gains stored with the
// +1 of Gemma's RMSNorm (x * (1 + w)) already added, so they are plain RMSNorm gains here; every 6th layer
// global, the others sliding-window with RoPE base 10000; query scale 1/sqrt(head_dim), except the 27B
// (62 layers), which scales by 1/sqrt(dim / n_heads) as its query_pre_attn_scalar says.
static Status ReadGemma3Gguf(const GgufFile& g, ModelConfig& c) {
  const std::optional<int64_t> window = g.GetIntOr("gemma3.attention.sliding_window");
  if (!window || *window <= 0 || *window > INT32_MAX)
    return Err(fmt::format("{}: gemma3.attention.sliding_window is missing or out of range", g.path()));
  c.sliding_window = static_cast<int>(*window);
  c.swa_period = 6;
  c.rope_theta_local = 10000.0;
  c.scale_embeddings = c.post_norms = c.gelu_gated_mlp = true;
  if (g.FindTensor("output.weight") == nullptr) c.tied_embeddings = true;
  if (c.n_layers == 62) c.attn_scale = 1.0f / std::sqrt(static_cast<float>(c.dim) / c.n_heads);
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
  else if (a == "gemma3") c.arch = Architecture::kGemma3;
  else
    return Err(fmt::format("{}: unsupported architecture '{}' (supported: {})", g.path(), ForMessage(a),
                           SupportedArchitectures()));
  c.name = g.GetStringOr("general.name").value_or(a);

  auto need_int = [&](const std::string& key, int* out) -> Status {
    auto v = g.GetInt(a + "." + key);
    if (!v) return Err(g.path() + ": " + v.error());
    if (*v <= 0 || *v > INT32_MAX) return Err(fmt::format("{}: {}.{} = {} is out of range", g.path(), a, key, *v));
    *out = static_cast<int>(*v);
    return Status::Ok();
  };
  // An optional key: absent gives `fallback`; present, it must fit an int (Validate checks the real range).
  auto opt_int = [&](const std::string& key, int fallback, int* out) -> Status {
    const std::optional<int64_t> v = g.GetIntOr(a + "." + key);
    if (!v) {
      *out = fallback;
      return Status::Ok();
    }
    if (*v < 0 || *v > INT32_MAX) return Err(fmt::format("{}: {}.{} = {} is out of range", g.path(), a, key, *v));
    *out = static_cast<int>(*v);
    return Status::Ok();
  };
  RAZOR_RETURN_IF_ERROR(need_int("block_count", &c.n_layers));
  RAZOR_RETURN_IF_ERROR(need_int("embedding_length", &c.dim));
  RAZOR_RETURN_IF_ERROR(need_int("feed_forward_length", &c.ffn_dim));
  RAZOR_RETURN_IF_ERROR(need_int("attention.head_count", &c.n_heads));
  RAZOR_RETURN_IF_ERROR(need_int("context_length", &c.context_length));
  RAZOR_RETURN_IF_ERROR(opt_int("attention.head_count_kv", c.n_heads, &c.n_kv_heads));
  RAZOR_RETURN_IF_ERROR(opt_int("attention.key_length", c.dim / c.n_heads, &c.head_dim));  // n_heads >= 1 above
  RAZOR_RETURN_IF_ERROR(opt_int("rope.dimension_count", c.head_dim, &c.rope_dim));
  c.rms_eps = EpsilonOr(g.GetFloatOr(a + ".attention.layer_norm_rms_epsilon"), 1e-5);
  c.rope_theta = g.GetFloatOr(a + ".rope.freq_base").value_or(10000.0);
  if (auto st = g.GetStringOr(a + ".rope.scaling.type"); st && *st != "none") {
    return Err(fmt::format("{}: RoPE scaling type '{}' is not supported (supported: none, llama3 via rope_freqs)",
                           g.path(), ForMessage(*st)));
  }
  if (g.GetIntOr(a + ".vocab_size")) {
    RAZOR_RETURN_IF_ERROR(opt_int("vocab_size", 0, &c.vocab_size));
  } else if (const TensorView* emb = g.FindTensor("token_embd.weight")) {
    c.vocab_size = emb->rows() > 0 && emb->rows() <= INT32_MAX ? static_cast<int>(emb->rows()) : 0;
  }
  if (c.arch == Architecture::kBloom) {
    // llama.cpp's BLOOM: LayerNorms with bias, fused QKV regrouped to [3, n_heads, head_dim], ALiBi.
    if (c.n_kv_heads != c.n_heads || int64_t{c.head_dim} * c.n_heads != c.dim)
      return Err(fmt::format("{}: BLOOM with {} heads / {} KV heads of {} for width {} is not supported", g.path(),
                             c.n_heads, c.n_kv_heads, c.head_dim, c.dim));
    c.rms_eps = EpsilonOr(g.GetFloatOr(a + ".attention.layer_norm_epsilon"), 1e-5);
    c.rope_dim = c.head_dim;  // unused: no RoPE
    c.layer_norm = c.embedding_norm = c.fused_qkv = c.fused_qkv_split = c.dense_bias = c.gelu_mlp = c.alibi = true;
    c.tied_embeddings = g.FindTensor("output.weight") == nullptr;
    RAZOR_RETURN_IF_ERROR(c.Validate());
    return c;
  }
  // llama.cpp permutes llama Q/K weights for interleaved RoPE; qwen2/qwen3/gemma3 keep HF's half-split layout.
  c.rope_layout = c.arch == Architecture::kLlama ? RopeLayout::kInterleaved : RopeLayout::kHalfSplit;
  c.qkv_bias = g.FindTensor("blk.0.attn_q.bias") != nullptr;
  c.qk_norm = c.arch == Architecture::kQwen3 || c.arch == Architecture::kGemma3;
  if (c.arch == Architecture::kGemma3) RAZOR_RETURN_IF_ERROR(ReadGemma3Gguf(g, c));
  c.tied_embeddings = g.FindTensor("output.weight") == nullptr;
  RAZOR_RETURN_IF_ERROR(c.Validate());
  return c;
}

namespace {

using nlohmann::json;

// A failed field check inside ConfigFromHfJsonText: thrown so the reader stays linear, caught once.
struct ConfigError {
  std::string message;
};

const json* Find(const json& j, const char* key) {
  auto it = j.find(key);
  return it == j.end() || it->is_null() ? nullptr : &*it;
}

// An integer field in [lo, hi]; `fallback` when missing or null (nullopt: required). nlohmann's get<int>
// would truncate 2^32 + 4 to 4 and convert 1e30 with undefined behaviour, so the value is checked first.
int IntField(const json& j, const char* key, int lo, int hi, std::optional<int> fallback = std::nullopt) {
  const json* v = Find(j, key);
  if (v == nullptr) {
    if (fallback) return *fallback;
    throw ConfigError{fmt::format("missing '{}'", key)};
  }
  bool ok = false;
  int64_t x = 0;
  if (v->is_number_unsigned()) {
    const uint64_t u = v->get<uint64_t>();
    ok = u <= static_cast<uint64_t>(hi);
    x = ok ? static_cast<int64_t>(u) : 0;
  } else if (v->is_number_integer()) {
    x = v->get<int64_t>();
    ok = true;
  } else if (v->is_number_float()) {  // 4096.0 is fine, 4096.5 / 1e30 / inf are not
    const double d = v->get<double>();
    ok = std::isfinite(d) && d == std::floor(d) && d >= lo && d <= hi;
    x = ok ? static_cast<int64_t>(d) : 0;
  } else {
    throw ConfigError{fmt::format("'{}' must be an integer, not {}", key, v->type_name())};
  }
  if (!ok || x < lo || x > hi) throw ConfigError{fmt::format("'{}' = {} is out of range [{}, {}]", key, v->dump(), lo, hi)};
  return static_cast<int>(x);
}

// The first of two spellings that is present (BLOOM configs use either).
const char* Either(const json& j, const char* a, const char* b) { return Find(j, a) ? a : b; }

// A number in [lo, hi] (finite); `fallback` when missing or null.
double NumberField(const json& j, const char* key, double fallback, double lo = -1e300, double hi = 1e300) {
  const json* v = Find(j, key);
  if (v == nullptr) return fallback;
  if (!v->is_number()) throw ConfigError{fmt::format("'{}' must be a number, not {}", key, v->type_name())};
  const double d = v->get<double>();
  if (!std::isfinite(d) || d < lo || d > hi)
    throw ConfigError{fmt::format("'{}' = {} is out of range [{}, {}]", key, v->dump(), lo, hi)};
  return d;
}

Status ReadBloom(const json& j, ModelConfig& c) {
  constexpr int kInt = INT32_MAX;
  c.n_layers = IntField(j, Either(j, "n_layer", "num_hidden_layers"), 1, ModelConfig::kMaxLayers);
  c.dim = IntField(j, Either(j, "hidden_size", "n_embed"), 1, ModelConfig::kMaxDim);
  c.n_heads = IntField(j, Either(j, "n_head", "num_attention_heads"), 1, ModelConfig::kMaxHeads);
  c.vocab_size = IntField(j, "vocab_size", 1, ModelConfig::kMaxVocab);
  c.rms_eps = static_cast<float>(NumberField(j, "layer_norm_epsilon", 1e-5, 0.0, 1.0));
  c.tied_embeddings = j.value("tie_word_embeddings", true);
  // ALiBi has no trained position table; BLOOM was trained at 2048 tokens.
  c.context_length = IntField(j, "seq_length", 1, kInt, IntField(j, "max_position_embeddings", 1, kInt, 2048));
  if (j.value("apply_residual_connection_post_layernorm", false))
    return Err("apply_residual_connection_post_layernorm = true is not supported");
  if (c.dim % c.n_heads != 0) return Err(fmt::format("hidden_size {} is not a multiple of n_head {}", c.dim, c.n_heads));
  c.n_kv_heads = c.n_heads;
  c.head_dim = c.dim / c.n_heads;
  c.ffn_dim = 4 * c.dim;  // dim <= kMaxDim: no overflow
  c.rope_dim = c.head_dim;  // unused: no RoPE
  c.layer_norm = c.embedding_norm = c.fused_qkv = c.dense_bias = c.gelu_mlp = c.alibi = true;
  return Status::Ok();
}

Status ReadDecoder(const json& j, const std::string& type, ModelConfig& c) {
  constexpr int kInt = INT32_MAX;
  c.n_layers = IntField(j, "num_hidden_layers", 1, ModelConfig::kMaxLayers);
  c.dim = IntField(j, "hidden_size", 1, ModelConfig::kMaxDim);
  c.n_heads = IntField(j, "num_attention_heads", 1, ModelConfig::kMaxHeads);  // divides dim below
  c.n_kv_heads = IntField(j, "num_key_value_heads", 1, ModelConfig::kMaxHeads, c.n_heads);
  c.head_dim = IntField(j, "head_dim", 1, ModelConfig::kMaxHeadDim, c.dim / c.n_heads);
  c.ffn_dim = IntField(j, "intermediate_size", 1, ModelConfig::kMaxDim);
  c.vocab_size = IntField(j, "vocab_size", 1, ModelConfig::kMaxVocab);
  c.context_length = IntField(j, "max_position_embeddings", 1, kInt, 2048);
  c.rms_eps = static_cast<float>(NumberField(j, "rms_norm_eps", 1e-6, 0.0, 1.0));
  c.tied_embeddings = j.value("tie_word_embeddings", false);
  // transformers >= 5 writes "rope_parameters"; older versions "rope_theta" + "rope_scaling".
  json rope = json::object();
  if (j.contains("rope_parameters") && j["rope_parameters"].is_object()) rope = j["rope_parameters"];
  else if (j.contains("rope_scaling") && j["rope_scaling"].is_object()) rope = j["rope_scaling"];
  c.rope_theta = rope.contains("rope_theta") ? NumberField(rope, "rope_theta", 10000.0) : NumberField(j, "rope_theta", 10000.0);
  const std::string rope_type = rope.value("rope_type", rope.value("type", std::string("default")));
  if (rope_type == "llama3") {
    c.rope_scaling.kind = RopeScaling::Kind::kLlama3;
    auto need = [&](const char* key) {
      if (!Find(rope, key)) throw ConfigError{fmt::format("llama3 RoPE scaling needs '{}'", key)};
      return NumberField(rope, key, 0);
    };
    c.rope_scaling.factor = need("factor");
    c.rope_scaling.low_freq_factor = need("low_freq_factor");
    c.rope_scaling.high_freq_factor = need("high_freq_factor");
    c.rope_scaling.original_max_positions = need("original_max_position_embeddings");
  } else if (rope_type != "default") {
    return Err(fmt::format("RoPE type '{}' is not supported (supported: default, llama3)", ForMessage(rope_type)));
  }
  if (Find(j, "sliding_window") && j["sliding_window"].is_number_integer() &&
      j.value("use_sliding_window", type == "mistral")) {
    // Full attention equals sliding-window attention up to the window: cap the context there.
    c.context_length = std::min(c.context_length, IntField(j, "sliding_window", 1, kInt));
  }
  c.rope_dim = c.head_dim;
  c.rope_layout = RopeLayout::kHalfSplit;
  c.qkv_bias = c.arch == Architecture::kQwen2;
  c.qk_norm = c.arch == Architecture::kQwen3;
  return Status::Ok();
}

}  // namespace

Result<ModelConfig> ConfigFromHfJsonText(const std::string& text, const std::string& path) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    return Err(path + ": invalid JSON: " + what);
  }
  if (!j.is_object()) return Err(path + ": expected a JSON object");
  ModelConfig c;
  const json* type_field = Find(j, "model_type");
  const std::string type = type_field && type_field->is_string() ? type_field->get<std::string>() : "";
  if (type == "llama" || type == "mistral") c.arch = Architecture::kLlama;
  else if (type == "qwen2") c.arch = Architecture::kQwen2;
  else if (type == "qwen3") c.arch = Architecture::kQwen3;
  else if (type == "bloom") c.arch = Architecture::kBloom;
  else
    return Err(fmt::format("{}: unsupported model_type '{}' (supported: {})", path, ForMessage(type),
                           SupportedArchitectures()));
  c.name = type;
  try {
    Status st = c.arch == Architecture::kBloom ? ReadBloom(j, c) : ReadDecoder(j, type, c);
    if (!st.ok()) return Err(path + ": " + st.message());
  } catch (const ConfigError& e) {
    return Err(path + ": " + e.message);
  } catch (const std::exception& e) {  // a field of the wrong type (nlohmann type_error)
    std::string what = e.what();
    std::replace(what.begin(), what.end(), '\n', ' ');
    return Err(path + ": " + what);
  }
  if (Status st = c.Validate(); !st.ok()) return Err(path + ": " + st.message());
  return c;
}

Result<ModelConfig> ConfigFromHfJson(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Err(path + ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  if (in.bad()) return Err(path + ": read error");
  return ConfigFromHfJsonText(ss.str(), path);
}

}  // namespace razor
