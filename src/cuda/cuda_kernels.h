// Launchers of razor's CUDA kernels (cuda_kernels.cu, cuda_attention.cu), callable from plain C++: device
// pointers, sizes in elements, one stream. bf16 is passed as uint16_t (its bit pattern). Each launcher checks
// the launch itself (cudaGetLastError) and returns the CUDA error code (0: launched).
#pragma once

#include <cstddef>
#include <cstdint>

typedef struct CUstream_st* cudaStream_t;

namespace razor::cuda {

// x[t, :] = table[tokens[t], :] widened.   table: [vocab, dim] bf16; tokens: [n] (device); x: [n, dim] fp32
int Embed(const uint16_t* table, int64_t dim, const int32_t* tokens, int64_t n, float* x, cudaStream_t s);
// y = bf16(x), round to nearest even.   n elements
int ToBf16(const float* x, int64_t n, uint16_t* y, cudaStream_t s);
// Synthetic weights: w[i] = bf16(uniform(-scale, scale)) from a counter-based hash of (seed, i).
int FillRandomBf16(uint16_t* w, int64_t n, uint64_t seed, float scale, cudaStream_t s);
// ---- decode matrix-vector products (cuda_gemv.cu) ----
// One bf16 weight matrix of a Gemv launch: w [rows, cols] (16-byte aligned), y [m, rows] fp32.
struct GemvMatrix {
  const uint16_t* w;
  float* y;
  int64_t rows;
};
// Most input rows m. Measured on the H200 (8B shape, batch 2-8): the kernel is 10 % faster than cuBLAS at m = 2,
// even at 3 and slower from 5 on (its shared-memory reads of the input grow with m), so larger m go to GemvMma.
constexpr int kGemvMaxRows = 2;
constexpr int kGemvMaxMatrices = 3;  // most matrices of one input per launch
// Whether Gemv takes m input rows of width cols: m <= kGemvMaxRows, cols a multiple of 8, the rows as bf16 in
// smem_per_block bytes (cudaDeviceProp::sharedMemPerBlockOptin).
bool GemvFits(int64_t m, int64_t cols, size_t smem_per_block);
// What Gemv computes from its input rows x before rounding them to bf16.
struct GemvInput {
  enum Kind { kPlain, kRmsNorm, kSiluMul } kind = kPlain;
  const float* gain = nullptr;  // kRmsNorm: x / sqrt(mean(x²) + eps) * gain   (gain: [cols], device)
  float eps = 0.0f;
  const float* up = nullptr;    // kSiluMul: silu(x) * up                      (up: [m, cols], device)
};
// mats[i].y[m, rows_i] (+)= f(x)[m, cols] · mats[i].wᵀ for n_mats <= kGemvMaxMatrices matrices of one input
// (x, gain, up fp32 and 16-byte aligned; f(x) rounded to bf16 as the GEMM path rounds its input; fp32
// accumulation). accumulate: add to y instead of overwriting it.
int Gemv(const GemvMatrix* mats, int n_mats, const float* x, int64_t m, int64_t cols, const GemvInput& input,
         bool accumulate, cudaStream_t s);

// ---- batched decode matrix products on tensor cores (cuda_gemv_mma.cu) ----
// Most input rows of GemvMma (two mma n-tiles of 8); from kGemvMaxRows + 1 up to here decode rows take it.
constexpr int kGemvMmaMaxRows = 16;
// xb[m, cols] = f(x) as bf16 (f: GemvInput, the formulas of Gemv's input pass; x, gain, up, xb 16-byte aligned,
// cols a multiple of 8): GemvMma's input.
int StageGemvInput(const float* x, int64_t m, int64_t cols, const GemvInput& input, uint16_t* xb, cudaStream_t s);
// mats[i].y[m, rows_i] (+)= xb[m, cols] · mats[i].wᵀ for m <= kGemvMmaMaxRows staged bf16 input rows, fp32
// accumulation in a fixed order. accumulate: add to y instead of overwriting it.
int GemvMma(const GemvMatrix* mats, int n_mats, const uint16_t* xb, int64_t m, int64_t cols, bool accumulate,
            cudaStream_t s);

// m rows of width n: out = x / rms(x) * gain (RMSNorm), or (x - mean) / sd * gain + bias (LayerNorm, bias
// non-null). out may alias x.
int Norm(const float* x, int64_t m, int64_t n, const float* gain, const float* bias, float eps, float* out,
         cudaStream_t s);
// x[t, :] += bias for m rows of width n.
int AddBias(float* x, const float* bias, int64_t m, int64_t n, cudaStream_t s);
int Add(float* x, const float* y, int64_t n, cudaStream_t s);           // x += y
int SiluMul(float* gate, const float* up, int64_t n, cudaStream_t s);   // gate = silu(gate) * up
int Gelu(float* x, int64_t n, cudaStream_t s);                          // tanh approximation
int GeluMul(float* gate, const float* up, int64_t n, cudaStream_t s);   // gate = gelu_tanh(gate) * up
int Scale(float* x, float a, int64_t n, cudaStream_t s);                // x *= a
// Rotates m rows of `heads` heads of head_dim in place (row stride row_stride floats); row t uses
// cos/sin [t, head_dim/2] (device). interleaved: pairs (2i, 2i+1), else (i, i + head_dim/2).
int Rope(float* x, int64_t m, int64_t row_stride, int heads, int head_dim, bool interleaved, const float* cos,
         const float* sin, cudaStream_t s);
// dst[t, s * seg + i] = src[t, cols[s] + i].   cols: [n_segments] (device)
int GatherColumns(const float* src, int64_t src_stride, int64_t m, const int64_t* cols, int n_segments, int seg,
                  float* dst, int64_t dst_stride, cudaStream_t s);

// KV rows in a pool at `base`. type: 0 f32, 1 f16, 2 bf16 (KvType's order).
// Row i of k / v ([n, head_dim] fp32) stored at base + key_offsets[i] (V at + value_delta).
int StoreKvRows(uint8_t* base, int type, int head_dim, const float* k, const float* v, const int64_t* key_offsets,
                int64_t value_delta, int64_t n, cudaStream_t s);
// out[i, :] = row at base + offsets[i] widened.   out: [n, head_dim] fp32 (device)
int LoadKvRows(const uint8_t* base, int type, int head_dim, const int64_t* offsets, int64_t n, float* out,
               cudaStream_t s);
// staging[i] = row_bytes at base + offsets[i] (gather), and back (scatter).   row_bytes: a multiple of 4
int GatherRows(const uint8_t* base, size_t row_bytes, const int64_t* offsets, int64_t n, uint8_t* staging,
               cudaStream_t s);
int ScatterRows(uint8_t* base, size_t row_bytes, const int64_t* offsets, int64_t n, const uint8_t* staging,
                cudaStream_t s);
// sums[d] += Σ_i key row i [d], sums[head_dim + d] += Σ_i value row i [d], in double (the value row of key
// row i is at key_offsets[i] + value_delta).   sums: [2, head_dim] (device), zeroed by the caller
int SumKvRows(const uint8_t* base, int type, int head_dim, const int64_t* key_offsets, int64_t value_delta, int64_t n,
              double* sums, cudaStream_t s);

// ---- attention over ragged paged per-head KV (cuda_attention.cu) ----
// One (KV head of one sequence, its query tokens) item of a step. Offsets index the step's device arrays.
struct AttnItem {
  int64_t q_off;            // floats into q: token t, group head g at q_off + t * q_stride + g * head_dim
  int64_t out_off;          // floats into out, same layout with out_stride
  int32_t n_tokens;
  int32_t n_group_heads;
  int32_t len;              // stored keys (the compensation token excluded)
  int32_t first_row;        // token j is physical row first_row + j of the block list
  int32_t blocks_off;       // into block_ids
  int32_t visible_off;      // into visible: [n_tokens] keys token t may see (a prefix: positions ascend)
  int32_t comp_off;         // -1: no compensation token; else into comp: [2, head_dim] (K then V) fp32
  int32_t comp_bias_off;    // into bias: [n_tokens, n_group_heads] logit bias of the compensation token
  int32_t alibi_off;        // -1: no ALiBi; else into bias: slopes [n_group_heads]
  int32_t key_pos_off;      // ALiBi: into positions: key positions [len]
  int32_t query_pos_off;    // ALiBi: into positions: query positions [n_tokens]
  int32_t partial_off;      // first partial slot of this item: slot of (t, split) = partial_off + t * splits + split
  int32_t splits;           // key splits per token (each token uses ceil(visible / split_keys) <= splits)
  int32_t tc;               // 0: the split kernel; 1: the tensor-core prefill kernel (splits 0); 2: the
                            // tensor-core decode kernel (splits, compensation token added by the combine)
};

struct AttnStep {
  const float* q;
  float* out;
  int64_t q_stride, out_stride;  // floats per token row
  const uint8_t* pool_base;
  int64_t block_bytes;
  int32_t block_tokens;
  int32_t block_shift;           // log2(block_tokens) when a power of two, else -1
  int32_t head_dim;
  int32_t kv_type;               // 0 f32, 1 f16, 2 bf16
  int32_t split_keys;            // keys per split
  float scale;
  const AttnItem* items;         // [n_items] (device)
  int32_t n_items;
  int32_t max_tokens;            // most n_tokens of an item
  int32_t max_splits;            // most splits of an item
  const int32_t* block_ids;      // device
  const int32_t* visible;
  const int32_t* positions;
  const float* comp;
  const float* bias;
  // Partials: per slot and group head (G = the step's largest n_group_heads): max, sum, acc[head_dim].
  float* partial_ml;             // [slots, G, 2]
  float* partial_acc;            // [slots, G, head_dim]
  int32_t max_group;             // G
};

// Launches the split kernel (items with tc == 0, when split_items), the tensor-core decode kernel (tc == 2,
// when decode_items) and the combine kernel that finishes both.
int Attend(const AttnStep& step, cudaStream_t s, bool split_items, bool decode_items);
int CombineSplits(const AttnStep& step, cudaStream_t s);
// The tensor-core decode kernel (cuda_attention_decode.cu) for one-token items stored in f16 / bf16 with at most
// 16 query heads per KV head and head_dim 64 or 128; writes split partials only (CombineSplits finishes).
int AttendDecode(const AttnStep& step, cudaStream_t s);
// smem_per_block: the device's opt-in shared memory per block (cudaDeviceProp::sharedMemPerBlockOptin).
bool DecodeTensorCoreFits(int head_dim, int kv_type, int group, size_t smem_per_block);
// The tensor-core prefill kernel (cuda_attention_prefill.cu) for items with tc == 1: several query tokens, no
// compensation token, no ALiBi, head_dim 64 or 128, at most PrefillTensorCoreMaxRows() tokens x group heads.
int AttendPrefill(const AttnStep& step, cudaStream_t s);
bool PrefillTensorCoreHeadDim(int head_dim);
int PrefillTensorCoreMaxRows();

}  // namespace razor::cuda
