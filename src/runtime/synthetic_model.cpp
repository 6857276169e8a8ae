#include "runtime/synthetic_model.h"

#include <fmt/format.h>

#include <random>

#include "runtime/head_profiler.h"

namespace razor {
namespace {

ModelConfig ShapeConfig(std::string_view shape) {
  ModelConfig c;
  c.name = std::string(shape);
  if (shape == "llama-3.1-8b") {
    c.n_layers = 32, c.dim = 4096, c.n_heads = 32, c.n_kv_heads = 8, c.head_dim = 128, c.ffn_dim = 14336;
    c.vocab_size = 128256, c.context_length = 131072, c.rms_eps = 1e-5f, c.rope_theta = 500000.0;
    c.rope_scaling.kind = RopeScaling::Kind::kLlama3;
    c.rope_scaling.factor = 8.0, c.rope_scaling.low_freq_factor = 1.0, c.rope_scaling.high_freq_factor = 4.0;
    c.rope_scaling.original_max_positions = 8192;
  } else if (shape == "qwen2.5-7b") {
    c.n_layers = 28, c.dim = 3584, c.n_heads = 28, c.n_kv_heads = 4, c.head_dim = 128, c.ffn_dim = 18944;
    c.vocab_size = 152064, c.context_length = 131072, c.rms_eps = 1e-6f, c.rope_theta = 1000000.0;
    c.qkv_bias = true;
  } else if (shape == "smollm2-135m") {
    c.n_layers = 30, c.dim = 576, c.n_heads = 9, c.n_kv_heads = 3, c.head_dim = 64, c.ffn_dim = 1536;
    c.vocab_size = 49152, c.context_length = 8192, c.rms_eps = 1e-5f, c.rope_theta = 100000.0;
    c.tied_embeddings = true;
  }
  c.rope_dim = c.head_dim;
  c.rope_layout = RopeLayout::kHalfSplit;  // Hugging Face layout
  return c;
}

// A bf16 matrix [rows, cols] with no host data (the device fills it).
TensorView Synthetic(std::string name, int64_t rows, int64_t cols) {
  TensorView t;
  t.name = std::move(name);
  t.type = TensorType::BF16;
  t.shape = {cols, rows};
  t.nbytes = static_cast<size_t>(rows * cols) * 2;
  return t;
}

}  // namespace

std::vector<std::string> SyntheticShapeNames() { return {"llama-3.1-8b", "qwen2.5-7b", "smollm2-135m"}; }

Result<std::shared_ptr<LoadedModel>> MakeSyntheticModel(std::string_view shape) {
  const ModelConfig c = ShapeConfig(shape);
  if (c.n_layers == 0)
    return Err(fmt::format("unknown synthetic shape '{}' (known: {})", shape, fmt::join(SyntheticShapeNames(), ", ")));
  RAZOR_RETURN_IF_ERROR(c.Validate());
  auto m = std::make_shared<LoadedModel>();
  m->path = fmt::format("synthetic:{}", shape);
  m->format = "synthetic";
  m->config = c;
  ModelWeights& w = m->weights;
  w.token_embd = Synthetic("token_embd.weight", c.vocab_size, c.dim);
  w.output = c.tied_embeddings ? w.token_embd : Synthetic("output.weight", c.vocab_size, c.dim);
  w.output_norm.assign(c.dim, 1.0f);
  w.layers.resize(c.n_layers);
  for (int l = 0; l < c.n_layers; ++l) {
    LayerWeights& L = w.layers[l];
    const std::string p = fmt::format("blk.{}.", l);
    L.attn_norm.assign(c.dim, 1.0f);
    L.ffn_norm.assign(c.dim, 1.0f);
    L.wq = Synthetic(p + "attn_q.weight", c.q_dim(), c.dim);
    L.wk = Synthetic(p + "attn_k.weight", c.kv_dim(), c.dim);
    L.wv = Synthetic(p + "attn_v.weight", c.kv_dim(), c.dim);
    L.wo = Synthetic(p + "attn_output.weight", c.dim, c.q_dim());
    L.w_gate = Synthetic(p + "ffn_gate.weight", c.ffn_dim, c.dim);
    L.w_up = Synthetic(p + "ffn_up.weight", c.ffn_dim, c.dim);
    L.w_down = Synthetic(p + "ffn_down.weight", c.dim, c.ffn_dim);
    if (c.qkv_bias) {
      L.bq.assign(c.q_dim(), 0.0f);
      L.bk.assign(c.kv_dim(), 0.0f);
      L.bv.assign(c.kv_dim(), 0.0f);
    }
  }
  for (const TensorView* t : WeightMatrices(w)) {
    w.parameter_count += t->elements();
    w.stored_bytes += t->nbytes;
  }
  return m;
}

Result<HeadProfile> MakeSyntheticProfile(const LoadedModel& model, double fraction, uint64_t seed) {
  if (!(fraction >= 0.0 && fraction <= 1.0))
    return Err(fmt::format("synthetic profile fraction {} (expected 0 to 1)", fraction));
  const ModelConfig& c = model.config;
  HeadProfile p;
  p.model = ModelIdentityOf(model);
  p.params.induction_ratio = fraction;
  p.params.echo_ratio = 0.0;
  p.params.seed = seed;
  p.params.block = 0;
  p.params.repeats = 0;
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> u(0.0f, 1.0f);
  p.q_induction.resize(static_cast<size_t>(c.n_layers) * c.n_heads);
  for (float& s : p.q_induction) s = u(rng);
  p.q_echo.assign(p.q_induction.size(), 0.0f);
  p.SelectRetrievalHeads();  // the top ceil(fraction * total) by the random scores
  return p;
}

}  // namespace razor
