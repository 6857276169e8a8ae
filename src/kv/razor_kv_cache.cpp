#include "kv/razor_kv_cache.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <climits>
#include <cstring>

namespace razor {

RazorKvCache::RazorKvCache(KvHeadPolicy policy, int head_dim, int64_t capacity, KvType type,
                           std::shared_ptr<KvBlockPool> pool)
    : policy_(std::move(policy)),
      n_layers_(policy_.n_layers()),
      n_kv_heads_(policy_.n_kv_heads()),
      head_dim_(head_dim),
      bt_(policy_.params().block_tokens),
      type_(type),
      row_bytes_(static_cast<size_t>(head_dim) * KvTypeBytes(type)),
      capacity_(std::min<int64_t>(capacity, INT32_MAX)),
      pool_(pool ? std::move(pool) : std::make_shared<KvBlockPool>(block_bytes(bt_, head_dim, type))),
      layer_next_(n_layers_, 0),
      compress_at_(n_layers_, -1),
      heads_(static_cast<size_t>(n_layers_) * n_kv_heads_) {
  assert(head_dim_ > 0);
  assert(pool_->block_bytes() == block_bytes(bt_, head_dim_, type_) && "pool block size does not fit this cache");
  for (auto& h : heads_) h.comp = CompensationToken(head_dim_);
}

RazorKvCache::~RazorKvCache() {
  for (auto& h : heads_) TrimBlocks(h, 0);
}

bool RazorKvCache::GrowTo(HeadStore& h, int64_t rows) {
  const size_t need = static_cast<size_t>((rows + bt_ - 1) / bt_);
  if (need <= h.blocks.size()) return true;
  scratch_.clear();
  if (!pool_->Allocate(need - h.blocks.size(), &scratch_)) return false;
  h.blocks.insert(h.blocks.end(), scratch_.begin(), scratch_.end());
  blocks_held_ += scratch_.size();
  return true;
}

void RazorKvCache::TrimBlocks(HeadStore& h, size_t keep) {
  if (h.blocks.size() <= keep) return;
  pool_->Free(h.blocks.data() + keep, h.blocks.size() - keep);
  blocks_held_ -= h.blocks.size() - keep;
  h.blocks.resize(keep);
}

void RazorKvCache::AddToCompensation(HeadStore& h, int64_t r0, int64_t r1) {
  // Summed where the rows live (a device reduces them there), in pieces of a bounded number of offsets.
  constexpr int64_t kPiece = 65536;
  KvPoolMemory& mem = pool_->memory();
  std::vector<double> sum_k(head_dim_), sum_v(head_dim_);
  for (int64_t p0 = r0; p0 < r1; p0 += kPiece) {
    const int64_t n = std::min(kPiece, r1 - p0);
    offsets_.resize(n);
    for (int64_t r = p0; r < p0 + n; ++r) offsets_[r - p0] = KeyOffset(h, r);
    mem.SumRows(type_, head_dim_, offsets_.data(), value_delta(), n, sum_k.data(), sum_v.data());
  }
  if (r1 > r0) h.comp.AddSums(sum_k.data(), sum_v.data(), r1 - r0, h.positions[r1 - 1]);
}

void RazorKvCache::MoveRows(const HeadStore& h, const std::vector<int64_t>& src_rows,
                            const std::vector<int64_t>& dst_rows) {
  const size_t n = src_rows.size();
  if (n == 0) return;
  offsets_.resize(2 * n);
  offsets2_.resize(2 * n);
  for (size_t i = 0; i < n; ++i) {
    offsets_[i] = KeyOffset(h, src_rows[i]);
    offsets_[n + i] = offsets_[i] + value_delta();
    offsets2_[i] = KeyOffset(h, dst_rows[i]);
    offsets2_[n + i] = offsets2_[i] + value_delta();
  }
  pool_->memory().CopyRows(row_bytes_, offsets_.data(), offsets2_.data(), static_cast<int64_t>(2 * n));
}

Status RazorKvCache::PoolExhausted() const {
  return Err(fmt::format("KV pool exhausted: {} of {} MiB in use by all sequences (this sequence holds {} MiB)",
                         pool_->bytes_in_use() >> 20, pool_->capacity_bytes() >> 20, kv_block_bytes() >> 20));
}

Status RazorKvCache::Reserve(int64_t n) {
  std::vector<size_t> before(heads_.size());
  for (size_t i = 0; i < heads_.size(); ++i) {
    HeadStore& h = heads_[i];
    before[i] = h.blocks.size();
    if (!GrowTo(h, h.first_row + h.len + n)) {
      for (size_t j = 0; j <= i; ++j) TrimBlocks(heads_[j], before[j]);
      return PoolExhausted();
    }
  }
  return Status::Ok();
}

size_t RazorKvCache::SteadyBlocks(const HeadStore& h) const {
  // Folding keeps N0 + W tokens starting at first_row < bt, plus one decode token before the fold.
  return static_cast<size_t>((policy_.params().sinks + h.window + bt_ + bt_ - 1) / bt_);
}

Status RazorKvCache::Append(int layer, int64_t pos0, int64_t n, const float* k, const float* v) {
  if (layer < 0 || layer >= n_layers_) return Err(fmt::format("KV append to layer {} of {}", layer, n_layers_));
  if (pos0 + n > capacity_)
    return Err(fmt::format("KV cache full: {} tokens do not fit in a context of {}", pos0 + n, capacity_));
  if (pos0 != layer_next_[layer])
    return Err(fmt::format("KV append at position {} but layer {} holds {} tokens", pos0, layer, layer_next_[layer]));
  for (int hi = 0; hi < n_kv_heads_; ++hi) {
    HeadStore& h = head(layer, hi);
    const int64_t row0 = h.first_row + h.len;
    if (!GrowTo(h, row0 + n)) return PoolExhausted();
  }
  // Row (t, head hi) of k / v ([n, n_kv_heads, head_dim]) is source row t * n_kv_heads + hi: one store for all.
  offsets_.resize(static_cast<size_t>(n) * n_kv_heads_);
  for (int hi = 0; hi < n_kv_heads_; ++hi) {
    HeadStore& h = head(layer, hi);
    const int64_t row0 = h.first_row + h.len;
    for (int64_t t = 0; t < n; ++t) {
      offsets_[t * n_kv_heads_ + hi] = KeyOffset(h, row0 + t);
      h.positions.push_back(static_cast<int32_t>(pos0 + t));
    }
    h.len += n;
  }
  pool_->memory().StoreRows(type_, head_dim_, k, v, offsets_.data(), value_delta(), n * n_kv_heads_);
  layer_next_[layer] += n;
  return Status::Ok();
}

void RazorKvCache::BeginPrefill(int64_t n_tokens) {
  if (policy_.mode() == KvMode::kFull) return;
  for (int l = 0; l < n_layers_; ++l) compress_at_[l] = layer_next_[l] + n_tokens;
}

void RazorKvCache::Compress(HeadStore& h, int64_t window) {
  assert(h.window == 0 && h.first_row == 0);
  const int64_t n0 = policy_.params().sinks;
  const int64_t n = h.len;
  if (n <= n0 + window) {
    h.short_prompt = true;
    return;
  }
  h.short_prompt = false;
  const int64_t dropped = n - n0 - window;  // rows [n0, n0 + dropped)
  if (policy_.compensation()) {
    AddToCompensation(h, n0, n0 + dropped);
    h.comp.Publish();
    if (!policy_.decode_fold()) h.comp.DropSums();
  }
  // Re-pack: the window moves down to follow the sinks, so only ceil((N0 + W) / bt) blocks stay.
  std::vector<int64_t> src, dst;
  for (int64_t j = n0; j < n0 + window; ++j) {
    src.push_back(j + dropped);
    dst.push_back(j);
    h.positions[j] = h.positions[j + dropped];
  }
  MoveRows(h, src, dst);
  h.len = n0 + window;
  h.window = window;
  h.positions.resize(h.len);
  h.positions.shrink_to_fit();
  tokens_dropped_ += dropped;
  size_t keep = static_cast<size_t>((h.len + bt_ - 1) / bt_);
  if (policy_.decode_fold()) {
    // Take the steady-state blocks now, so decode never allocates or frees for this head again.
    keep = SteadyBlocks(h);
    GrowTo(h, static_cast<int64_t>(keep) * bt_);  // on failure the next Append reports it
    h.positions.reserve(keep * bt_);
  }
  TrimBlocks(h, keep);
}

void RazorKvCache::Fold(HeadStore& h) {
  const int64_t n0 = policy_.params().sinks;
  const int64_t excess = h.len - n0 - h.window;
  if (h.window == 0 || excess <= 0) return;
  // Logical token j is physical row first_row + j. The oldest `excess` window tokens leave.
  const int64_t r0 = h.first_row;
  if (policy_.compensation()) {
    AddToCompensation(h, r0 + n0, r0 + n0 + excess);
    h.comp.Publish();
  }
  // Move the sinks up over the leaving rows (highest first, for the positions; the rows move all at once).
  std::vector<int64_t> src, dst;
  for (int64_t i = n0 - 1; i >= 0; --i) {
    src.push_back(r0 + i);
    dst.push_back(r0 + i + excess);
    h.positions[r0 + i + excess] = h.positions[r0 + i];
  }
  MoveRows(h, src, dst);
  h.first_row += excess;
  h.len -= excess;
  tokens_dropped_ += excess;
  tokens_folded_ += excess;
  // A wholly passed front block moves to the back (a ring of blocks: no pool traffic).
  while (h.first_row >= bt_) {
    std::rotate(h.blocks.begin(), h.blocks.begin() + 1, h.blocks.end());
    h.positions.erase(h.positions.begin(), h.positions.begin() + bt_);
    h.first_row -= bt_;
  }
  TrimBlocks(h, std::max(static_cast<size_t>((h.first_row + h.len + bt_ - 1) / bt_), SteadyBlocks(h)));
}

void RazorKvCache::OnLayerDone(int layer, bool prefill) {
  if (policy_.mode() == KvMode::kFull) return;
  if (compress_at_[layer] >= 0 && layer_next_[layer] >= compress_at_[layer]) {
    const int64_t window = policy_.Window(compress_at_[layer]);
    for (int hi = 0; hi < n_kv_heads_; ++hi) {
      HeadStore& h = head(layer, hi);
      if (policy_.compresses(layer, hi) && h.window == 0)
        Compress(h, policy_.HeadWindow(layer, hi, compress_at_[layer]));
    }
    compress_at_[layer] = -1;
    last_window_ = window;
  }
  if (!policy_.decode_fold()) return;
  const int64_t n0 = policy_.params().sinks;
  for (int hi = 0; hi < n_kv_heads_; ++hi) {
    HeadStore& h = head(layer, hi);
    // decode_fold bounds every compressed head: one whose prompt fit in N0 + W is cut when decode takes it
    // past N0 + W (W for its length now), as if the prompt had been that long; then it folds like the rest.
    if (!prefill && h.short_prompt && h.window == 0) {
      const int64_t w = policy_.HeadWindow(layer, hi, layer_next_[layer]);
      if (h.len > n0 + w) Compress(h, w);
    }
    Fold(h);
  }
}

KvHeadView RazorKvCache::View(int layer, int kv_head) const {
  const HeadStore& h = head(layer, kv_head);
  KvHeadView view;
  view.type = type_;
  view.pool_base = pool_->base();
  view.block_bytes = pool_->block_bytes();
  view.block_ids = h.blocks.data();
  view.block_tokens = bt_;
  view.first_row = h.first_row;
  view.len = h.len;
  view.positions = h.len ? h.positions.data() + h.first_row : nullptr;
  if (h.comp.count() > 0) {
    view.comp_k = h.comp.k();
    view.comp_v = h.comp.v();
    view.comp_count = h.comp.count();
    view.comp_max_position = h.comp.max_position();
  }
  return view;
}

void RazorKvCache::Clear() {
  for (auto& h : heads_) {
    TrimBlocks(h, 0);
    std::vector<int32_t>().swap(h.positions);
    h.first_row = h.len = h.window = 0;
    h.short_prompt = false;
    h.comp.Clear();
  }
  std::fill(layer_next_.begin(), layer_next_.end(), 0);
  std::fill(compress_at_.begin(), compress_at_.end(), -1);
  seq_len_ = 0;
  last_window_ = tokens_dropped_ = tokens_folded_ = 0;
}

size_t RazorKvCache::compensation_bytes() const {
  size_t b = 0;
  for (const auto& h : heads_) b += h.comp.bytes();
  return b;
}

size_t RazorKvCache::index_bytes() const {
  size_t b = 0;
  for (const auto& h : heads_)
    b += h.positions.capacity() * sizeof(int32_t) +
         h.blocks.capacity() * sizeof(int32_t);
  return b;
}

RazorKvStats RazorKvCache::stats() const {
  RazorKvStats s;
  s.heads = static_cast<int64_t>(heads_.size());
  for (int l = 0; l < n_layers_; ++l)
    for (int hi = 0; hi < n_kv_heads_; ++hi) {
      const HeadStore& h = head(l, hi);
      if (!policy_.compresses(l, hi)) ++s.heads_full;
      if (h.window > 0) ++s.heads_compressed;
      if (h.short_prompt) ++s.heads_too_short;
      s.tokens_kept += h.len;
    }
  s.window = last_window_;
  s.tokens_dropped = tokens_dropped_;
  s.tokens_folded = tokens_folded_;
  s.kv_block_bytes = kv_block_bytes();
  s.compensation_bytes = compensation_bytes();
  s.index_bytes = index_bytes();
  s.full_cache_bytes = static_cast<size_t>(s.heads) * seq_len_ * 2 * row_bytes_;
  return s;
}

}  // namespace razor
