#include "model/transformer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "kv/kv_pool_memory.h"
#include "ops/cpu_backend.h"

namespace razor {
namespace {

// The pool memories of a chunk's sequences between BeginStores and EndStores (each once; usually one pool).
class KvStoreBatch {
 public:
  template <typename Batch, typename Pieces>
  KvStoreBatch(const Batch& batch, const Pieces& pieces) {
    for (const auto& p : pieces) {
      KvPoolMemory* m = batch[p.seq].cache->pool_memory();
      if (m != nullptr && std::find(memories_.begin(), memories_.end(), m) == memories_.end()) {
        m->BeginStores();
        memories_.push_back(m);
      }
    }
  }
  ~KvStoreBatch() {
    for (KvPoolMemory* m : memories_) m->EndStores();
  }
  KvStoreBatch(const KvStoreBatch&) = delete;
  KvStoreBatch& operator=(const KvStoreBatch&) = delete;

 private:
  std::vector<KvPoolMemory*> memories_;
};

}  // namespace

Transformer::Transformer(const ModelConfig& config, const ModelWeights& weights, Backend& backend)
    : config_(config),
      weights_(weights),
      backend_(&backend),
      rope_(config.rope(), weights.rope_freq_factors),
      rope_local_(config.rope_local(), weights.rope_freq_factors) {
  chunk_tokens_ = backend.preferred_chunk_tokens();
  if (config.alibi) alibi_slopes_ = AlibiSlopes(config.n_heads);
  if (config.fused_qkv)
    for (int part = 0; part < 3; ++part)
      for (int h = 0; h < config.n_heads; ++h) qkv_cols_[part].push_back(config.fused_qkv_row(part, h));
}

Transformer::Transformer(const ModelConfig& config, const ModelWeights& weights, ThreadPool& pool, MathMode mode)
    : Transformer(config, weights, *new CpuBackend(pool, mode)) {
  owned_backend_.reset(backend_);  // the delegated constructor borrowed it; this one owns it
}

Transformer::~Transformer() = default;

void Transformer::Reserve(int64_t m) {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  be.Reserve(&xn_, m * c.dim);
  be.Reserve(&q_, m * c.q_dim());
  be.Reserve(&k_, m * c.kv_dim());
  be.Reserve(&v_, m * c.kv_dim());
  be.Reserve(&attn_, m * c.q_dim());
  be.Reserve(&proj_, m * c.dim);
  if (!c.gelu_mlp) be.Reserve(&gate_, m * c.ffn_dim);  // SwiGLU and GeGLU
  be.Reserve(&up_, m * c.ffn_dim);
  if (c.fused_qkv) be.Reserve(&qkv_, m * 3 * c.q_dim());
  if (observer_) lse_.resize(m * c.n_heads);
}

Status Transformer::Validate(const std::vector<StepSequence>& batch, int64_t* rows, int64_t* out_rows) const {
  const ModelConfig& c = config_;
  const Backend& be = *backend_;
  if (batch.empty()) return Err("forward pass over an empty batch");
  if (observer_ && batch.size() != 1) return Err("an attention observer needs a batch of one sequence");
  if (observer_ && be.device() != DeviceKind::kCpu) return Err("an attention observer needs the CPU backend");
  *rows = *out_rows = 0;
  for (size_t s = 0; s < batch.size(); ++s) {
    const StepSequence& q = batch[s];
    if (q.cache == nullptr || q.n <= 0) return Err("forward pass over zero tokens");
    for (size_t o = 0; o < s; ++o)
      if (batch[o].cache == q.cache) return Err("a sequence appears twice in one step");
    const int64_t pos0 = q.cache->sequence_length();
    if (pos0 + q.n > q.cache->capacity())
      return Err(fmt::format("context full: {} tokens exceed the context of {}", pos0 + q.n, q.cache->capacity()));
    for (int64_t t = 0; t < q.n; ++t)
      if (q.tokens[t] < 0 || q.tokens[t] >= c.vocab_size)
        return Err(fmt::format("token id {} out of range [0, {})", q.tokens[t], c.vocab_size));
    *rows += q.n;
    *out_rows += q.all_logits ? q.n : 1;
  }
  return Status::Ok();
}

void Transformer::Prepare(const std::vector<StepSequence>& batch, int64_t rows, RowIndex* index) {
  // The residual stream holds every row; everything else works on chunks of chunk_tokens_ rows, so that
  // activation memory stays bounded however long the prompt (a chunk's queries attend to every key appended
  // so far, which is exactly causal attention over the whole prompt).
  const int64_t kChunk = chunk_tokens_;
  std::vector<int32_t>& positions = index->positions;
  positions.resize(rows);
  tokens_.resize(rows);
  seq_row0_.resize(batch.size());
  for (size_t s = 0, r = 0; s < batch.size(); ++s) {
    seq_row0_[s] = static_cast<int64_t>(r);
    const int64_t pos0 = batch[s].cache->sequence_length();
    for (int64_t t = 0; t < batch[s].n; ++t, ++r) {
      positions[r] = static_cast<int32_t>(pos0 + t);
      tokens_[r] = batch[s].tokens[t];
    }
  }
  if (!config_.alibi) rope_.Angles(positions.data(), rows, &index->cos, &index->sin);
  if (config_.sliding_window > 0) rope_local_.Angles(positions.data(), rows, &index->cos_local, &index->sin_local);
  rows_ = index;
  // Each chunk's pieces (a sequence's rows inside the chunk), the same for every layer.
  chunk_pieces_.clear();
  for (int64_t r0 = 0; r0 < rows; r0 += kChunk) {
    const int64_t r1 = std::min(rows, r0 + kChunk);
    std::vector<Piece> pieces;
    for (size_t s = 0; s < batch.size(); ++s) {
      const int64_t a = std::max(r0, seq_row0_[s]), b = std::min(r1, seq_row0_[s] + batch[s].n);
      if (a < b) pieces.push_back({s, a, b - a, batch[s].cache->sequence_length() + (a - seq_row0_[s])});
    }
    chunk_pieces_.push_back(std::move(pieces));
  }
}

void Transformer::Embed(int64_t rows, float* x_all) {
  const ModelConfig& c = config_;
  backend_->Embed(weights_.token_embd, tokens_.data(), rows, x_all);
  // Gemma: times sqrt(dim), rounded to fp32 first as transformers does (a tensor of the model's dtype).
  if (c.scale_embeddings) backend_->Scale(x_all, static_cast<float>(std::sqrt(static_cast<double>(c.dim))), rows * c.dim);
  if (c.embedding_norm)
    backend_->Norm(x_all, rows, c.dim, weights_.embd_norm, weights_.embd_norm_b, c.layer_norm, c.rms_eps, x_all);
}

Status Transformer::Step(const std::vector<StepSequence>& batch, std::vector<float>* logits) {
  int64_t rows = 0, out_rows = 0;
  RAZOR_RETURN_IF_ERROR(Validate(batch, &rows, &out_rows));
  backend_->Reserve(&x_, rows * config_.dim);
  Reserve(std::min(rows, chunk_tokens_));
  Prepare(batch, rows, &step_index_);
  Embed(rows, x_->data());
  RAZOR_RETURN_IF_ERROR(RunLayers(batch, rows, x_->data(), 0, config_.n_layers));
  for (const StepSequence& s : batch) s.cache->CommitTokens(s.n);
  Logits(batch, out_rows, x_->data(), logits);
  return Status::Ok();
}

Status Transformer::StepSlice(const StepSequence& seq, LayerProgress* progress, int64_t token_layers, bool* finished,
                              std::vector<float>* logits) {
  const ModelConfig& c = config_;
  *finished = false;
  const std::vector<StepSequence> batch = {seq};
  int64_t rows = 0, out_rows = 0;
  RAZOR_RETURN_IF_ERROR(Validate(batch, &rows, &out_rows));
  const bool begun = progress->next_layer > 0 || progress->next_row > 0;
  if (progress->next_layer < 0 || progress->next_layer >= c.n_layers || progress->next_row < 0 ||
      (begun && progress->next_row >= progress->rows))
    return Err(fmt::format("a prompt slice resumed at layer {} row {}", progress->next_layer, progress->next_row));
  if (begun && progress->rows != rows)
    return Err(fmt::format("a sliced prompt resumed with {} tokens, begun with {}", rows, progress->rows));
  Reserve(std::min(rows, chunk_tokens_));
  if (!begun) {
    // Positions and angles are those of the first call (tokens are committed only at the end): made once.
    Prepare(batch, rows, &progress->index);
    backend_->Reserve(&progress->residual, rows * c.dim);
    progress->rows = rows;
    Embed(rows, progress->residual->data());
  } else {
    seq_row0_.assign(1, 0);  // what Prepare sets and the last slice's Logits reads
    rows_ = &progress->index;
  }
  // Whole chunks of the Step grid while the budget allows; the last piece of a budget may be shorter (at
  // least kMinRows rows, so that a small budget still runs GEMMs of some height).
  constexpr int64_t kMinRows = 16;
  int64_t budget = token_layers > 0 ? token_layers : INT64_MAX;
  float* x_all = progress->residual->data();
  const int64_t pos0 = seq.cache->sequence_length();
  while (budget > 0 && progress->next_layer < c.n_layers) {
    const int l = progress->next_layer;
    const int64_t r0 = progress->next_row;
    int64_t m = std::min(chunk_tokens_ - r0 % chunk_tokens_, rows - r0);  // to the end of r0's grid chunk
    if (budget < m) m = std::min(m, std::max(budget, kMinRows));
    RAZOR_RETURN_IF_ERROR(LayerChunk(l, batch, x_all, r0, m, {Piece{0, r0, m, pos0 + r0}}));
    budget -= m;
    progress->next_row += m;
    if (progress->next_row == rows) {
      seq.cache->OnLayerDone(l, seq.n > 1);
      progress->next_row = 0;
      ++progress->next_layer;
    }
  }
  if (progress->next_layer < c.n_layers) return Status::Ok();
  seq.cache->CommitTokens(seq.n);
  Logits(batch, out_rows, x_all, logits);
  *progress = {};
  *finished = true;
  return Status::Ok();
}

Status Transformer::RunLayers(const std::vector<StepSequence>& batch, int64_t rows, float* x_all, int l0, int l1) {
  const int64_t kChunk = chunk_tokens_;
  for (int l = l0; l < l1; ++l) {
    for (size_t ci = 0; ci < chunk_pieces_.size(); ++ci) {
      const int64_t t0 = static_cast<int64_t>(ci) * kChunk;
      RAZOR_RETURN_IF_ERROR(LayerChunk(l, batch, x_all, t0, std::min(kChunk, rows - t0), chunk_pieces_[ci]));
    }
    for (const StepSequence& s : batch) s.cache->OnLayerDone(l, s.n > 1);
  }
  return Status::Ok();
}

Status Transformer::LayerChunk(int l, const std::vector<StepSequence>& batch, float* x_all, int64_t t0, int64_t m,
                               const std::vector<Piece>& pieces) {
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  const int64_t dim = c.dim;
  const int half = c.head_dim / 2;
  float* xn = xn_->data();
  float* q = q_->data();
  float* k = k_->data();
  float* v = v_->data();
  const LayerWeights& L = weights_.layers[l];
  float* x = x_all + t0 * dim;
    if (c.fused_qkv) {
      be.Norm(x, m, dim, L.attn_norm, L.attn_norm_b, c.layer_norm, c.rms_eps, xn);
      // BLOOM: one projection (row layout: ModelConfig::fused_qkv_row); split into q, k, v ([m, heads * hd]).
      const int64_t w3 = 3 * static_cast<int64_t>(c.q_dim());
      be.MatMul(L.wqkv, xn, m, qkv_->data());
      be.AddBias(qkv_->data(), L.bqkv, m, w3);
      float* dst[3] = {q, k, v};
      for (int part = 0; part < 3; ++part)
        be.GatherColumns(qkv_->data(), w3, m, qkv_cols_[part].data(), c.n_heads, c.head_dim, dst[part],
                         part == 0 ? c.q_dim() : c.kv_dim());
    } else {
      const TensorView* w[3] = {&L.wq, &L.wk, &L.wv};
      float* y[3] = {q, k, v};
      be.NormMatMuls(x, m, dim, L.attn_norm, L.attn_norm_b, c.layer_norm, c.rms_eps, xn, w, 3, y);
    }
    if (c.qkv_bias) {
      be.AddBias(q, L.bq, m, c.q_dim());
      be.AddBias(k, L.bk, m, c.kv_dim());
      be.AddBias(v, L.bv, m, c.kv_dim());
    }
    if (c.qk_norm) {
      be.HeadNorm(q, m, c.n_heads, c.head_dim, L.q_norm, c.rms_eps);
      be.HeadNorm(k, m, c.n_kv_heads, c.head_dim, L.k_norm, c.rms_eps);
    }
    if (!c.alibi) {  // ALiBi: positions enter as biases in the attention kernel
      const bool local = c.is_local_layer(l);
      const float* cos = &(local ? rows_->cos_local : rows_->cos)[t0 * half];
      const float* sin = &(local ? rows_->sin_local : rows_->sin)[t0 * half];
      be.Rope(q, m, c.q_dim(), c.n_heads, c.head_dim, c.rope_layout, cos, sin);
      be.Rope(k, m, c.kv_dim(), c.n_kv_heads, c.head_dim, c.rope_layout, cos, sin);
    }
    {
      // One store for every sequence's new rows where the pool's memory joins them (a device: one kernel).
      const KvStoreBatch stores(batch, pieces);
      for (const Piece& p : pieces) {
        const int64_t off = (p.row0 - t0) * c.kv_dim();
        RAZOR_RETURN_IF_ERROR(batch[p.seq].cache->Append(l, p.pos0, p.n, k + off, v + off));
      }
    }
    Attention(l, batch, pieces, t0);
    if (observer_) observer_->OnAttention(l, q, &rows_->positions[t0], m, lse_.data(), *batch[0].cache);
    if (c.dense_bias) {
      be.MatMul(L.wo, attn_->data(), m, proj_->data());
      be.AddBias(proj_->data(), L.bo, m, dim);
      be.Add(x, proj_->data(), m * dim);
    } else if (c.post_norms) {  // x += norm(attn · woᵀ)
      be.MatMul(L.wo, attn_->data(), m, proj_->data());
      be.Norm(proj_->data(), m, dim, L.post_attn_norm, {}, false, c.rms_eps, proj_->data());
      be.Add(x, proj_->data(), m * dim);
    } else {
      be.MatMulAdd(L.wo, attn_->data(), m, proj_->data(), x);
    }

    if (c.gelu_mlp) {
      be.Norm(x, m, dim, L.ffn_norm, L.ffn_norm_b, c.layer_norm, c.rms_eps, xn);
      be.MatMul(L.w_up, xn, m, up_->data());
      be.AddBias(up_->data(), L.b_up, m, c.ffn_dim);
      be.Gelu(up_->data(), m * c.ffn_dim);
      be.MatMul(L.w_down, up_->data(), m, proj_->data());
      be.AddBias(proj_->data(), L.b_down, m, dim);
      be.Add(x, proj_->data(), m * dim);
    } else if (c.gelu_gated_mlp) {  // x += post_norm(down(gelu_tanh(gate) * up))
      const TensorView* w[2] = {&L.w_gate, &L.w_up};
      float* y[2] = {gate_->data(), up_->data()};
      be.NormMatMuls(x, m, dim, L.ffn_norm, L.ffn_norm_b, c.layer_norm, c.rms_eps, xn, w, 2, y);
      be.GeluMul(gate_->data(), up_->data(), m * c.ffn_dim);
      be.MatMul(L.w_down, gate_->data(), m, proj_->data());
      if (c.post_norms) be.Norm(proj_->data(), m, dim, L.post_ffn_norm, {}, false, c.rms_eps, proj_->data());
      be.Add(x, proj_->data(), m * dim);
    } else {
      // xn is not read after the fused calls (a fused backend leaves it unwritten).
      const TensorView* w[2] = {&L.w_gate, &L.w_up};
      float* y[2] = {gate_->data(), up_->data()};
      be.NormMatMuls(x, m, dim, L.ffn_norm, L.ffn_norm_b, c.layer_norm, c.rms_eps, xn, w, 2, y);
      be.SiluMulMatMulAdd(gate_->data(), up_->data(), L.w_down, m, proj_->data(), x);
    }
  return Status::Ok();
}

void Transformer::Logits(const std::vector<StepSequence>& batch, int64_t out_rows, const float* x_all,
                         std::vector<float>* logits) {
  // Logits of the rows asked for, gathered in batch order.
  const ModelConfig& c = config_;
  Backend& be = *backend_;
  const int64_t dim = c.dim;
  be.Reserve(&xn_, out_rows * dim);
  float* xn = xn_->data();
  int64_t o = 0;
  for (size_t s = 0; s < batch.size(); ++s) {
    const int64_t first = batch[s].all_logits ? seq_row0_[s] : seq_row0_[s] + batch[s].n - 1;
    const int64_t n = seq_row0_[s] + batch[s].n - first;
    be.Norm(x_all + first * dim, n, dim, weights_.output_norm, weights_.output_norm_b, c.layer_norm, c.rms_eps,
            xn + o * dim);
    o += n;
  }
  be.Reserve(&logits_, out_rows * c.vocab_size);
  be.MatMul(weights_.output, xn, out_rows, logits_->data());
  logits->resize(out_rows * c.vocab_size);
  be.ToHost(logits_->data(), out_rows * c.vocab_size, logits->data());
}

void Transformer::Attention(int layer, const std::vector<StepSequence>& batch, const std::vector<Piece>& pieces,
                            int64_t chunk_row0) {
  const ModelConfig& c = config_;
  const float scale = c.query_scale();
  const int32_t window = c.is_local_layer(layer) ? c.sliding_window : 0;
  // Work items are (sequence piece, tile of up to kAttnTileTokens query tokens, KV head). A tile lets the
  // kernel read each K/V row once for all of its tokens and the group's query heads.
  constexpr int64_t kTile = kAttnTileTokens;
  items_.clear();
  for (const Piece& p : pieces) {
    const KvCache& cache = *batch[p.seq].cache;
    for (int64_t t = p.row0 - chunk_row0; t < p.row0 - chunk_row0 + p.n; t += kTile) {
      const int64_t nt = std::min(kTile, p.row0 - chunk_row0 + p.n - t);
      for (int h = 0; h < c.n_kv_heads; ++h) {
        AttentionItem it;
        it.kv = cache.View(layer, h);
        AttentionQuery& a = it.q;
        const int64_t head_offset = static_cast<int64_t>(h) * c.group_size() * c.head_dim;
        a.q = q_->data() + t * c.q_dim() + head_offset;
        a.q_token_stride = c.q_dim();
        a.positions = &rows_->positions[chunk_row0 + t];
        a.n_tokens = nt;
        a.n_group_heads = c.group_size();
        a.head_dim = c.head_dim;
        a.scale = scale;
        a.out = attn_->data() + t * c.q_dim() + head_offset;
        a.out_token_stride = c.q_dim();
        if (c.alibi) a.alibi_slopes = &alibi_slopes_[static_cast<size_t>(h) * c.group_size()];
        a.window = window;
        if (observer_) {
          a.lse = &lse_[t * c.n_heads + static_cast<int64_t>(h) * c.group_size()];
          a.lse_token_stride = c.n_heads;
        }
        items_.push_back(it);
      }
    }
  }
  backend_->Attend(items_);
}

}  // namespace razor
