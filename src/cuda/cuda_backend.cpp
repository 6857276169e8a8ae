#include "cuda/cuda_backend.h"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <unordered_map>
#include <vector>

#include "core/fp16.h"
#include "cuda/cuda_check.h"
#include "cuda/cuda_kernels.h"
#include "cuda/cuda_kv_pool_memory.h"
#include "cuda/cuda_op_timeline.h"
#include "cuda/cuda_upload.h"
#include "ops/dequantize.h"

namespace razor {
namespace {

class DeviceBuffer final : public Buffer {
 public:
  explicit DeviceBuffer(int64_t floats) {
    RAZOR_CUDA_CHECK(cudaMalloc(&data_, static_cast<size_t>(floats) * sizeof(float)));
    size_ = floats;
    device_ = DeviceKind::kCuda;
  }
  ~DeviceBuffer() override { cudaFree(data_); }
};

// A growable device array of T.
template <typename T>
class DeviceArray {
 public:
  ~DeviceArray() { cudaFree(p_); }
  // Copies n host elements in through the uploader (host data reusable at once); returns the device copy.
  T* Upload(const T* host, size_t n, CudaUploader& up) {
    Grow(n, up.stream());
    up.Upload(p_, host, n * sizeof(T));
    return p_;
  }
  T* Grow(size_t n, cudaStream_t s) {
    if (n > cap_) {
      RAZOR_CUDA_CHECK(cudaStreamSynchronize(s));
      cudaFree(p_);
      cap_ = std::max(n, 2 * cap_);
      RAZOR_CUDA_CHECK(cudaMalloc(&p_, cap_ * sizeof(T)));
    }
    return p_;
  }
  T* get() const { return p_; }

 private:
  T* p_ = nullptr;
  size_t cap_ = 0;
};

struct DeviceMatrix {
  uint16_t* bf16 = nullptr;  // [rows, cols]
  int64_t rows = 0, cols = 0;
};

uint64_t NameSeed(const std::string& name) { return std::hash<std::string>{}(name) | 1; }

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(MathMode mode) : mode_(mode) {
    RAZOR_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    RAZOR_CUBLAS_CHECK(cublasCreate(&cublas_));
    RAZOR_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
    RAZOR_CUDA_CHECK(cudaGetDeviceProperties(&props_, 0));
    uploader_ = std::make_shared<CudaUploader>(stream_);
    if (const char* e = std::getenv("RAZOR_CUDA_STATS"); e != nullptr && std::string(e) == "ops")
      timeline_ = std::make_unique<CudaOpTimeline>(stream_);
    uploader_->set_timeline(timeline_.get());
  }
  ~CudaBackend() override {
    cudaStreamSynchronize(stream_);
    if (stats_) PrintWaitStats();
    if (timeline_) timeline_->Print();
    uploader_->set_timeline(nullptr);
    timeline_.reset();
    for (auto& [k, m] : matrices_) cudaFree(m.bf16);
    for (auto& [k, v] : vectors_) cudaFree(v);
    uploader_.reset();
    cublasDestroy(cublas_);
    cudaStreamDestroy(stream_);
  }

  DeviceKind device() const override { return DeviceKind::kCuda; }
  std::string Describe() const override {
    return fmt::format("cuda, {} ({} SMs, {:.0f} GiB), bf16 weights, {}", props_.name, props_.multiProcessorCount,
                       props_.totalGlobalMem / double(1 << 30), gemv_ ? "razor GEMV + cuBLAS GEMM" : "cuBLAS");
  }
  MathMode math_mode() const override { return mode_; }
  int64_t preferred_chunk_tokens() const override { return 2048; }

  size_t FreeDeviceBytes() const override {
    size_t free = 0, total = 0;
    RAZOR_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    return free;
  }
  size_t TotalDeviceBytes() const override {
    size_t free = 0, total = 0;
    RAZOR_CUDA_CHECK(cudaMemGetInfo(&free, &total));
    return total;
  }

  Status PrepareWeights(const std::vector<const TensorView*>& matrices) override {
    for (const TensorView* w : matrices) RAZOR_RETURN_IF_ERROR(Upload(*w));
    RAZOR_CUDA_CHECK(cudaStreamSynchronize(stream_));
    return Status::Ok();
  }

  void Reserve(std::unique_ptr<Buffer>* b, int64_t floats) override {
    Forget();
    if (*b && (*b)->size() >= floats) return;
    RAZOR_CUDA_CHECK(cudaStreamSynchronize(stream_));  // the old buffer may still be read
    b->reset();
    *b = std::make_unique<DeviceBuffer>(std::max<int64_t>(floats, 1));
  }

  void ToHost(const float* src, int64_t n, float* host_dst) override {
    Forget();
    const auto t0 = stats_ ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    RAZOR_CUDA_CHECK(cudaMemcpyAsync(host_dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, stream_));
    RAZOR_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (timeline_) timeline_->EndStep();
    uploader_->Reset();
    if (!stats_) return;
    const auto t1 = std::chrono::steady_clock::now();
    // The host's wait here against the time since the last download: a decode step's share spent waiting for
    // the GPU (RAZOR_CUDA_STATS=1 prints them; near 0 means launching, not the GPU, bounds the step).
    if (last_download_ != std::chrono::steady_clock::time_point{}) {
      waits_us_[n_waits_ % kWaits] = std::chrono::duration<double, std::micro>(t1 - t0).count();
      spans_us_[n_waits_ % kWaits] = std::chrono::duration<double, std::micro>(t1 - last_download_).count();
      idle_us_[n_waits_ % kWaits] =
          first_launch_ > last_download_
              ? std::chrono::duration<double, std::micro>(first_launch_ - last_download_).count()
              : 0.0;
      ++n_waits_;
    }
    last_download_ = t1;
    first_launch_ = {};
  }

  void FromHost(const float* host_src, int64_t n, float* dst) override {
    Forget();
    RAZOR_CUDA_CHECK(cudaMemcpyAsync(dst, host_src, n * sizeof(float), cudaMemcpyHostToDevice, stream_));
    RAZOR_CUDA_CHECK(cudaStreamSynchronize(stream_));
    uploader_->Reset();
  }

  std::shared_ptr<KvBlockPool> NewKvPool(size_t block_bytes, size_t capacity_bytes,
                                         size_t keep_free_bytes) override {
    if (capacity_bytes == 0) {
      // Everything free but the activations to come and a margin for cuBLAS workspaces and step metadata.
      const size_t free_now = FreeDeviceBytes();
      const size_t free = free_now > keep_free_bytes ? free_now - keep_free_bytes : 0;
      const size_t margin = std::max<size_t>(size_t{2} << 30, free / 20);
      capacity_bytes = free > 2 * margin ? free - margin : free / 2;  // never 0: that means "host memory"
      capacity_bytes = std::max(capacity_bytes, block_bytes);
    }
    return std::make_shared<KvBlockPool>(block_bytes, KvBlockPoolOptions{.capacity_bytes = capacity_bytes},
                                         std::make_unique<CudaKvPoolMemory>(uploader_));
  }

  void Embed(const TensorView& table, const int32_t* tokens, int64_t n, float* x) override {
    Forget();
    if (stats_ && first_launch_ == std::chrono::steady_clock::time_point{})
      first_launch_ = std::chrono::steady_clock::now();  // a step's first call: the host's time since the download
    const DeviceMatrix& m = Matrix(table);
    const int32_t* d = tokens_.Upload(tokens, n, *uploader_);
    RAZOR_CUDA_CHECK(cuda::Embed(m.bf16, m.cols, d, n, x, stream_));
  }

  void MatMul(const TensorView& w, const float* x, int64_t m, float* y) override {
    const TensorView* ws[1] = {&w};
    float* ys[1] = {y};
    MatMuls(ws, 1, x, m, ys);
  }

  void MatMuls(const TensorView* const* ws, int n, const float* x, int64_t m, float* const* ys) override {
    if (Gemv(ws, n, x, m, ys, cuda::GemvInput{}, false)) return;
    for (int i = 0; i < n; ++i) GemmCublas(Matrix(*ws[i]), x, m, ys[i]);
  }

  void NormMatMuls(const float* x, int64_t m, int64_t dim, const std::vector<float>& gain,
                   const std::vector<float>& bias, bool layer_norm, float eps, float* xn, const TensorView* const* ws,
                   int n, float* const* ys) override {
    if (!layer_norm) {
      cuda::GemvInput in;
      in.kind = cuda::GemvInput::kRmsNorm;
      in.gain = Vector(gain);
      in.eps = eps;
      if (Gemv(ws, n, x, m, ys, in, false)) return;
    }
    Backend::NormMatMuls(x, m, dim, gain, bias, layer_norm, eps, xn, ws, n, ys);
  }

  void MatMulAdd(const TensorView& w, const float* a, int64_t m, float* proj, float* x) override {
    const TensorView* ws[1] = {&w};
    float* ys[1] = {x};
    if (Gemv(ws, 1, a, m, ys, cuda::GemvInput{}, true)) return;
    Backend::MatMulAdd(w, a, m, proj, x);
  }

  void SiluMulMatMulAdd(float* gate, const float* up, const TensorView& w, int64_t m, float* proj, float* x) override {
    const TensorView* ws[1] = {&w};
    float* ys[1] = {x};
    cuda::GemvInput in;
    in.kind = cuda::GemvInput::kSiluMul;
    in.up = up;
    if (Gemv(ws, 1, gate, m, ys, in, true)) return;
    Backend::SiluMulMatMulAdd(gate, up, w, m, proj, x);
  }

  void Norm(const float* x, int64_t m, int64_t n, const std::vector<float>& gain, const std::vector<float>& bias,
            bool layer_norm, float eps, float* out) override {
    Forget();
    RAZOR_CUDA_CHECK(cuda::Norm(x, m, n, Vector(gain), layer_norm ? Vector(bias) : nullptr, eps, out, stream_));
  }

  void HeadNorm(float* x, int64_t m, int heads, int head_dim, const std::vector<float>& gain, float eps) override {
    Forget();
    RAZOR_CUDA_CHECK(cuda::Norm(x, m * heads, head_dim, Vector(gain), nullptr, eps, x, stream_));
  }

  void AddBias(float* x, const std::vector<float>& bias, int64_t m, int64_t n) override {
    Forget();
    RAZOR_CUDA_CHECK(cuda::AddBias(x, Vector(bias), m, n, stream_));
  }
  void Add(float* x, const float* y, int64_t n) override {
    Forget();
    RAZOR_CUDA_CHECK(cuda::Add(x, y, n, stream_));
  }
  void SiluMul(float* gate, const float* up, int64_t n) override {
    Forget();
    RAZOR_CUDA_CHECK(cuda::SiluMul(gate, up, n, stream_));
  }
  void Gelu(float* x, int64_t n) override {
    Forget();
    RAZOR_CUDA_CHECK(cuda::Gelu(x, n, stream_));
  }
  void GeluMul(float* gate, const float* up, int64_t n) override {
    Forget();
    RAZOR_CUDA_CHECK(cuda::GeluMul(gate, up, n, stream_));
  }
  void Scale(float* x, float a, int64_t n) override {
    Forget();
    RAZOR_CUDA_CHECK(cuda::Scale(x, a, n, stream_));
  }

  void Rope(float* x, int64_t m, int64_t row_stride, int heads, int head_dim, RopeLayout layout, const float* cos,
            const float* sin) override {
    Forget();
    const size_t n = static_cast<size_t>(m) * (head_dim / 2);
    // The angles of q and k are the same, and a decode step's are the same in every layer: they go up only when
    // they change (a copy costs the stream a few microseconds; four a layer before). A prompt of several
    // chunks still uploads them once per layer and chunk (the layers run outside the chunks).
    if (rope_host_.size() != 2 * n || std::memcmp(rope_host_.data(), cos, n * sizeof(float)) != 0 ||
        std::memcmp(rope_host_.data() + n, sin, n * sizeof(float)) != 0) {
      rope_host_.assign(cos, cos + n);
      rope_host_.insert(rope_host_.end(), sin, sin + n);
      rope_angles_.Upload(rope_host_.data(), 2 * n, *uploader_);
    }
    const float* dc = rope_angles_.get();
    const float* ds = dc + n;
    RAZOR_CUDA_CHECK(cuda::Rope(x, m, row_stride, heads, head_dim, layout == RopeLayout::kInterleaved, dc, ds,
                                stream_));
  }

  void GatherColumns(const float* src, int64_t src_stride, int64_t m, const int64_t* cols, int n_segments, int seg,
                     float* dst, int64_t dst_stride) override {
    Forget();
    const int64_t* dc = cols_.Upload(cols, n_segments, *uploader_);
    RAZOR_CUDA_CHECK(cuda::GatherColumns(src, src_stride, m, dc, n_segments, seg, dst, dst_stride, stream_));
  }

  void Attend(const std::vector<AttentionItem>& items) override;

 private:
  Status Upload(const TensorView& w);
  const DeviceMatrix& Matrix(const TensorView& w) {
    auto it = matrices_.find(w.data ? static_cast<const void*>(w.data) : static_cast<const void*>(&w));
    if (it == matrices_.end()) {
      Status st = Upload(w);
      if (!st.ok()) {
        std::fprintf(stderr, "razor: %s\n", st.message().c_str());
        std::abort();
      }
      it = matrices_.find(w.data ? static_cast<const void*>(w.data) : static_cast<const void*>(&w));
    }
    return it->second;
  }
  // A weight vector's device copy, made on first use (on the stream: ordered before the kernel that reads it).
  // Keyed by address and length, so a vector freed and another allocated at its address never reuses it.
  const float* Vector(const std::vector<float>& v) {
    if (v.empty()) return nullptr;
    const auto key = std::make_pair(v.data(), v.size());
    auto it = vectors_.find(key);
    if (it != vectors_.end()) return it->second;
    float* d = nullptr;
    RAZOR_CUDA_CHECK(cudaMalloc(&d, v.size() * sizeof(float)));
    RAZOR_CUDA_CHECK(cudaMemcpyAsync(d, v.data(), v.size() * sizeof(float), cudaMemcpyHostToDevice, stream_));
    vectors_[key] = d;
    return d;
  }

  // Runs ys[i] (+)= f(x) · ws[i]ᵀ on a GEMV kernel when one takes these shapes (decode rows: m <= 2 on the
  // CUDA-core GEMV, 3..16 staged to bf16 and then on the tensor-core one; one width, 16-byte aligned rows); false
  // (nothing launched) otherwise.
  bool Gemv(const TensorView* const* ws, int n, const float* x, int64_t m, float* const* ys,
            const cuda::GemvInput& in, bool accumulate) {
    if (!gemv_ || n > cuda::kGemvMaxMatrices) return false;
    const int64_t cols = Matrix(*ws[0]).cols;
    const auto aligned = [](const void* p) { return reinterpret_cast<uintptr_t>(p) % 16 == 0; };
    if (!aligned(x) || (in.up && !aligned(in.up))) return false;
    const bool mma = m > cuda::kGemvMaxRows && m <= cuda::kGemvMmaMaxRows && cols % 8 == 0;
    if (!mma && !cuda::GemvFits(m, cols, props_.sharedMemPerBlockOptin)) return false;
    cuda::GemvMatrix mats[cuda::kGemvMaxMatrices];
    for (int i = 0; i < n; ++i) {
      const DeviceMatrix& d = Matrix(*ws[i]);
      if (d.cols != cols) return false;
      mats[i] = {d.bf16, ys[i], d.rows};
    }
    Forget();
    if (timeline_) timeline_->Relabel(fmt::format("Gemv {} x [{}, {}]{}", n, mats[0].rows, cols, in.up ? " silu*up" : ""));
    if (mma) {
      uint16_t* xb = act_bf16_.Grow(static_cast<size_t>(m * cols), stream_);
      RAZOR_CUDA_CHECK(cuda::StageGemvInput(x, m, cols, in, xb, stream_));
      RAZOR_CUDA_CHECK(cuda::GemvMma(mats, n, xb, m, cols, accumulate, stream_));
    } else {
      RAZOR_CUDA_CHECK(cuda::Gemv(mats, n, x, m, cols, in, accumulate, stream_));
    }
    return true;
  }

  // y[m, rows] = x[m, cols] · matᵀ on cuBLAS's tensor-core GEMM (x converted to bf16 first).
  void GemmCublas(const DeviceMatrix& mat, const float* x, int64_t m, float* y) {
    // Consecutive matmuls of one input (q / k / v, gate / up) convert it once: every other call of the backend
    // (the only writers of its buffers) forgets the converted copy.
    if (x != bf16_of_ || m * mat.cols != bf16_n_) {
      uint16_t* xb = act_bf16_.Grow(static_cast<size_t>(m * mat.cols), stream_);
      RAZOR_CUDA_CHECK(cuda::ToBf16(x, m * mat.cols, xb, stream_));
      bf16_of_ = x;
      bf16_n_ = m * mat.cols;
    }
    const uint16_t* xb = act_bf16_.get();
    // Row-major y[m, rows] = x[m, cols] · Wᵀ is column-major yᵀ[rows, m] = W[rows, cols] · xᵀ: W is a
    // column-major [cols, rows] matrix, transposed (OP_T); x is column-major [cols, m] (OP_N).
    const float alpha = 1.0f, beta = 0.0f;
    RAZOR_CUBLAS_CHECK(cublasGemmEx(cublas_, CUBLAS_OP_T, CUBLAS_OP_N, static_cast<int>(mat.rows),
                                    static_cast<int>(m), static_cast<int>(mat.cols), &alpha, mat.bf16, CUDA_R_16BF,
                                    static_cast<int>(mat.cols), xb, CUDA_R_16BF, static_cast<int>(mat.cols), &beta, y,
                                    CUDA_R_32F, static_cast<int>(mat.rows), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  }

  // Every operation begins here (op: its name, for RAZOR_CUDA_STATS=ops): the bf16 copy of an input is known
  // good only within one fused call.
  void Forget(const char* op = __builtin_FUNCTION()) {
    bf16_of_ = nullptr;
    if (timeline_) timeline_->Begin(op);
  }

  void PrintWaitStats() const {
    const int n = std::min(n_waits_, kWaits);
    if (n == 0) return;
    auto median = [n](const double* v) {
      std::vector<double> c(v, v + n);
      std::nth_element(c.begin(), c.begin() + n / 2, c.end());
      return c[n / 2];
    };
    std::fprintf(stderr,
                 "cuda stats: last %d downloads: median %.0f us apart, the host waiting %.0f us of it; %.0f us from "
                 "a download to the next step's first launch (the GPU idle)\n",
                 n, median(spans_us_), median(waits_us_), median(idle_us_));
  }

  // Offset in h_ints_ of the n ints at `host`, appended unless this step already staged that array (a view's
  // arrays do not change during a step, and one of n ints serves any item reading at most n of them).
  int32_t Staged(const int32_t* host, int64_t n, std::unordered_map<const int32_t*, std::pair<int32_t, int64_t>>* staged) {
    auto it = staged->find(host);
    if (it != staged->end() && it->second.second >= n) return it->second.first;
    const auto off = static_cast<int32_t>(h_ints_.size());
    h_ints_.insert(h_ints_.end(), host, host + n);
    (*staged)[host] = {off, n};
    return off;
  }

  MathMode mode_;
  // RAZOR_CUDA_PREFILL_KERNEL=split / RAZOR_CUDA_DECODE_KERNEL=split send prompt tiles / decode items to the
  // split kernel too (A/B runs and tests).
  static bool SplitKernelAsked(const char* variable) {
    const char* e = std::getenv(variable);
    return e != nullptr && std::string(e) == "split";
  }
  const bool tensor_core_prefill_ = !SplitKernelAsked("RAZOR_CUDA_PREFILL_KERNEL");
  const bool tensor_core_decode_ = !SplitKernelAsked("RAZOR_CUDA_DECODE_KERNEL");
  // A/B knobs for the key splits: RAZOR_CUDA_ATTN_CTAS (the CTAs a step's keys are spread over) and
  // RAZOR_CUDA_ATTN_MIN_KEYS (the fewest keys a split), unset: the defaults below.
  static int64_t EnvInt(const char* variable, int64_t otherwise) {
    const char* e = std::getenv(variable);
    return e != nullptr && std::atoll(e) > 0 ? std::atoll(e) : otherwise;
  }
  const int64_t attn_ctas_ = EnvInt("RAZOR_CUDA_ATTN_CTAS", 0);
  const int64_t attn_min_keys_ = EnvInt("RAZOR_CUDA_ATTN_MIN_KEYS", 128);
  // RAZOR_CUDA_GEMV=cublas sends decode rows to cuBLAS too (A/B runs and tests).
  const bool gemv_ = [] {
    const char* e = std::getenv("RAZOR_CUDA_GEMV");
    return e == nullptr || std::string(e) != "cublas";
  }();
  const float* bf16_of_ = nullptr;  // the fp32 buffer act_bf16_ holds a bf16 copy of (nullptr: none)
  int64_t bf16_n_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cudaDeviceProp props_{};
  std::shared_ptr<CudaUploader> uploader_;  // shared with the KV pools' memories
  const bool stats_ = std::getenv("RAZOR_CUDA_STATS") != nullptr;  // time the downloads (read once)
  std::unique_ptr<CudaOpTimeline> timeline_;  // RAZOR_CUDA_STATS=ops: GPU time per operation
  static constexpr int kWaits = 8;           // RAZOR_CUDA_STATS: the last downloads' waits and spacing
  double waits_us_[kWaits] = {}, spans_us_[kWaits] = {}, idle_us_[kWaits] = {};
  std::chrono::steady_clock::time_point first_launch_{};  // the first Embed since the last download
  int n_waits_ = 0;
  std::chrono::steady_clock::time_point last_download_{};
  // Weights by the address of their first byte (synthetic ones, which have none, by their TensorView).
  std::unordered_map<const void*, DeviceMatrix> matrices_;
  std::map<std::pair<const float*, size_t>, float*> vectors_;
  DeviceArray<uint16_t> act_bf16_;
  DeviceArray<int32_t> tokens_;
  std::vector<float> rope_host_;     // the angles last uploaded: cos [n], then sin [n]
  DeviceArray<float> rope_angles_;   // their device copy
  DeviceArray<int64_t> cols_;
  // Attention step metadata (host staging and device copies) and split partials.
  std::vector<cuda::AttnItem> h_items_;
  std::vector<int32_t> h_ints_;  // block ids, then visible counts, then positions
  std::vector<float> h_floats_;  // compensation rows, then biases
  // Host arrays already in h_ints_ this step, by address: their offset there.
  std::unordered_map<const int32_t*, std::pair<int32_t, int64_t>> blocks_staged_, positions_staged_;  // (offset, n)
  DeviceArray<uint8_t> d_meta_;  // the three above, one after the other (CudaUploader::UploadPieces)
  DeviceArray<float> partial_ml_, partial_acc_;
};

Status CudaBackend::Upload(const TensorView& w) {
  const void* key = w.data ? static_cast<const void*>(w.data) : static_cast<const void*>(&w);
  if (matrices_.count(key)) return Status::Ok();
  DeviceMatrix m;
  m.rows = w.rows();
  m.cols = w.cols();
  const size_t n = static_cast<size_t>(m.rows) * m.cols;
  if (cudaMalloc(&m.bf16, n * sizeof(uint16_t)) != cudaSuccess) {
    cudaGetLastError();
    return Err(fmt::format("the GPU has no room for weight {} ({} MiB as bf16; {} MiB free)", w.name,
                           (n * 2) >> 20, FreeDeviceBytes() >> 20));
  }
  if (w.data == nullptr) {
    // Synthetic: uniform with the variance of a 1/sqrt(cols) init, so activations stay finite.
    const float scale = std::sqrt(3.0f / static_cast<float>(m.cols));
    RAZOR_CUDA_CHECK(cuda::FillRandomBf16(m.bf16, static_cast<int64_t>(n), NameSeed(w.name), scale, stream_));
  } else if (w.type == TensorType::BF16) {
    RAZOR_CUDA_CHECK(cudaMemcpyAsync(m.bf16, w.data, n * sizeof(uint16_t), cudaMemcpyHostToDevice, stream_));
  } else {
    // Dequantize to fp32 on the host, round to bf16, copy in slabs of rows.
    const int64_t slab = std::max<int64_t>(1, (int64_t{16} << 20) / std::max<int64_t>(1, m.cols));
    std::vector<float> row(m.cols);
    std::vector<uint16_t> staged(static_cast<size_t>(std::min(slab, m.rows)) * m.cols);
    for (int64_t r0 = 0; r0 < m.rows; r0 += slab) {
      const int64_t r1 = std::min(m.rows, r0 + slab);
      for (int64_t r = r0; r < r1; ++r) {
        DequantizeRow(w.type, w.row(r), row.data(), m.cols);
        for (int64_t c = 0; c < m.cols; ++c) staged[(r - r0) * m.cols + c] = FloatToBfloat(row[c]);
      }
      // Pageable source: the call returns once `staged` is copied out, so the next slab may overwrite it.
      RAZOR_CUDA_CHECK(cudaMemcpyAsync(m.bf16 + r0 * m.cols, staged.data(), (r1 - r0) * m.cols * sizeof(uint16_t),
                                       cudaMemcpyHostToDevice, stream_));
    }
  }
  matrices_[key] = m;
  return Status::Ok();
}

void CudaBackend::Attend(const std::vector<AttentionItem>& items) {
  Forget();
  if (items.empty()) return;
  for (const AttentionItem& it : items)
    if (it.q.window > 0) {  // the engine refuses such models (MakeBackend); a wrong answer must not pass quietly
      std::fprintf(stderr, "razor: the CUDA attention kernels have no sliding window (window %d)\n", it.q.window);
      std::abort();
    }
  const AttentionQuery& q0 = items[0].q;
  const KvHeadView& kv0 = items[0].kv;
  const int D = q0.head_dim;
  // Every item's q / out lie in one buffer each (the transformer's); offsets from the lowest address.
  const float* q_base = q0.q;
  float* out_base = q0.out;
  // Prompt tiles without a compensation token or ALiBi go to the tensor-core kernel (unless disabled).
  auto on_tensor_cores = [&](const AttentionItem& it) {
    return tensor_core_prefill_ && it.q.n_tokens > 1 && it.kv.comp_count == 0 && it.q.alibi_slopes == nullptr &&
           cuda::PrefillTensorCoreHeadDim(D) && it.q.n_tokens * it.q.n_group_heads <= cuda::PrefillTensorCoreMaxRows();
  };
  // Decode items (one token, no ALiBi) of f16 / bf16 storage go to the tensor-core decode kernel.
  auto on_decode_tensor_cores = [&](const AttentionItem& it) {
    return tensor_core_decode_ && it.q.n_tokens == 1 && it.q.alibi_slopes == nullptr &&
           cuda::DecodeTensorCoreFits(D, static_cast<int>(it.kv.type), it.q.n_group_heads,
                                      props_.sharedMemPerBlockOptin);
  };
  int max_group = 1, max_tokens = 1, max_visible = 1;
  int64_t total_keys = 0;  // keys the split kernel's items read (a bound: visible <= len)
  for (const AttentionItem& it : items) {
    q_base = std::min(q_base, it.q.q);
    out_base = std::min(out_base, it.q.out);
    max_group = std::max(max_group, it.q.n_group_heads);
    max_tokens = std::max<int>(max_tokens, static_cast<int>(it.q.n_tokens));
    if (on_tensor_cores(it)) continue;
    max_visible = std::max<int>(max_visible, static_cast<int>(it.kv.len));
    total_keys += it.q.n_tokens * (it.kv.len + 1);
  }
  // Keys per split: all the step's keys over about two waves of CTAs (three fit on a multiprocessor), so that
  // a ragged step (4K-token window heads beside 1M-token retrieval heads, or many sequences) splits the long
  // heads most (one wave, 264 CTAs on an H100, measured 1-2 % faster at batch 8-16: within noise, not taken;
  // docs/BENCHMARKS.md); at least 128 keys a split, at most 256 splits per query (the combine kernel keeps one weight
  // per split and head in shared memory).
  const int64_t want_ctas = attn_ctas_ > 0 ? attn_ctas_ : 2LL * props_.multiProcessorCount * 3;
  int64_t keys = std::max<int64_t>(
      {attn_min_keys_, (total_keys + want_ctas - 1) / want_ctas, (max_visible + 255) / 256});
  int split_keys = static_cast<int>((keys + 63) / 64 * 64);

  h_items_.clear();
  h_ints_.clear();
  h_floats_.clear();
  blocks_staged_.clear();
  positions_staged_.clear();
  // One pass filling the host arrays: ints (blocks, visible counts, positions), floats (comp rows, biases).
  int32_t slots = 0, max_splits = 1;
  bool any_tc = false, any_decode_tc = false, any_split = false;
  for (const AttentionItem& it : items) {
    const KvHeadView& kv = it.kv;
    const AttentionQuery& q = it.q;
    cuda::AttnItem d{};
    d.q_off = q.q - q_base;
    d.out_off = q.out - out_base;
    d.n_tokens = static_cast<int32_t>(q.n_tokens);
    d.n_group_heads = q.n_group_heads;
    d.len = static_cast<int32_t>(kv.len);
    d.first_row = static_cast<int32_t>(kv.first_row);
    // A head's block table goes up once per step, however many query tiles read it (a 1M-token prompt chunk
    // has 128 tiles per head, each over the same table).
    const int64_t nblocks = kv.block_tokens ? (kv.first_row + kv.len + kv.block_tokens - 1) / kv.block_tokens : 0;
    d.blocks_off = Staged(kv.block_ids, nblocks, &blocks_staged_);
    d.visible_off = static_cast<int32_t>(h_ints_.size());
    int most = 0;
    for (int64_t t = 0; t < q.n_tokens; ++t) {
      const int32_t vis = static_cast<int32_t>(VisibleKeys(kv, q.positions[t]));
      h_ints_.push_back(vis);
      most = std::max(most, vis);
    }
    d.tc = on_tensor_cores(it) ? 1 : on_decode_tensor_cores(it) ? 2 : 0;
    any_tc |= d.tc == 1;
    any_decode_tc |= d.tc == 2;
    any_split |= d.tc == 0;
    d.splits = d.tc == 1 ? 0 : std::max(1, (most + split_keys - 1) / split_keys);
    max_splits = std::max(max_splits, d.splits);
    d.partial_off = slots;
    slots += d.n_tokens * d.splits;
    d.alibi_off = d.key_pos_off = d.query_pos_off = -1;
    if (q.alibi_slopes) {
      d.alibi_off = static_cast<int32_t>(h_floats_.size());
      h_floats_.insert(h_floats_.end(), q.alibi_slopes, q.alibi_slopes + q.n_group_heads);
      if (kv.positions) {
        d.key_pos_off = Staged(kv.positions, kv.len, &positions_staged_);
      } else {
        d.key_pos_off = static_cast<int32_t>(h_ints_.size());
        for (int64_t j = 0; j < kv.len; ++j) h_ints_.push_back(static_cast<int32_t>(j));
      }
      d.query_pos_off = static_cast<int32_t>(h_ints_.size());
      h_ints_.insert(h_ints_.end(), q.positions, q.positions + q.n_tokens);
    }
    d.comp_off = -1;
    if (kv.comp_count > 0) {
      d.comp_off = static_cast<int32_t>(h_floats_.size());
      h_floats_.insert(h_floats_.end(), kv.comp_k, kv.comp_k + D);
      h_floats_.insert(h_floats_.end(), kv.comp_v, kv.comp_v + D);
      d.comp_bias_off = static_cast<int32_t>(h_floats_.size());
      // -inf where the query does not see it yet (a logit that adds nothing).
      for (int64_t t = 0; t < q.n_tokens; ++t)
        for (int g = 0; g < q.n_group_heads; ++g)
          h_floats_.push_back(CompensationVisible(kv, q.positions[t]) ? CompensationBias(kv, q, g, q.positions[t])
                                                                      : -INFINITY);
    }
    h_items_.push_back(d);
  }
  cuda::AttnStep st{};
  st.q = q_base;
  st.out = out_base;
  st.q_stride = q0.q_token_stride;
  st.out_stride = q0.out_token_stride;
  st.pool_base = kv0.pool_base;
  st.block_bytes = static_cast<int64_t>(kv0.block_bytes);
  st.block_tokens = static_cast<int32_t>(kv0.block_tokens);
  st.block_shift = -1;
  for (int b = 0; b < 31; ++b)
    if ((int64_t{1} << b) == kv0.block_tokens) st.block_shift = b;
  st.head_dim = D;
  st.kv_type = static_cast<int32_t>(kv0.type);
  st.split_keys = split_keys;
  st.scale = q0.scale;
  st.n_items = static_cast<int32_t>(items.size());
  st.max_tokens = max_tokens;
  st.max_splits = max_splits;
  st.max_group = max_group;
  // The step's tables go up in one copy (each copy costs the stream a few microseconds, twice a layer).
  const CudaUploader::Piece pieces[3] = {{h_items_.data(), h_items_.size() * sizeof(cuda::AttnItem)},
                                         {h_ints_.data(), h_ints_.size() * sizeof(int32_t)},
                                         {h_floats_.data(), h_floats_.size() * sizeof(float)}};
  uint8_t* meta = d_meta_.Grow(CudaUploader::PiecesBytes(pieces, 3), stream_);
  size_t at[3];
  uploader_->UploadPieces(meta, pieces, 3, at);
  st.items = reinterpret_cast<const cuda::AttnItem*>(meta + at[0]);
  const auto* ints = reinterpret_cast<const int32_t*>(meta + at[1]);
  st.block_ids = st.visible = st.positions = ints;
  const auto* floats = reinterpret_cast<const float*>(meta + at[2]);
  st.comp = st.bias = floats;
  st.partial_ml = partial_ml_.Grow(static_cast<size_t>(std::max(slots, 1)) * max_group * 2, stream_);
  st.partial_acc = partial_acc_.Grow(static_cast<size_t>(std::max(slots, 1)) * max_group * D, stream_);
  if (timeline_) timeline_->Begin("Attend kernels");
  if (any_split || any_decode_tc) RAZOR_CUDA_CHECK(cuda::Attend(st, stream_, any_split, any_decode_tc));
  if (any_tc) RAZOR_CUDA_CHECK(cuda::AttendPrefill(st, stream_));
}

}  // namespace

bool CudaDeviceAvailable(std::string* why) {
  int n = 0;
  const cudaError_t e = cudaGetDeviceCount(&n);
  if (e != cudaSuccess) {
    if (why) *why = fmt::format("no usable CUDA driver or device ({})", cudaGetErrorString(e));
    cudaGetLastError();
    return false;
  }
  if (n == 0) {
    if (why) *why = "no CUDA device";
    return false;
  }
  // The build holds sm_90a code and compute_90 PTX: only Hopper (compute capability 9.x) or newer runs it.
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) {
    cudaGetLastError();
    if (why) *why = "cannot read the CUDA device's properties";
    return false;
  }
  if (p.major < 9) {
    if (why)
      *why = fmt::format("{} has compute capability {}.{}; this build runs on 9.0 (Hopper) or newer", p.name, p.major,
                         p.minor);
    return false;
  }
  return true;
}

double MeasureCudaCopyBandwidth() {
  const size_t bytes = size_t{2} << 30;
  void *a = nullptr, *b = nullptr;
  if (cudaMalloc(&a, bytes) != cudaSuccess || cudaMalloc(&b, bytes) != cudaSuccess) {
    cudaGetLastError();
    cudaFree(a);
    return 0.0;
  }
  RAZOR_CUDA_CHECK(cudaMemset(a, 1, bytes));
  cudaEvent_t e0, e1;
  RAZOR_CUDA_CHECK(cudaEventCreate(&e0));
  RAZOR_CUDA_CHECK(cudaEventCreate(&e1));
  std::vector<float> ms;
  for (int i = 0; i < 12; ++i) {
    RAZOR_CUDA_CHECK(cudaEventRecord(e0));
    RAZOR_CUDA_CHECK(cudaMemcpyAsync(i % 2 ? a : b, i % 2 ? b : a, bytes, cudaMemcpyDeviceToDevice));
    RAZOR_CUDA_CHECK(cudaEventRecord(e1));
    RAZOR_CUDA_CHECK(cudaEventSynchronize(e1));
    float t = 0;
    RAZOR_CUDA_CHECK(cudaEventElapsedTime(&t, e0, e1));
    if (i >= 2) ms.push_back(t);  // two warm-ups
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  cudaFree(a);
  cudaFree(b);
  std::sort(ms.begin(), ms.end());
  return 2.0 * bytes / (ms[ms.size() / 2] * 1e-3);
}

Result<std::unique_ptr<Backend>> MakeCudaBackend(MathMode mode) {
  std::string why;
  if (!CudaDeviceAvailable(&why)) return Err(fmt::format("--device cuda: {}", why));
  return std::unique_ptr<Backend>(new CudaBackend(mode));
}

}  // namespace razor
