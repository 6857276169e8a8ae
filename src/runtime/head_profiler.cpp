#include "runtime/head_profiler.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

#include "io/gguf.h"
#include "kv/full_kv_cache.h"

namespace razor {
namespace {

// splitmix64: a tiny generator whose output is the same on every platform and standard library
// (std::uniform_int_distribution is not), so a seed names one token block everywhere.
class SplitMix64 {
 public:
  explicit SplitMix64(uint64_t seed) : state_(seed) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n) by rejection (no modulo bias).
  uint64_t Below(uint64_t n) {
    const uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = Next();
    while (x >= limit);
    return x % n;
  }

 private:
  uint64_t state_;
};

float Dot(const float* a, const float* b, int n) {
  float s = 0.0f;
  for (int i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Row of the key at absolute position `pos` in a view, or null when the head does not hold it.
const float* KeyAtPosition(const KvHeadView& v, int64_t pos, int head_dim) {
  if (v.positions == nullptr) return pos < v.len ? v.key(pos, head_dim) : nullptr;
  const int32_t* end = v.positions + v.len;
  const int32_t* it = std::lower_bound(v.positions, end, static_cast<int32_t>(pos));
  return it != end && *it == pos ? v.key(it - v.positions, head_dim) : nullptr;
}

}  // namespace

ModelIdentity ModelIdentityOf(const ModelConfig& c, const ModelWeights& w) {
  ModelIdentity id;
  id.architecture = ArchitectureName(c.arch);
  id.name = c.name;
  id.n_layers = c.n_layers;
  id.n_heads = c.n_heads;
  id.n_kv_heads = c.n_kv_heads;
  id.head_dim = c.head_dim;
  std::vector<const TensorView*> tensors = {&w.token_embd, &w.output};
  for (const LayerWeights& L : w.layers)
    for (const TensorView* t : {&L.wq, &L.wk, &L.wv, &L.wo, &L.w_gate, &L.w_up, &L.w_down}) tensors.push_back(t);
  if (c.fused_qkv)  // BLOOM: the fused projection is the only Q/K/V tensor (llama fingerprints unchanged)
    for (const LayerWeights& L : w.layers) tensors.push_back(&L.wqkv);
  id.fingerprint = TensorTableFingerprint(tensors);
  return id;
}

ModelIdentity ModelIdentityOf(const LoadedModel& m) { return ModelIdentityOf(m.config, m.weights); }

HeadScoreObserver::HeadScoreObserver(int n_layers, int n_heads, int n_kv_heads, int head_dim, int64_t block,
                                     ThreadPool* pool)
    : n_layers_(n_layers), n_heads_(n_heads), n_kv_heads_(n_kv_heads), head_dim_(head_dim), block_(block),
      pool_(pool), sum_induction_(static_cast<size_t>(n_layers) * n_heads, 0.0),
      sum_echo_(static_cast<size_t>(n_layers) * n_heads, 0.0), counts_(n_layers, 0) {}

void HeadScoreObserver::OnAttention(int layer, const float* q, const int32_t* positions, int64_t n, const float* lse,
                                    const KvCache& cache) {
  const int group = n_heads_ / n_kv_heads_;
  const int d = head_dim_;
  const float scale = this->scale > 0 ? this->scale : 1.0f / std::sqrt(static_cast<float>(d));
  const int64_t window = layer < static_cast<int>(windows.size()) ? windows[layer] : 0;
  const int64_t first_scored = 1 + block_;  // first position of the second copy
  std::vector<KvHeadView> views(n_kv_heads_);
  for (int g = 0; g < n_kv_heads_; ++g) views[g] = cache.View(layer, g);
  tok_induction_.assign(static_cast<size_t>(n) * n_heads_, 0.0f);
  tok_echo_.assign(static_cast<size_t>(n) * n_heads_, 0.0f);

  // Per (token, query head): only the few keys at earlier copies (j) and after them (j + 1); P = exp(s - lse).
  auto score_tokens = [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t i = positions[t];
      if (i < first_scored) continue;
      for (int h = 0; h < n_heads_; ++h) {
        const KvHeadView& v = views[h / group];
        const float* qh = q + (t * n_heads_ + h) * d;
        const float norm = lse[t * n_heads_ + h];
        // ALiBi: the kernel's score of a key at position pk also had - slope * (i - pk).
        const float slope = alibi_slopes.empty() ? 0.0f : alibi_slopes[h];
        float ind = 0.0f, echo = 0.0f;
        for (int64_t j = i - block_; j >= 1 && (window == 0 || j > i - window); j -= block_) {
          if (const float* k = KeyAtPosition(v, j + 1, d))
            ind += std::exp(Dot(qh, k, d) * scale - slope * static_cast<float>(i - (j + 1)) - norm);
          if (const float* k = KeyAtPosition(v, j, d))
            echo += std::exp(Dot(qh, k, d) * scale - slope * static_cast<float>(i - j) - norm);
        }
        tok_induction_[t * n_heads_ + h] = ind;
        tok_echo_[t * n_heads_ + h] = echo;
      }
    }
  };
  if (pool_ != nullptr) pool_->ParallelFor(n, score_tokens);
  else score_tokens(0, n);

  // Summed in token order, so the result does not depend on the thread count.
  double* si = &sum_induction_[static_cast<size_t>(layer) * n_heads_];
  double* se = &sum_echo_[static_cast<size_t>(layer) * n_heads_];
  for (int64_t t = 0; t < n; ++t) {
    if (positions[t] < first_scored) continue;
    ++counts_[layer];
    for (int h = 0; h < n_heads_; ++h) {
      si[h] += tok_induction_[t * n_heads_ + h];
      se[h] += tok_echo_[t * n_heads_ + h];
    }
  }
  if (on_layer) on_layer(layer);
}

std::vector<float> HeadScoreObserver::MeanInduction() const {
  std::vector<float> out(sum_induction_.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const int64_t c = counts_[i / n_heads_];
    out[i] = c > 0 ? static_cast<float>(sum_induction_[i] / c) : 0.0f;
  }
  return out;
}

std::vector<float> HeadScoreObserver::MeanEcho() const {
  std::vector<float> out(sum_echo_.size());
  for (size_t i = 0; i < out.size(); ++i) {
    const int64_t c = counts_[i / n_heads_];
    out[i] = c > 0 ? static_cast<float>(sum_echo_[i] / c) : 0.0f;
  }
  return out;
}

Result<std::vector<int32_t>> MakeProfilePrompt(const ModelConfig& c, const Tokenizer* tokenizer, int32_t gguf_bos_id,
                                               const HeadProfilerOptions& o, HeadProfileParams* params) {
  const int32_t vocab = c.vocab_size;
  HeadProfileParams p;
  p.induction_ratio = o.induction_ratio;
  p.echo_ratio = o.echo_ratio;
  p.repeats = o.repeats;
  p.seed = o.seed;
  if (!(o.induction_ratio >= 0 && o.induction_ratio <= 1) || !(o.echo_ratio >= 0 && o.echo_ratio <= 1))
    return Err(fmt::format("head ratios must lie in [0, 1] (induction {}, echo {})", o.induction_ratio, o.echo_ratio));
  if (o.repeats < 2) return Err(fmt::format("repeats must be at least 2 (got {}): scores come from copies 2..R", o.repeats));
  if (o.block < 1) return Err(fmt::format("block must be at least 1 token (got {})", o.block));
  const int64_t context = o.context > 0 ? o.context : c.context_length;
  p.block = std::min<int64_t>(o.block, (context - 1) / o.repeats);
  if (p.block < 1)
    return Err(fmt::format("a context of {} tokens cannot hold BOS + {} copies of a block", context, o.repeats));

  p.token_lo = o.token_lo >= 0 ? o.token_lo : vocab / 4;
  p.token_hi = o.token_hi >= 0 ? o.token_hi : vocab / 2;
  if (p.token_lo >= p.token_hi || p.token_hi > vocab)
    return Err(fmt::format("token range [{}, {}) is empty or outside the vocabulary of {}", p.token_lo, p.token_hi, vocab));

  if (o.bos_id >= 0) p.bos_id = o.bos_id;
  else if (tokenizer != nullptr && tokenizer->bos_id() >= 0) p.bos_id = tokenizer->bos_id();
  else if (gguf_bos_id >= 0) p.bos_id = gguf_bos_id;
  else p.bos_id = 1;
  if (p.bos_id >= vocab) return Err(fmt::format("BOS id {} is outside the vocabulary of {}", p.bos_id, vocab));

  // Ordinary ids only: a control token in the block would make the model treat it as a document boundary.
  std::vector<int32_t> ids;
  ids.reserve(p.token_hi - p.token_lo);
  for (int32_t id = p.token_lo; id < p.token_hi; ++id) {
    if (id == p.bos_id) continue;
    if (tokenizer != nullptr && id < tokenizer->vocab_size() && tokenizer->IsSpecial(id)) continue;
    ids.push_back(id);
  }
  if (ids.empty())
    return Err(fmt::format("token range [{}, {}) holds no ordinary (non-special) token", p.token_lo, p.token_hi));

  SplitMix64 rng(p.seed);
  std::vector<int32_t> block(p.block);
  for (auto& id : block) id = ids[rng.Below(ids.size())];
  std::vector<int32_t> prompt;
  prompt.reserve(1 + p.block * p.repeats);
  prompt.push_back(p.bos_id);
  for (int r = 0; r < p.repeats; ++r) prompt.insert(prompt.end(), block.begin(), block.end());
  *params = p;
  return prompt;
}

Result<HeadProfile> ProfileHeads(const ModelConfig& c, const ModelWeights& weights, const Tokenizer* tokenizer,
                                 int32_t gguf_bos_id, const ModelIdentity& identity, ThreadPool& pool, MathMode mode,
                                 const HeadProfilerOptions& o) {
  HeadProfile profile;
  profile.model = identity;
  RAZOR_ASSIGN_OR_RETURN(std::vector<int32_t> prompt, MakeProfilePrompt(c, tokenizer, gguf_bos_id, o, &profile.params));
  const int64_t n = static_cast<int64_t>(prompt.size());
  const int64_t batch = o.batch > 0 ? std::min(o.batch, n) : n;

  Transformer tf(c, weights, pool, mode);
  HeadScoreObserver observer(c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, profile.params.block, &pool);
  if (c.alibi) observer.alibi_slopes = AlibiSlopes(c.n_heads);
  observer.scale = c.query_scale();
  for (int l = 0; l < c.n_layers; ++l) observer.windows.push_back(c.is_local_layer(l) ? c.sliding_window : 0);
  // The observer sees each layer once per chunk of each Forward call: that many passes in all.
  int64_t total_passes = 0;
  for (int64_t b = 0; b < n; b += batch) {
    const int64_t len = std::min(batch, n - b);
    total_passes += (len + tf.chunk_tokens() - 1) / tf.chunk_tokens() * c.n_layers;
  }
  int64_t layer_passes = 0;
  observer.on_layer = [&](int) {
    ++layer_passes;
    if (o.on_progress) o.on_progress(layer_passes, total_passes);
  };
  tf.set_observer(&observer);
  FullKvCache cache(c.n_layers, c.n_kv_heads, c.head_dim, n);
  std::vector<float> logits;
  for (int64_t b = 0; b < n; b += batch)
    RAZOR_RETURN_IF_ERROR(tf.Forward(prompt.data() + b, std::min(batch, n - b), cache, false, &logits));

  profile.q_induction = observer.MeanInduction();
  profile.q_echo = observer.MeanEcho();
  profile.SelectRetrievalHeads();
  return profile;
}

Result<HeadProfile> ProfileHeads(const LoadedModel& m, ThreadPool& pool, MathMode mode, const HeadProfilerOptions& o) {
  int32_t gguf_bos = -1;
  if (m.gguf) gguf_bos = static_cast<int32_t>(m.gguf->GetIntOr("tokenizer.ggml.bos_token_id").value_or(-1));
  return ProfileHeads(m.config, m.weights, m.tokenizer.get(), gguf_bos, ModelIdentityOf(m), pool, mode, o);
}

}  // namespace razor
