#include "model/model_weights.h"

#include <fmt/format.h>

#include <functional>
#include <map>

#include "io/gguf.h"
#include "io/safetensors.h"
#include "ops/dequantize.h"

namespace razor {
namespace {

using FindFn = std::function<const TensorView*(const std::string&)>;

std::string ShapeString(const std::vector<int64_t>& s) {
  std::string out = "[";
  for (size_t i = 0; i < s.size(); ++i) out += (i ? ", " : "") + std::to_string(s[i]);
  return out + "]";
}

// Looks up tensors by name and checks type and shape (GGUF order: {cols, rows}).
class TensorBinder {
 public:
  TensorBinder(FindFn find, std::string source, ModelWeights* w) : find_(std::move(find)), source_(std::move(source)), w_(w) {}

  Status Matrix(const std::string& name, int64_t cols, int64_t rows, TensorView* out) {
    const TensorView* t = find_(name);
    if (t == nullptr) return Err(fmt::format("{}: missing tensor '{}'", source_, name));
    RAZOR_RETURN_IF_ERROR(CheckShape(*t, {cols, rows}));
    auto info = GetTensorTypeInfo(static_cast<uint32_t>(t->type));
    if (!info || !info->supported)
      return Err(fmt::format("{}: tensor '{}' has type {} which razor cannot compute with (supported: F32 F16 BF16 "
                             "Q4_0 Q4_1 Q5_0 Q5_1 Q8_0 Q4_K Q5_K Q6_K)", source_, name, TensorTypeName(t->type)));
    *out = *t;
    Count(*t);
    return Status::Ok();
  }

  Status Vector(const std::string& name, int64_t n, std::vector<float>* out, bool optional = false) {
    const TensorView* t = find_(name);
    if (t == nullptr) {
      if (optional) return Status::Ok();
      return Err(fmt::format("{}: missing tensor '{}'", source_, name));
    }
    RAZOR_RETURN_IF_ERROR(CheckShape(*t, {n}));
    if (t->type != TensorType::F32 && t->type != TensorType::F16 && t->type != TensorType::BF16)
      return Err(fmt::format("{}: vector tensor '{}' has type {} (expected F32/F16/BF16)", source_, name,
                             TensorTypeName(t->type)));
    out->resize(n);
    DequantizeRow(t->type, t->data, out->data(), n);
    Count(*t);
    return Status::Ok();
  }

 private:
  Status CheckShape(const TensorView& t, std::vector<int64_t> want) {
    std::vector<int64_t> got = t.shape;
    while (got.size() > want.size() && got.back() == 1) got.pop_back();
    if (got != want)
      return Err(fmt::format("{}: tensor '{}' has shape {}, expected {}", source_, t.name, ShapeString(t.shape),
                             ShapeString(want)));
    return Status::Ok();
  }
  void Count(const TensorView& t) {
    w_->parameter_count += t.elements();
    w_->stored_bytes += t.nbytes;
  }
  FindFn find_;
  std::string source_;
  ModelWeights* w_;
};

struct NameScheme {
  std::string embd, out_norm, output;
  std::function<std::string(int, const char*)> layer;  // (layer, role) -> name
};

std::string GgufLayerName(int l, const char* role) {
  static const std::map<std::string, std::string> m = {
      {"attn_norm", "attn_norm.weight"}, {"wq", "attn_q.weight"},   {"wk", "attn_k.weight"},
      {"wv", "attn_v.weight"},           {"wo", "attn_output.weight"}, {"bq", "attn_q.bias"},
      {"bk", "attn_k.bias"},             {"bv", "attn_v.bias"},     {"q_norm", "attn_q_norm.weight"},
      {"k_norm", "attn_k_norm.weight"},  {"ffn_norm", "ffn_norm.weight"}, {"w_gate", "ffn_gate.weight"},
      {"w_up", "ffn_up.weight"},         {"w_down", "ffn_down.weight"},
      {"post_attn_norm", "post_attention_norm.weight"}, {"post_ffn_norm", "post_ffw_norm.weight"}};
  return fmt::format("blk.{}.{}", l, m.at(role));
}

std::string HfLayerName(int l, const char* role) {
  static const std::map<std::string, std::string> m = {
      {"attn_norm", "input_layernorm.weight"}, {"wq", "self_attn.q_proj.weight"}, {"wk", "self_attn.k_proj.weight"},
      {"wv", "self_attn.v_proj.weight"},       {"wo", "self_attn.o_proj.weight"}, {"bq", "self_attn.q_proj.bias"},
      {"bk", "self_attn.k_proj.bias"},         {"bv", "self_attn.v_proj.bias"},   {"q_norm", "self_attn.q_norm.weight"},
      {"k_norm", "self_attn.k_norm.weight"},   {"ffn_norm", "post_attention_layernorm.weight"},
      {"w_gate", "mlp.gate_proj.weight"},      {"w_up", "mlp.up_proj.weight"},    {"w_down", "mlp.down_proj.weight"}};
  return fmt::format("model.layers.{}.{}", l, m.at(role));
}

// lm_head: the token embedding when tied (or when the checkpoint has no output tensor), else its own matrix.
Status BindOutput(const FindFn& find, TensorBinder& b, const std::string& name, const ModelConfig& c, ModelWeights* w) {
  if (c.tied_embeddings || find(name) == nullptr) {
    w->output = w->token_embd;
    return Status::Ok();
  }
  return b.Matrix(name, c.dim, c.vocab_size, &w->output);
}

Result<ModelWeights> Bind(const FindFn& find, const std::string& source, const NameScheme& names,
                          const ModelConfig& c) {
  ModelWeights w;
  TensorBinder b(find, source, &w);
  RAZOR_RETURN_IF_ERROR(b.Matrix(names.embd, c.dim, c.vocab_size, &w.token_embd));
  RAZOR_RETURN_IF_ERROR(b.Vector(names.out_norm, c.dim, &w.output_norm));
  RAZOR_RETURN_IF_ERROR(BindOutput(find, b, names.output, c, &w));
  w.layers.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights& L = w.layers[l];
    auto n = [&](const char* role) { return names.layer(l, role); };
    RAZOR_RETURN_IF_ERROR(b.Vector(n("attn_norm"), c.dim, &L.attn_norm));
    RAZOR_RETURN_IF_ERROR(b.Matrix(n("wq"), c.dim, c.q_dim(), &L.wq));
    RAZOR_RETURN_IF_ERROR(b.Matrix(n("wk"), c.dim, c.kv_dim(), &L.wk));
    RAZOR_RETURN_IF_ERROR(b.Matrix(n("wv"), c.dim, c.kv_dim(), &L.wv));
    RAZOR_RETURN_IF_ERROR(b.Matrix(n("wo"), c.q_dim(), c.dim, &L.wo));
    if (c.qkv_bias) {
      RAZOR_RETURN_IF_ERROR(b.Vector(n("bq"), c.q_dim(), &L.bq));
      RAZOR_RETURN_IF_ERROR(b.Vector(n("bk"), c.kv_dim(), &L.bk));
      RAZOR_RETURN_IF_ERROR(b.Vector(n("bv"), c.kv_dim(), &L.bv));
    }
    if (c.qk_norm) {
      RAZOR_RETURN_IF_ERROR(b.Vector(n("q_norm"), c.head_dim, &L.q_norm));
      RAZOR_RETURN_IF_ERROR(b.Vector(n("k_norm"), c.head_dim, &L.k_norm));
    }
    RAZOR_RETURN_IF_ERROR(b.Vector(n("ffn_norm"), c.dim, &L.ffn_norm));
    RAZOR_RETURN_IF_ERROR(b.Matrix(n("w_gate"), c.dim, c.ffn_dim, &L.w_gate));
    RAZOR_RETURN_IF_ERROR(b.Matrix(n("w_up"), c.dim, c.ffn_dim, &L.w_up));
    RAZOR_RETURN_IF_ERROR(b.Matrix(n("w_down"), c.ffn_dim, c.dim, &L.w_down));
    if (c.post_norms) {
      RAZOR_RETURN_IF_ERROR(b.Vector(n("post_attn_norm"), c.dim, &L.post_attn_norm));
      RAZOR_RETURN_IF_ERROR(b.Vector(n("post_ffn_norm"), c.dim, &L.post_ffn_norm));
    }
  }
  return w;
}

// BLOOM tensor names: HF (transformers BloomForCausalLM) and GGUF (llama.cpp). Layer names take the layer index.
struct BloomNames {
  const char* embd;
  const char* embd_norm;  // + ".weight" / ".bias"
  const char* out_norm;
  const char* output;
  const char* layer;      // fmt pattern of a layer's prefix
  const char* attn_norm;
  const char* qkv;
  const char* wo;
  const char* ffn_norm;
  const char* up;
  const char* down;
};
constexpr BloomNames kBloomHfNames{"transformer.word_embeddings.weight", "transformer.word_embeddings_layernorm",
                                   "transformer.ln_f", "lm_head.weight", "transformer.h.{}.", "input_layernorm",
                                   "self_attention.query_key_value", "self_attention.dense",
                                   "post_attention_layernorm", "mlp.dense_h_to_4h", "mlp.dense_4h_to_h"};
constexpr BloomNames kBloomGgufNames{"token_embd.weight", "token_embd_norm", "output_norm", "output.weight", "blk.{}.",
                                     "attn_norm", "attn_qkv", "attn_output", "ffn_norm", "ffn_up", "ffn_down"};

// BLOOM: LayerNorms with bias, fused QKV (layout in config.fused_qkv_split), biased projections, GELU MLP.
Result<ModelWeights> BindBloom(const FindFn& find, const std::string& source, const BloomNames& nm,
                               const ModelConfig& c) {
  ModelWeights w;
  TensorBinder b(find, source, &w);
  auto wt = [](const char* base) { return std::string(base) + ".weight"; };
  auto bs = [](const char* base) { return std::string(base) + ".bias"; };
  RAZOR_RETURN_IF_ERROR(b.Matrix(nm.embd, c.dim, c.vocab_size, &w.token_embd));
  RAZOR_RETURN_IF_ERROR(b.Vector(wt(nm.embd_norm), c.dim, &w.embd_norm));
  RAZOR_RETURN_IF_ERROR(b.Vector(bs(nm.embd_norm), c.dim, &w.embd_norm_b));
  RAZOR_RETURN_IF_ERROR(b.Vector(wt(nm.out_norm), c.dim, &w.output_norm));
  RAZOR_RETURN_IF_ERROR(b.Vector(bs(nm.out_norm), c.dim, &w.output_norm_b));
  RAZOR_RETURN_IF_ERROR(BindOutput(find, b, nm.output, c, &w));
  w.layers.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights& L = w.layers[l];
    const std::string p = fmt::format(fmt::runtime(nm.layer), l);
    auto W = [&](const char* role) { return p + role + ".weight"; };
    auto B = [&](const char* role) { return p + role + ".bias"; };
    RAZOR_RETURN_IF_ERROR(b.Vector(W(nm.attn_norm), c.dim, &L.attn_norm));
    RAZOR_RETURN_IF_ERROR(b.Vector(B(nm.attn_norm), c.dim, &L.attn_norm_b));
    RAZOR_RETURN_IF_ERROR(b.Matrix(W(nm.qkv), c.dim, 3 * c.q_dim(), &L.wqkv));
    RAZOR_RETURN_IF_ERROR(b.Vector(B(nm.qkv), 3 * c.q_dim(), &L.bqkv));
    RAZOR_RETURN_IF_ERROR(b.Matrix(W(nm.wo), c.q_dim(), c.dim, &L.wo));
    RAZOR_RETURN_IF_ERROR(b.Vector(B(nm.wo), c.dim, &L.bo));
    RAZOR_RETURN_IF_ERROR(b.Vector(W(nm.ffn_norm), c.dim, &L.ffn_norm));
    RAZOR_RETURN_IF_ERROR(b.Vector(B(nm.ffn_norm), c.dim, &L.ffn_norm_b));
    RAZOR_RETURN_IF_ERROR(b.Matrix(W(nm.up), c.dim, c.ffn_dim, &L.w_up));
    RAZOR_RETURN_IF_ERROR(b.Vector(B(nm.up), c.ffn_dim, &L.b_up));
    RAZOR_RETURN_IF_ERROR(b.Matrix(W(nm.down), c.ffn_dim, c.dim, &L.w_down));
    RAZOR_RETURN_IF_ERROR(b.Vector(B(nm.down), c.dim, &L.b_down));
  }
  return w;
}

}  // namespace

Result<ModelWeights> LoadWeightsFromGguf(std::shared_ptr<GgufFile> gguf, const ModelConfig& c) {
  FindFn find = [&](const std::string& name) { return gguf->FindTensor(name); };
  if (c.arch == Architecture::kBloom) {
    RAZOR_ASSIGN_OR_RETURN(ModelWeights w, BindBloom(find, gguf->path(), kBloomGgufNames, c));
    w.keep_alive = gguf;
    return w;
  }
  NameScheme names{"token_embd.weight", "output_norm.weight", "output.weight", GgufLayerName};
  RAZOR_ASSIGN_OR_RETURN(ModelWeights w, Bind(find, gguf->path(), names, c));
  // Llama-3 frequency scaling is stored by llama.cpp as per-pair divisors of the RoPE frequencies.
  if (gguf->FindTensor("rope_freqs.weight") != nullptr) {
    TensorBinder b(find, gguf->path(), &w);
    RAZOR_RETURN_IF_ERROR(b.Vector("rope_freqs.weight", c.head_dim / 2, &w.rope_freq_factors));
  }
  w.keep_alive = gguf;
  return w;
}

Result<ModelWeights> LoadWeightsFromSafetensors(std::shared_ptr<SafetensorsCheckpoint> ckpt, const ModelConfig& c,
                                                const std::string& dir) {
  FindFn find = [&](const std::string& name) { return ckpt->FindTensor(name); };
  if (c.arch == Architecture::kBloom) {
    RAZOR_ASSIGN_OR_RETURN(ModelWeights w, BindBloom(find, dir, kBloomHfNames, c));
    w.keep_alive = ckpt;
    return w;
  }
  NameScheme names{"model.embed_tokens.weight", "model.norm.weight", "lm_head.weight", HfLayerName};
  RAZOR_ASSIGN_OR_RETURN(ModelWeights w, Bind(find, dir, names, c));
  w.keep_alive = ckpt;
  return w;
}

std::vector<const TensorView*> WeightMatrices(const ModelWeights& w) {
  std::vector<const TensorView*> out;
  auto add = [&](const TensorView& t) {
    if (t.shape.empty()) return;  // unset (e.g. w_gate of a GELU MLP)
    for (const TensorView* o : out)
      // Tied: the same bytes, or (synthetic weights, no bytes) the same tensor name.
      if (o == &t || (t.data != nullptr && o->data == t.data) || (t.data == nullptr && o->name == t.name)) return;
    out.push_back(&t);
  };
  add(w.token_embd);
  add(w.output);
  for (const LayerWeights& l : w.layers)
    for (const TensorView* t : {&l.wq, &l.wk, &l.wv, &l.wo, &l.wqkv, &l.w_gate, &l.w_up, &l.w_down}) add(*t);
  return out;
}

}  // namespace razor
