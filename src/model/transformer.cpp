#include "model/transformer.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "ops/attention.h"
#include "ops/dequantize.h"
#include "ops/elementwise.h"

namespace razor {

Transformer::Transformer(const ModelConfig& config, const ModelWeights& weights, ThreadPool& pool, MathMode mode)
    : config_(config), weights_(weights), pool_(pool), mode_(mode), rope_(config.rope(), weights.rope_freq_factors) {
  if (config.alibi) alibi_slopes_ = AlibiSlopes(config.n_heads);
}

void Transformer::Norm(const float* x, int64_t m, const std::vector<float>& gain, const std::vector<float>& bias,
                       float* out) const {
  const int64_t dim = config_.dim;
  for (int64_t t = 0; t < m; ++t) {
    if (config_.layer_norm) LayerNorm(&x[t * dim], gain.data(), bias.data(), dim, config_.rms_eps, &out[t * dim]);
    else RmsNorm(&x[t * dim], gain.data(), dim, config_.rms_eps, &out[t * dim]);
  }
}

Status Transformer::Forward(const int32_t* tokens, int64_t n, KvCache& cache, bool all_logits,
                            std::vector<float>* logits) {
  const ModelConfig& c = config_;
  if (n <= 0) return Err("forward pass over zero tokens");
  const int64_t pos0 = cache.sequence_length();
  if (pos0 + n > cache.capacity())
    return Err(fmt::format("context full: {} tokens exceed the context of {}", pos0 + n, cache.capacity()));
  for (int64_t t = 0; t < n; ++t)
    if (tokens[t] < 0 || tokens[t] >= c.vocab_size)
      return Err(fmt::format("token id {} out of range [0, {})", tokens[t], c.vocab_size));

  // The residual stream holds every token; everything else works on chunks of kChunk tokens, so that
  // activation memory stays bounded however long the prompt (a chunk's queries attend to every key
  // appended so far, which is exactly causal attention over the whole prompt).
  const int64_t kChunk = chunk_tokens_;
  const int64_t dim = c.dim;
  const int64_t cn = std::min(n, kChunk);
  x_.resize(n * dim);
  xn_.resize(cn * dim);
  q_.resize(cn * c.q_dim());
  k_.resize(cn * c.kv_dim());
  v_.resize(cn * c.kv_dim());
  attn_.resize(cn * c.q_dim());
  proj_.resize(cn * dim);
  if (!c.gelu_mlp) gate_.resize(cn * c.ffn_dim);
  if (c.fused_qkv) qkv_.resize(cn * 3 * c.q_dim());
  up_.resize(cn * c.ffn_dim);
  positions_.resize(n);
  if (observer_) lse_.resize(cn * c.n_heads);
  for (int64_t t = 0; t < n; ++t) positions_[t] = static_cast<int32_t>(pos0 + t);
  rope_.Angles(positions_.data(), n, &cos_, &sin_);

  pool_.ParallelFor(n, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t)
      DequantizeRow(weights_.token_embd.type, weights_.token_embd.row(tokens[t]), &x_[t * dim], dim);
  });
  if (c.embedding_norm) Norm(x_.data(), n, weights_.embd_norm, weights_.embd_norm_b, x_.data());

  const int half = c.head_dim / 2;
  for (int l = 0; l < c.n_layers; ++l) {
    const LayerWeights& L = weights_.layers[l];
    for (int64_t t0 = 0; t0 < n; t0 += kChunk) {
      const int64_t m = std::min(kChunk, n - t0);
      float* x = &x_[t0 * dim];
      Norm(x, m, L.attn_norm, L.attn_norm_b, xn_.data());
      if (c.fused_qkv) {
        // BLOOM: one projection (row layout: ModelConfig::fused_qkv_row); split into q_, k_, v_ ([m, heads * hd]).
        const int64_t d = c.head_dim, w3 = 3 * static_cast<int64_t>(c.q_dim());
        MatMul(mode_, L.wqkv, xn_.data(), m, qkv_.data(), pool_);
        for (int64_t t = 0; t < m; ++t) {
          float* row = &qkv_[t * w3];
          AddInPlace(row, L.bqkv.data(), w3);
          for (int h = 0; h < c.n_heads; ++h) {
            std::copy_n(row + c.fused_qkv_row(0, h), d, &q_[t * c.q_dim() + h * d]);
            std::copy_n(row + c.fused_qkv_row(1, h), d, &k_[t * c.kv_dim() + h * d]);
            std::copy_n(row + c.fused_qkv_row(2, h), d, &v_[t * c.kv_dim() + h * d]);
          }
        }
      } else {
        MatMul(mode_, L.wq, xn_.data(), m, q_.data(), pool_);
        MatMul(mode_, L.wk, xn_.data(), m, k_.data(), pool_);
        MatMul(mode_, L.wv, xn_.data(), m, v_.data(), pool_);
      }
      for (int64_t t = 0; t < m; ++t) {
        float* q = &q_[t * c.q_dim()];
        float* k = &k_[t * c.kv_dim()];
        if (c.qkv_bias) {
          AddInPlace(q, L.bq.data(), c.q_dim());
          AddInPlace(k, L.bk.data(), c.kv_dim());
          AddInPlace(&v_[t * c.kv_dim()], L.bv.data(), c.kv_dim());
        }
        if (c.qk_norm) {
          for (int h = 0; h < c.n_heads; ++h)
            RmsNorm(q + h * c.head_dim, L.q_norm.data(), c.head_dim, c.rms_eps, q + h * c.head_dim);
          for (int h = 0; h < c.n_kv_heads; ++h)
            RmsNorm(k + h * c.head_dim, L.k_norm.data(), c.head_dim, c.rms_eps, k + h * c.head_dim);
        }
        if (c.alibi) continue;  // positions enter as ALiBi biases in the attention kernel
        const int64_t tt = t0 + t;
        ApplyRope(q, c.n_heads, c.head_dim, c.rope_layout, &cos_[tt * half], &sin_[tt * half]);
        ApplyRope(k, c.n_kv_heads, c.head_dim, c.rope_layout, &cos_[tt * half], &sin_[tt * half]);
      }
      RAZOR_RETURN_IF_ERROR(cache.Append(l, pos0 + t0, m, k_.data(), v_.data()));
      Attention(l, &positions_[t0], m, cache);
      if (observer_) observer_->OnAttention(l, q_.data(), &positions_[t0], m, lse_.data(), cache);
      MatMul(mode_, L.wo, attn_.data(), m, proj_.data(), pool_);
      if (c.dense_bias)
        for (int64_t t = 0; t < m; ++t) AddInPlace(&proj_[t * dim], L.bo.data(), dim);
      AddInPlace(x, proj_.data(), m * dim);

      Norm(x, m, L.ffn_norm, L.ffn_norm_b, xn_.data());
      if (c.gelu_mlp) {
        MatMul(mode_, L.w_up, xn_.data(), m, up_.data(), pool_);
        for (int64_t t = 0; t < m; ++t) AddInPlace(&up_[t * c.ffn_dim], L.b_up.data(), c.ffn_dim);
        GeluTanhInPlace(up_.data(), m * c.ffn_dim);
        MatMul(mode_, L.w_down, up_.data(), m, proj_.data(), pool_);
        for (int64_t t = 0; t < m; ++t) AddInPlace(&proj_[t * dim], L.b_down.data(), dim);
      } else {
        MatMul(mode_, L.w_gate, xn_.data(), m, gate_.data(), pool_);
        MatMul(mode_, L.w_up, xn_.data(), m, up_.data(), pool_);
        SiluMul(gate_.data(), up_.data(), m * c.ffn_dim, gate_.data());
        MatMul(mode_, L.w_down, gate_.data(), m, proj_.data(), pool_);
      }
      AddInPlace(x, proj_.data(), m * dim);
    }
    cache.OnLayerDone(l, n > 1);
  }
  cache.CommitTokens(n);

  const int64_t first = all_logits ? 0 : n - 1;
  const int64_t rows = n - first;
  xn_.resize(rows * dim);
  Norm(&x_[first * dim], rows, weights_.output_norm, weights_.output_norm_b, xn_.data());
  logits->resize(rows * c.vocab_size);
  MatMul(mode_, weights_.output, xn_.data(), rows, logits->data(), pool_);
  return Status::Ok();
}

void Transformer::Attention(int layer, const int32_t* positions, int64_t n, const KvCache& cache) {
  const ModelConfig& c = config_;
  const float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
  // Work items are (tile of up to kAttnTileTokens query tokens, KV head); threads take them round-robin
  // (later tokens see more keys, so striding balances the work). A tile lets the kernel read each K/V row
  // once for all of its tokens and the group's query heads.
  constexpr int64_t kTile = kAttnTileTokens;
  const int64_t tiles = (n + kTile - 1) / kTile;
  const int64_t items = tiles * c.n_kv_heads;
  pool_.RunOnAll([&](int ti, int nt) {
    for (int64_t item = ti; item < items; item += nt) {
      const int64_t t = (item / c.n_kv_heads) * kTile;
      const int h = static_cast<int>(item % c.n_kv_heads);
      const KvHeadView view = cache.View(layer, h);
      AttentionQuery a;
      const int64_t head_offset = static_cast<int64_t>(h) * c.group_size() * c.head_dim;
      a.q = &q_[t * c.q_dim() + head_offset];
      a.q_token_stride = c.q_dim();
      a.positions = &positions[t];
      a.n_tokens = std::min(kTile, n - t);
      a.n_group_heads = c.group_size();
      a.head_dim = c.head_dim;
      a.scale = scale;
      a.out = &attn_[t * c.q_dim() + head_offset];
      a.out_token_stride = c.q_dim();
      if (c.alibi) a.alibi_slopes = &alibi_slopes_[static_cast<size_t>(h) * c.group_size()];
      if (observer_) {
        a.lse = &lse_[t * c.n_heads + static_cast<int64_t>(h) * c.group_size()];
        a.lse_token_stride = c.n_heads;
      }
      if (mode_ == MathMode::kExact) AttendReference(view, a);
      else AttendFlash(view, a);
    }
  });
}

}  // namespace razor
