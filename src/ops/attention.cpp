#include "ops/attention.h"

#include <algorithm>
#include <cassert>
#include <cstdint>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "ops/attention_blocks.h"
#include "ops/elementwise.h"
#include "ops/kv_widen.h"
#include "ops/matmul.h"
#include "ops/simd_dispatch.h"

namespace razor {
namespace {

inline int32_t KeyPosition(const KvHeadView& kv, int64_t j) {
  return kv.positions ? kv.positions[j] : static_cast<int32_t>(j);
}

}  // namespace

int64_t VisibleKeys(const KvHeadView& kv, int32_t p) {
  if (kv.positions == nullptr) return std::min<int64_t>(kv.len, static_cast<int64_t>(p) + 1);
  return std::upper_bound(kv.positions, kv.positions + kv.len, p) - kv.positions;
}

int64_t FirstVisibleKey(const KvHeadView& kv, int32_t p, int32_t window) {
  if (window <= 0) return 0;
  const int64_t lo = static_cast<int64_t>(p) - window;  // keys at positions <= lo are hidden
  if (lo < 0) return 0;
  if (kv.positions == nullptr) return std::min<int64_t>(kv.len, lo + 1);
  return std::upper_bound(kv.positions, kv.positions + kv.len, static_cast<int32_t>(lo)) - kv.positions;
}

bool CompensationVisible(const KvHeadView& kv, int32_t p) {
  return kv.comp_count > 0 && kv.comp_max_position < p;
}

float CompensationBias(const KvHeadView& kv, const AttentionQuery& a, int g, int32_t pq) {
  if (a.alibi_slopes == nullptr) return std::log(static_cast<float>(kv.comp_count));
  return AlibiCompensationBias(kv, a.alibi_slopes[g], pq);
}

float AlibiCompensationBias(const KvHeadView& kv, float slope, int32_t pq) {
  const double m = slope;
  const double nd = static_cast<double>(kv.comp_count);
  if (m <= 0.0) return static_cast<float>(std::log(nd));
  const double near = -m * (static_cast<double>(pq) - kv.comp_max_position);
  return static_cast<float>(near + std::log(-std::expm1(-m * nd)) - std::log(-std::expm1(-m)));
}

void AttendReference(const KvHeadView& kv, const AttentionQuery& a) {
  const int d = a.head_dim;
  std::vector<float> scores, row(d);  // row: one key / value widened to fp32
  for (int64_t t = 0; t < a.n_tokens; ++t) {
    const int32_t p = a.positions[t];
    const int64_t n = VisibleKeys(kv, p);
    const int64_t f = std::min(n, FirstVisibleKey(kv, p, a.window));  // keys [f, n) are seen
    const bool comp = a.window == 0 && CompensationVisible(kv, p);
    for (int g = 0; g < a.n_group_heads; ++g) {
      const float* q = a.q + t * a.q_token_stride + static_cast<int64_t>(g) * d;
      float* o = a.out + t * a.out_token_stride + static_cast<int64_t>(g) * d;
      scores.assign(n + (comp ? 1 : 0), -std::numeric_limits<float>::infinity());  // [0, f): hidden, e^ = 0
      float m = -std::numeric_limits<float>::infinity();
      for (int64_t j = f; j < n; ++j) {
        kv.KeyF32(j, d, row.data());
        float s = 0.0f;
        for (int i = 0; i < d; ++i) s += q[i] * row[i];
        scores[j] = s * a.scale;
        if (a.alibi_slopes) scores[j] -= a.alibi_slopes[g] * static_cast<float>(p - KeyPosition(kv, j));
        m = std::max(m, scores[j]);
      }
      if (comp) {
        float s = 0.0f;
        for (int i = 0; i < d; ++i) s += q[i] * kv.comp_k[i];
        scores[n] = s * a.scale + CompensationBias(kv, a, g, p);
        m = std::max(m, scores[n]);
      }
      for (int i = 0; i < d; ++i) o[i] = 0.0f;
      if (m == -std::numeric_limits<float>::infinity()) {  // no key visible (an empty window): output 0
        if (a.lse) a.lse[t * a.lse_token_stride + g] = m;
        continue;
      }
      float sum = 0.0f;
      for (auto& s : scores) sum += (s = std::exp(s - m));
      if (a.lse) a.lse[t * a.lse_token_stride + g] = m + std::log(sum);
      for (int64_t j = f; j < n; ++j) {
        kv.ValueF32(j, d, row.data());
        for (int i = 0; i < d; ++i) o[i] += scores[j] / sum * row[i];
      }
      if (comp)
        for (int i = 0; i < d; ++i) o[i] += scores[n] / sum * kv.comp_v[i];
    }
  }
}

namespace {

constexpr int kKeyBlock = kAttnKeyBlock;  // keys per block: a block of scores stays in L1
constexpr int kMaxRows = 48;  // (token, group head) rows processed together: each K/V row is read once for all

// S[r * kKeyBlock + j] = scale * q_r . k_j for rows r < rows, keys j < nb (columns past nb are 0).
// The key block is transposed first so the inner loop runs over keys, a full vector wide.
RAZOR_VECTOR_CLONES void BlockScores(const float* const* q, int rows, int d, const float* const* k, int nb,
                                     float scale, float* S) {
  thread_local std::vector<float> kt_buf;
  kt_buf.resize(static_cast<size_t>(d) * kKeyBlock);
  float* kt = kt_buf.data();  // [d, kKeyBlock]
  for (int j = 0; j < nb; ++j)
    for (int i = 0; i < d; ++i) kt[i * kKeyBlock + j] = k[j][i];
  for (int i = 0; i < d; ++i)
    for (int j = nb; j < kKeyBlock; ++j) kt[i * kKeyBlock + j] = 0.0f;
  for (int r = 0; r < rows; ++r) {
    float sr[kKeyBlock] = {};
    const float* qr = q[r];
    for (int i = 0; i < d; ++i) {
      const float qi = qr[i];
      const float* kti = kt + i * kKeyBlock;
      for (int j = 0; j < kKeyBlock; ++j) sr[j] += qi * kti[j];
    }
    for (int j = 0; j < kKeyBlock; ++j) S[r * kKeyBlock + j] = sr[j] * scale;
  }
}

// acc_r += Σ_j P[r, j] v_j
RAZOR_VECTOR_CLONES void BlockAccumulate(const float* P, int rows, int nb, const float* const* v, int d, float* acc) {
  for (int j = 0; j < nb; ++j) {
    const float* vj = v[j];
    for (int r = 0; r < rows; ++r) {
      const float p = P[r * kKeyBlock + j];
      if (p == 0.0f) continue;
      float* ar = acc + static_cast<int64_t>(r) * d;
      for (int i = 0; i < d; ++i) ar[i] += p * vj[i];
    }
  }
}

// One tile's running state: rows r = token * G + group head, up to kMaxRows.
struct TileRows {
  const float* q[kMaxRows];
  int64_t visible[kMaxRows];
  int64_t first[kMaxRows];  // keys [first, visible) are seen (sliding window; 0 otherwise)
  int32_t qpos[kMaxRows];
  float slope[kMaxRows];
  float m[kMaxRows], l[kMaxRows];
};

// Row pointers of keys j0 .. j0 + nb and, under ALiBi, their positions (both tile loops read a block this way).
// Paged f16 / bf16 rows are widened into a per-thread fp32 scratch of one key block first (kv_widen.h): a
// block's rows are contiguous inside a pool block, so each run of rows is one widening call. (The prefill
// panels and the plain loop read them so; the SIMD decode row kernels read them in place: GatherHalfKeyBlock.)
void GatherKeyBlock(const KvHeadView& kv, int64_t j0, int nb, int d, bool alibi, const float** krow,
                    const float** vrow, int32_t* key_pos) {
  if (!kv.paged()) {
    for (int j = 0; j < nb; ++j) {
      krow[j] = kv.key(j0 + j, d);
      vrow[j] = kv.value(j0 + j, d);
    }
  } else if (kv.type == KvType::kF32) {  // walk the pool blocks instead of dividing per key
    int64_t r = kv.first_row + j0, b = r / kv.block_tokens, row = r % kv.block_tokens;
    for (int j = 0; j < nb; ++j) {
      const auto* blk = reinterpret_cast<const float*>(kv.pool_base + static_cast<size_t>(kv.block_ids[b]) *
                                                                           kv.block_bytes);
      krow[j] = blk + row * d;
      vrow[j] = blk + (kv.block_tokens + row) * d;
      if (++row == kv.block_tokens) {
        row = 0;
        ++b;
      }
    }
  } else {
    thread_local std::vector<float> kbuf, vbuf;  // [kKeyBlock, d] each
    kbuf.resize(static_cast<size_t>(kKeyBlock) * d);
    vbuf.resize(static_cast<size_t>(kKeyBlock) * d);
    const size_t row_bytes = static_cast<size_t>(d) * KvTypeBytes(kv.type);
    int64_t r = kv.first_row + j0;
    for (int j = 0; j < nb;) {
      const int64_t b = r / kv.block_tokens, row = r % kv.block_tokens;
      const int run = static_cast<int>(std::min<int64_t>(nb - j, kv.block_tokens - row));
      const uint8_t* blk = kv.pool_base + static_cast<size_t>(kv.block_ids[b]) * kv.block_bytes;
      WidenKvValues(kv.type, blk + row * row_bytes, static_cast<int64_t>(run) * d, &kbuf[static_cast<size_t>(j) * d]);
      WidenKvValues(kv.type, blk + (kv.block_tokens + row) * row_bytes, static_cast<int64_t>(run) * d,
                    &vbuf[static_cast<size_t>(j) * d]);
      for (int i = 0; i < run; ++i) {
        krow[j + i] = &kbuf[static_cast<size_t>(j + i) * d];
        vrow[j + i] = &vbuf[static_cast<size_t>(j + i) * d];
      }
      j += run;
      r += run;
    }
  }
  if (alibi)  // key positions only matter for the ALiBi distance
    for (int j = 0; j < nb; ++j) key_pos[j] = KeyPosition(kv, j0 + j);
}

// Row pointers of keys j0 .. j0 + nb of a paged f16 / bf16 head, where they are stored (for the half row
// kernels, which widen in registers), and under ALiBi their positions.
void GatherHalfKeyBlock(const KvHeadView& kv, int64_t j0, int nb, int d, bool alibi, const uint16_t** krow,
                        const uint16_t** vrow, int32_t* key_pos) {
  int64_t r = kv.first_row + j0, b = r / kv.block_tokens, row = r % kv.block_tokens;
  for (int j = 0; j < nb; ++j) {
    const auto* blk = reinterpret_cast<const uint16_t*>(kv.pool_base + static_cast<size_t>(kv.block_ids[b]) *
                                                                            kv.block_bytes);
    krow[j] = blk + row * d;
    vrow[j] = blk + (kv.block_tokens + row) * d;
    if (++row == kv.block_tokens) {
      row = 0;
      ++b;
    }
  }
  if (alibi)
    for (int j = 0; j < nb; ++j) key_pos[j] = KeyPosition(kv, j0 + j);
}

// The two products of the row-major loop below: the auto-vectorised plain ones, or the SIMD row kernels,
// which also have twins reading f16 / bf16 rows in place (null: such rows are widened into a scratch first).
struct RowKernels {
  void (*scores)(const float* const* q, int rows, int d, const float* const* k, int nb, float scale, float* S);
  void (*accumulate)(const float* P, int rows, int nb, const float* const* v, int d, float* acc);
  void (*scores_half)(HalfType type, const float* const* q, int rows, int d, const uint16_t* const* k, int nb,
                      float scale, float* S);
  void (*accumulate_half)(HalfType type, const float* P, int rows, int nb, const uint16_t* const* v, int d,
                          float* acc);
};
constexpr RowKernels kRowsPlain{BlockScores, BlockAccumulate, nullptr, nullptr};
constexpr RowKernels kRowsAvx2{RowScoresAvx2, RowAccumulateAvx2, nullptr, nullptr};
constexpr RowKernels kRowsAvx2Half{RowScoresAvx2, RowAccumulateAvx2, RowScoresHalfAvx2, RowAccumulateHalfAvx2};
constexpr RowKernels kRowsAvx512{RowScoresAvx512, RowAccumulateAvx512, RowScoresHalfAvx512, RowAccumulateHalfAvx512};

// The key-block loop of one tile with row-major scores (any ISA; decode and small tiles).
// Keys [j_begin, n_max): no row sees a key outside them.
void TileKeyBlocks(const RowKernels& kern, const KvHeadView& kv, const AttentionQuery& a, int rows, int64_t j_begin,
                   int64_t n_max, TileRows* t, float* acc) {
  const int d = a.head_dim;
  thread_local std::vector<float> score_buf(static_cast<size_t>(kMaxRows) * kKeyBlock);
  float* S = score_buf.data();
  const float* krow[kKeyBlock];
  const float* vrow[kKeyBlock];
  const uint16_t* khalf[kKeyBlock];
  const uint16_t* vhalf[kKeyBlock];
  int32_t key_pos[kKeyBlock];
  const bool half_in_place = kern.scores_half != nullptr && kv.paged() &&
                             (kv.type == KvType::kF16 || kv.type == KvType::kBF16);
  const HalfType half = kv.type == KvType::kBF16 ? HalfType::kBf16 : HalfType::kF16;
  for (int64_t j0 = j_begin; j0 < n_max; j0 += kKeyBlock) {
    const int nb = static_cast<int>(std::min<int64_t>(kKeyBlock, n_max - j0));
    if (half_in_place) {
      GatherHalfKeyBlock(kv, j0, nb, d, a.alibi_slopes != nullptr, khalf, vhalf, key_pos);
      kern.scores_half(half, t->q, rows, d, khalf, nb, a.scale, S);
    } else {
      GatherKeyBlock(kv, j0, nb, d, a.alibi_slopes != nullptr, krow, vrow, key_pos);
      kern.scores(t->q, rows, d, krow, nb, a.scale, S);
    }
    for (int r = 0; r < rows; ++r) {
      float* sr = S + r * kKeyBlock;
      const int nv = static_cast<int>(std::clamp<int64_t>(t->visible[r] - j0, 0, nb));
      const int nf = static_cast<int>(std::clamp<int64_t>(t->first[r] - j0, 0, nb));
      for (int j = nv; j < nb; ++j) sr[j] = -std::numeric_limits<float>::infinity();  // causal mask
      for (int j = 0; j < nf; ++j) sr[j] = -std::numeric_limits<float>::infinity();   // sliding window
      if (a.alibi_slopes)
        for (int j = nf; j < nv; ++j) sr[j] -= t->slope[r] * static_cast<float>(t->qpos[r] - key_pos[j]);
      if (nv <= nf) {
        std::fill(sr, sr + nb, 0.0f);
        continue;
      }
      const float bm = MaxOf(sr, nv, t->m[r]);
      const float correction = std::exp(t->m[r] - bm);  // rescale what was accumulated under the old max
      if (correction != 1.0f) {
        t->l[r] *= correction;
        Scale(acc + static_cast<int64_t>(r) * d, correction, d);
      }
      t->m[r] = bm;
      ExpShiftedInPlace(sr, bm, nb);
      t->l[r] += SumOf(sr, nb);
    }
    if (half_in_place) kern.accumulate_half(half, S, rows, nb, vhalf, d, acc);
    else kern.accumulate(S, rows, nb, vrow, d, acc);
  }
}

// The register-blocked kernels of one SIMD level (ops/attention_blocks.h).
struct BlockKernels {
  void (*scores)(const float* qt, const float* const* k, int nb, int d, float* S);
  void (*softmax)(float* S, int nb, int64_t j0, const int32_t* key_pos, AttnPanelRows* rows, float* corr);
  void (*accumulate)(const float* P, int rows, int nb, const float* const* v, int d, float* acc);
};
constexpr BlockKernels kBlocksAvx2{BlockScoresAvx2, BlockSoftmaxAvx2, BlockAccumulateAvx2};
constexpr BlockKernels kBlocksAvx512{BlockScoresAvx512, BlockSoftmaxAvx512, BlockAccumulateAvx512};

// The kernels for the fast matmul's SIMD level (MatMulIsa(): the CPU's best unless RAZOR_ISA or a test
// asks for a lower one); null at the scalar level or without AVX2.
const BlockKernels* SimdBlockKernels() {
  if (!AttentionBlocksAvailable()) return nullptr;
  const char* isa = MatMulIsa();
  if (std::strcmp(isa, "avx512") == 0) return &kBlocksAvx512;
  if (std::strcmp(isa, "avx2") == 0) return &kBlocksAvx2;
  return nullptr;
}

// The same loop with the register-blocked SIMD kernels (prefill tiles of >= 8 rows, d % 16 == 0): query
// rows packed once per tile into panels of 16, scores key-major per panel (ops/attention_blocks.h).
void TileKeyBlocksSimd(const BlockKernels& kern, const KvHeadView& kv, const AttentionQuery& a, int rows,
                       int64_t j_begin, int64_t n_max, TileRows* t, float* acc) {
  constexpr int kPanels = kMaxRows / kAttnRowPanel;
  const int d = a.head_dim;
  const int n_panels = (rows + kAttnRowPanel - 1) / kAttnRowPanel;
  thread_local std::vector<float> qt_buf, score_buf(static_cast<size_t>(kPanels) * kAttnPanelFloats);
  qt_buf.assign(static_cast<size_t>(n_panels) * d * kAttnRowPanel, 0.0f);
  for (int r = 0; r < rows; ++r)
    for (int i = 0; i < d; ++i)
      qt_buf[(static_cast<size_t>(r / kAttnRowPanel) * d + i) * kAttnRowPanel + r % kAttnRowPanel] =
          t->q[r][i] * a.scale;
  AttnPanelRows panel[kPanels];
  for (int r = 0; r < n_panels * kAttnRowPanel; ++r) {
    AttnPanelRows& pr = panel[r / kAttnRowPanel];
    const int lane = r % kAttnRowPanel;
    const bool real = r < rows;  // padding rows see no key
    pr.visible[lane] = real ? static_cast<int32_t>(t->visible[r]) : 0;
    pr.first[lane] = real ? static_cast<int32_t>(t->first[r]) : 0;
    pr.qpos[lane] = real ? t->qpos[r] : 0;
    pr.slope[lane] = real ? t->slope[r] : 0.0f;
    pr.m[lane] = real ? t->m[r] : -std::numeric_limits<float>::infinity();
    pr.l[lane] = real ? t->l[r] : 0.0f;
  }
  float* S = score_buf.data();
  const float* krow[kKeyBlock];
  const float* vrow[kKeyBlock];
  int32_t key_pos[kKeyBlock];
  float corr[kAttnRowPanel];
  for (int64_t j0 = j_begin; j0 < n_max; j0 += kKeyBlock) {
    const int nb = static_cast<int>(std::min<int64_t>(kKeyBlock, n_max - j0));
    GatherKeyBlock(kv, j0, nb, d, a.alibi_slopes != nullptr, krow, vrow, key_pos);
    for (int p = 0; p < n_panels; ++p) {
      float* Sp = S + static_cast<size_t>(p) * kAttnPanelFloats;
      kern.scores(qt_buf.data() + static_cast<size_t>(p) * d * kAttnRowPanel, krow, nb, d, Sp);
      kern.softmax(Sp, nb, j0, a.alibi_slopes ? key_pos : nullptr, &panel[p], corr);
      for (int lane = 0; lane < kAttnRowPanel && p * kAttnRowPanel + lane < rows; ++lane)
        if (corr[lane] != 1.0f) Scale(acc + static_cast<int64_t>(p * kAttnRowPanel + lane) * d, corr[lane], d);
    }
    kern.accumulate(S, rows, nb, vrow, d, acc);
  }
  for (int r = 0; r < rows; ++r) {
    t->m[r] = panel[r / kAttnRowPanel].m[r % kAttnRowPanel];
    t->l[r] = panel[r / kAttnRowPanel].l[r % kAttnRowPanel];
  }
}

}  // namespace

void AttendFlash(const KvHeadView& kv, const AttentionQuery& a) {
  [[maybe_unused]] constexpr int kMaxHeadDim = 512;
  const int d = a.head_dim;
  const int G = a.n_group_heads;
  assert(d <= kMaxHeadDim && G <= kMaxRows);
  const int tokens_per_tile = std::max(1, std::min(kAttnTileTokens, kMaxRows / G));
  thread_local std::vector<float> acc_buf;
  acc_buf.resize(static_cast<size_t>(kMaxRows) * d);
  float* acc = acc_buf.data();
  TileRows t;
  const BlockKernels* simd = d % 16 == 0 ? SimdBlockKernels() : nullptr;
  const RowKernels& rows_kern = simd == nullptr || !RowBlocksSupportDim(d) ? kRowsPlain
                                : simd == &kBlocksAvx512                  ? kRowsAvx512
                                : HalfRowKernelsAvailable()               ? kRowsAvx2Half
                                                                          : kRowsAvx2;
  for (int64_t t0 = 0; t0 < a.n_tokens; t0 += tokens_per_tile) {
    const int nt = static_cast<int>(std::min<int64_t>(tokens_per_tile, a.n_tokens - t0));
    const int rows = nt * G;
    int64_t n_max = 0, j_begin = INT64_MAX;
    for (int ti = 0; ti < nt; ++ti) {
      const int32_t p = a.positions[t0 + ti];
      const int64_t vis = VisibleKeys(kv, p);
      const int64_t first = std::min(vis, FirstVisibleKey(kv, p, a.window));
      const bool comp = a.window == 0 && CompensationVisible(kv, p);
      n_max = std::max(n_max, vis);
      j_begin = std::min(j_begin, first);
      for (int g = 0; g < G; ++g) {
        const int r = ti * G + g;
        t.q[r] = a.q + (t0 + ti) * a.q_token_stride + static_cast<int64_t>(g) * d;
        t.visible[r] = vis;
        t.first[r] = first;
        t.qpos[r] = p;
        t.slope[r] = a.alibi_slopes ? a.alibi_slopes[g] : 0.0f;
        float* ar = acc + static_cast<int64_t>(r) * d;
        if (comp) {  // the compensation token opens the row: m = its logit, l = 1, acc = its value
          t.m[r] = Dot(t.q[r], kv.comp_k, d) * a.scale + CompensationBias(kv, a, g, p);
          t.l[r] = 1.0f;
          for (int i = 0; i < d; ++i) ar[i] = kv.comp_v[i];
        } else {
          t.m[r] = -std::numeric_limits<float>::infinity();
          t.l[r] = 0.0f;
          std::fill(ar, ar + d, 0.0f);
        }
      }
    }
    if (rows >= 8 && simd != nullptr) TileKeyBlocksSimd(*simd, kv, a, rows, j_begin, n_max, &t, acc);
    else TileKeyBlocks(rows_kern, kv, a, rows, j_begin, n_max, &t, acc);
    for (int ti = 0; ti < nt; ++ti) {
      for (int g = 0; g < G; ++g) {
        const int r = ti * G + g;
        float* o = a.out + (t0 + ti) * a.out_token_stride + static_cast<int64_t>(g) * d;
        const float inv = t.l[r] > 0.0f ? 1.0f / t.l[r] : 0.0f;  // l == 0: no key visible, output 0
        const float* ar = acc + static_cast<int64_t>(r) * d;
        for (int i = 0; i < d; ++i) o[i] = ar[i] * inv;
        if (a.lse) a.lse[(t0 + ti) * a.lse_token_stride + g] = t.m[r] + std::log(t.l[r]);
      }
    }
  }
}

}  // namespace razor
