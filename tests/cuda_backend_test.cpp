// Every CUDA backend kernel against the CPU backend (the reference) on random inputs at several shapes:
// elementwise ops, norms, RoPE, column gathers, embedding rows and matmuls (bf16 on the GPU: normalized MSE
// <= 5e-4), and attention over ragged paged per-head KV — RazorAttention caches with compressed heads, an
// offset first row after decode folding and compensation tokens, in f32 / f16 / bf16 storage — where the two
// caches' integer bookkeeping must be identical and the outputs agree to fp32 rounding. Skips without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <list>
#include <random>
#include <string>
#include <vector>

#include "core/fp16.h"
#include "core/thread_pool.h"
#include "cuda/cuda_backend.h"
#include "kv/razor_kv_cache.h"
#include "ops/cpu_backend.h"

namespace razor {
namespace {

// ||got - want||² / ||want||²
double Nmse(const std::vector<float>& got, const std::vector<float>& want) {
  EXPECT_EQ(got.size(), want.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size() && i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += double(want[i]) * want[i];
  }
  return den > 0 ? num / den : num;
}

std::vector<float> Random(size_t n, std::mt19937& rng, float scale = 1.0f) {
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = nd(rng);
  return v;
}

class CudaBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string why;
    if (!CudaDeviceAvailable(&why)) GTEST_SKIP() << "no GPU: " << why;
    auto g = MakeCudaBackend(MathMode::kFast);
    ASSERT_TRUE(g.ok()) << g.error();
    gpu_ = std::move(g).value();
  }
  // A device buffer holding `host` (poisoned first: NaN beyond it).
  float* Dev(const std::vector<float>& host) {
    bufs_.emplace_back();
    gpu_->Reserve(&bufs_.back(), static_cast<int64_t>(host.size()) + 16);
    std::vector<float> poison(host.size() + 16, NAN);
    gpu_->FromHost(poison.data(), poison.size(), bufs_.back()->data());
    gpu_->FromHost(host.data(), host.size(), bufs_.back()->data());
    return bufs_.back()->data();
  }
  std::vector<float> Host(const float* dev, size_t n) {
    std::vector<float> h(n);
    gpu_->ToHost(dev, n, h.data());
    return h;
  }

  ThreadPool pool_{2};
  CpuBackend cpu_{pool_, MathMode::kExact};
  std::unique_ptr<Backend> gpu_;
  std::vector<std::unique_ptr<Buffer>> bufs_;
  std::mt19937 rng_{1234};
};

TEST_F(CudaBackendTest, ElementwiseNormsRopeAndGathersMatchTheCpu) {
  for (auto [m, n] : {std::pair<int64_t, int64_t>{1, 64}, {7, 576}, {33, 4096}}) {
    const std::string at = std::to_string(m) + "x" + std::to_string(n);
    const auto x = Random(m * n, rng_, 3.0f), y = Random(m * n, rng_);
    const auto gain = Random(n, rng_), bias = Random(n, rng_);
    for (bool layer : {false, true}) {
      std::vector<float> want(m * n);
      cpu_.Norm(x.data(), m, n, gain, layer ? bias : std::vector<float>{}, layer, 1e-5f, want.data());
      float* dx = Dev(x);
      float* dout = Dev(std::vector<float>(m * n, 0.0f));
      gpu_->Norm(dx, m, n, gain, layer ? bias : std::vector<float>{}, layer, 1e-5f, dout);
      EXPECT_LE(Nmse(Host(dout, m * n), want), 1e-10) << (layer ? "LayerNorm " : "RMSNorm ") << at;
    }
    {
      auto want = x;
      cpu_.AddBias(want.data(), bias, m, n);
      float* d = Dev(x);
      gpu_->AddBias(d, bias, m, n);
      EXPECT_LE(Nmse(Host(d, m * n), want), 1e-12) << "AddBias " << at;
    }
    {
      auto want = x;
      cpu_.Add(want.data(), y.data(), m * n);
      float* d = Dev(x);
      gpu_->Add(d, Dev(y), m * n);
      EXPECT_LE(Nmse(Host(d, m * n), want), 1e-12) << "Add " << at;
    }
    {
      auto want = x;
      cpu_.SiluMul(want.data(), y.data(), m * n);
      float* d = Dev(x);
      gpu_->SiluMul(d, Dev(y), m * n);
      EXPECT_LE(Nmse(Host(d, m * n), want), 1e-10) << "SiluMul " << at;
    }
    {
      auto want = x;
      cpu_.Gelu(want.data(), m * n);
      float* d = Dev(x);
      gpu_->Gelu(d, m * n);
      EXPECT_LE(Nmse(Host(d, m * n), want), 1e-10) << "Gelu " << at;
    }
    {
      auto want = x;
      cpu_.GeluMul(want.data(), y.data(), m * n);
      float* d = Dev(x);
      gpu_->GeluMul(d, Dev(y), m * n);
      EXPECT_LE(Nmse(Host(d, m * n), want), 1e-10) << "GeluMul " << at;
    }
    {
      auto want = x;
      cpu_.Scale(want.data(), 25.2982f, m * n);
      float* d = Dev(x);
      gpu_->Scale(d, 25.2982f, m * n);
      EXPECT_LE(Nmse(Host(d, m * n), want), 1e-12) << "Scale " << at;
    }
  }
  // QK-norm and RoPE on [m, heads, head_dim] rows with a wider row stride; both pair layouts.
  for (auto [m, heads, hd] : {std::tuple<int64_t, int, int>{1, 3, 64}, {19, 4, 128}, {5, 2, 16}}) {
    const int64_t stride = heads * hd + 8;
    const auto x = Random(m * stride, rng_);
    const auto gain = Random(hd, rng_);
    {
      std::vector<float> dense(m * heads * hd);
      std::copy_n(x.begin(), dense.size(), dense.begin());
      auto want = dense;
      cpu_.HeadNorm(want.data(), m, heads, hd, gain, 1e-6f);
      float* d = Dev(dense);
      gpu_->HeadNorm(d, m, heads, hd, gain, 1e-6f);
      EXPECT_LE(Nmse(Host(d, dense.size()), want), 1e-10) << "HeadNorm";
    }
    std::uniform_real_distribution<float> angle(-3.0f, 3.0f);
    std::vector<float> cs(m * hd / 2), sn(cs.size());
    for (size_t i = 0; i < cs.size(); ++i) {
      const float a = angle(rng_);
      cs[i] = std::cos(a);
      sn[i] = std::sin(a);
    }
    for (RopeLayout layout : {RopeLayout::kInterleaved, RopeLayout::kHalfSplit}) {
      auto want = x;
      cpu_.Rope(want.data(), m, stride, heads, hd, layout, cs.data(), sn.data());
      float* d = Dev(x);
      gpu_->Rope(d, m, stride, heads, hd, layout, cs.data(), sn.data());
      EXPECT_LE(Nmse(Host(d, x.size()), want), 1e-12) << "Rope " << static_cast<int>(layout);
    }
    // The backend keeps the angles it uploaded while they stay the same: new angles at the same host address
    // (the transformer's next chunk) must still reach the device.
    for (size_t i = 0; i < cs.size(); ++i) std::swap(cs[i], sn[i]);
    {
      auto want = x;
      cpu_.Rope(want.data(), m, stride, heads, hd, RopeLayout::kHalfSplit, cs.data(), sn.data());
      float* d = Dev(x);
      gpu_->Rope(d, m, stride, heads, hd, RopeLayout::kHalfSplit, cs.data(), sn.data());
      EXPECT_LE(Nmse(Host(d, x.size()), want), 1e-12) << "Rope after the angles changed in place";
    }
    // BLOOM's split of a fused projection: `heads` segments of hd columns from scattered sources.
    std::vector<int64_t> cols;
    for (int h = 0; h < heads; ++h) cols.push_back((heads - 1 - h) * hd + (h % 2) * 4);
    std::vector<float> want(m * heads * hd), src = Random(m * stride, rng_);
    cpu_.GatherColumns(src.data(), stride, m, cols.data(), heads, hd, want.data(), heads * hd);
    float* d = Dev(std::vector<float>(want.size(), 0.0f));
    gpu_->GatherColumns(Dev(src), stride, m, cols.data(), heads, hd, d, heads * hd);
    EXPECT_EQ(Host(d, want.size()), want) << "GatherColumns";
  }
}

// A weight of `type` holding `values` ([rows, cols] fp32, rounded to the type), as a loader would map it.
struct OwnedWeight {
  std::vector<uint8_t> bytes;
  TensorView view;
};
OwnedWeight MakeWeight(TensorType type, int64_t rows, int64_t cols, const std::vector<float>& values,
                       const std::string& name) {
  OwnedWeight w;
  w.bytes.resize(static_cast<size_t>(rows * cols) * (type == TensorType::F32 ? 4 : 2));
  for (int64_t i = 0; i < rows * cols; ++i) {
    if (type == TensorType::F32) std::memcpy(&w.bytes[i * 4], &values[i], 4);
    else {
      const uint16_t h = type == TensorType::F16 ? FloatToHalf(values[i]) : FloatToBfloat(values[i]);
      std::memcpy(&w.bytes[i * 2], &h, 2);
    }
  }
  w.view.name = name;
  w.view.type = type;
  w.view.shape = {cols, rows};
  w.view.data = w.bytes.data();
  w.view.nbytes = w.bytes.size();
  return w;
}

TEST_F(CudaBackendTest, MatMulAndEmbeddingMatchTheCpuInBf16Bounds) {
  // Weights stay alive for the backend's lifetime, as a mapped checkpoint does (the backend keeps device copies
  // keyed by their host address).
  std::vector<std::unique_ptr<OwnedWeight>> keep;
  for (TensorType type : {TensorType::F32, TensorType::F16, TensorType::BF16}) {
    for (auto [m, rows, cols] : {std::tuple<int64_t, int64_t, int64_t>{1, 256, 512}, {5, 384, 64}, {64, 1000, 576}}) {
      const std::string at = std::string(TensorTypeName(type)) + " " + std::to_string(m) + "x" +
                             std::to_string(rows) + "x" + std::to_string(cols);
      keep.push_back(std::make_unique<OwnedWeight>(MakeWeight(type, rows, cols, Random(rows * cols, rng_, 0.05f), at)));
      const OwnedWeight& w = *keep.back();
      const auto x = Random(m * cols, rng_);
      std::vector<float> want(m * rows);
      cpu_.MatMul(w.view, x.data(), m, want.data());
      float* dy = Dev(std::vector<float>(m * rows, 0.0f));
      gpu_->MatMul(w.view, Dev(x), m, dy);
      const double e = Nmse(Host(dy, want.size()), want);
      EXPECT_LE(e, 5e-4) << "MatMul " << at;
      EXPECT_GT(e, 0.0) << "MatMul " << at << ": bf16 activations cannot be exact";  // the GPU path really ran
    }
    keep.push_back(std::make_unique<OwnedWeight>(MakeWeight(type, 50, 64, Random(50 * 64, rng_), "embd")));
    const OwnedWeight& table = *keep.back();
    const std::vector<int32_t> tokens = {3, 49, 0, 3, 17};
    std::vector<float> want(tokens.size() * 64);
    cpu_.Embed(table.view, tokens.data(), tokens.size(), want.data());
    float* d = Dev(std::vector<float>(want.size(), 0.0f));
    gpu_->Embed(table.view, tokens.data(), tokens.size(), d);
    EXPECT_LE(Nmse(Host(d, want.size()), want), 5e-4) << "Embed " << TensorTypeName(type);
  }
}

// Decode-row matmuls (the GEMV kernels, several matrices of one input per launch: m <= 2 on CUDA cores, 3..16 on
// tensor cores) against the CPU in the bf16 bound, and against cuBLAS's GEMM on the same bf16-rounded inputs
// (RAZOR_CUDA_GEMV=cublas) to fp32 summation order; shapes with ragged row counts (a warp's two rows or a 16-row
// tile in different matrices, a last block part full), widths that end inside a 32-column group or leave warps
// without columns, the widest FFN input, both n-tile counts, and the fallbacks to cuBLAS (m = 17, cols not a
// multiple of 8).
TEST_F(CudaBackendTest, DecodeRowMatMulsMatchTheCpuAndCublas) {
  EXPECT_NE(gpu_->Describe().find("razor GEMV"), std::string::npos) << gpu_->Describe();
  setenv("RAZOR_CUDA_GEMV", "cublas", 1);
  auto made = MakeCudaBackend(MathMode::kFast);
  unsetenv("RAZOR_CUDA_GEMV");
  ASSERT_TRUE(made.ok()) << made.error();
  std::unique_ptr<Backend> cublas = std::move(made).value();
  EXPECT_EQ(cublas->Describe().find("razor GEMV"), std::string::npos) << cublas->Describe();

  struct Case {
    int64_t m, cols;
    std::vector<int64_t> rows;
  };
  const std::vector<Case> cases = {{1, 4096, {4096, 1024, 1024}}, {1, 14336, {40}},    {2, 576, {576, 192, 192}},
                                   {2, 64, {37, 1, 250}},          {4, 1536, {1536, 1536}}, {5, 576, {100}},
                                   {6, 576, {17, 15}},             {1, 128, {3, 3, 3}},  {8, 4096, {300, 17}},
                                   {9, 576, {64, 64}},             {1, 60, {33}},        {3, 128, {3, 3, 3}},
                                   {7, 64, {37, 1, 250}},          {4, 72, {20}},        {12, 4096, {300, 17}},
                                   {16, 14336, {40}},              {16, 576, {576, 192, 192}}, {17, 576, {64}}};
  std::vector<std::unique_ptr<OwnedWeight>> keep;
  for (const Case& c : cases) {
    std::string at = std::to_string(c.m) + "x" + std::to_string(c.cols) + " ->";
    for (int64_t r : c.rows) at += " " + std::to_string(r);
    const auto x = Random(c.m * c.cols, rng_);
    const float* dx = Dev(x);
    std::vector<const TensorView*> ws;
    std::vector<float*> ys, ys_cublas;
    std::vector<std::vector<float>> want;
    for (int64_t rows : c.rows) {
      keep.push_back(std::make_unique<OwnedWeight>(
          MakeWeight(TensorType::BF16, rows, c.cols, Random(rows * c.cols, rng_, 0.05f), at + std::to_string(ws.size()))));
      ws.push_back(&keep.back()->view);
      want.emplace_back(c.m * rows);
      cpu_.MatMul(*ws.back(), x.data(), c.m, want.back().data());
      ys.push_back(Dev(std::vector<float>(c.m * rows, NAN)));
      ys_cublas.push_back(Dev(std::vector<float>(c.m * rows, NAN)));
    }
    gpu_->MatMuls(ws.data(), static_cast<int>(ws.size()), dx, c.m, ys.data());
    cublas->MatMuls(ws.data(), static_cast<int>(ws.size()), dx, c.m, ys_cublas.data());
    for (size_t i = 0; i < ws.size(); ++i) {
      const auto got = Host(ys[i], want[i].size());
      std::vector<float> ref(want[i].size());
      cublas->ToHost(ys_cublas[i], ref.size(), ref.data());
      const double e = Nmse(got, want[i]);
      EXPECT_LE(e, 5e-4) << at << " matrix " << i;
      EXPECT_GT(e, 0.0) << at << " matrix " << i << ": bf16 activations cannot be exact";
      float peak = 0;
      for (float v : ref) peak = std::max(peak, std::fabs(v));
      for (size_t j = 0; j < ref.size(); ++j)
        ASSERT_NEAR(got[j], ref[j], 2e-5f * peak + 1e-6f) << at << " matrix " << i << " element " << j;
    }
  }
}

// The fused decode forms (RMSNorm into the matmuls' input pass, SwiGLU's silu(gate) * up likewise, the residual
// add into their output) against the CPU's unfused calls in the bf16 bound and against the GPU's unfused calls
// (RAZOR_CUDA_GEMV=cublas) to fp32 rounding, on both GEMV kernels (m <= 2, 3..16); the fallbacks (m > 16, a
// width not a multiple of 8) too.
TEST_F(CudaBackendTest, FusedNormSiluAndResidualMatMulsMatchTheUnfusedCalls) {
  setenv("RAZOR_CUDA_GEMV", "cublas", 1);
  auto made = MakeCudaBackend(MathMode::kFast);
  unsetenv("RAZOR_CUDA_GEMV");
  ASSERT_TRUE(made.ok()) << made.error();
  std::unique_ptr<Backend> unfused = std::move(made).value();
  std::vector<std::unique_ptr<OwnedWeight>> keep;
  const auto weight = [&](int64_t rows, int64_t cols) {
    keep.push_back(std::make_unique<OwnedWeight>(
        MakeWeight(TensorType::BF16, rows, cols, Random(rows * cols, rng_, 0.05f), "w" + std::to_string(keep.size()))));
    return &keep.back()->view;
  };
  // got (fused GPU) against want (CPU) and ref (unfused GPU).
  const auto compare = [&](const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& ref,
                           const std::string& at) {
    EXPECT_LE(Nmse(got, want), 5e-4) << at;
    float peak = 0;
    for (float v : ref) peak = std::max(peak, std::fabs(v));
    for (size_t j = 0; j < ref.size(); ++j) ASSERT_NEAR(got[j], ref[j], 2e-5f * peak + 1e-6f) << at << " element " << j;
  };
  std::list<std::vector<float>> gains;
  struct NormCase {
    int64_t m, dim;
    std::vector<int64_t> rows;
  };
  for (const NormCase& c : std::vector<NormCase>{{1, 4096, {4096, 1024, 1024}}, {3, 576, {576, 192, 192}},
                                                 {2, 1536, {37, 1, 250}}, {8, 576, {1536, 1536}}, {2, 60, {33, 7}},
                                                 {16, 4096, {600, 100}}, {11, 576, {40}}, {20, 576, {64}}}) {
    const std::string at = "NormMatMuls " + std::to_string(c.m) + "x" + std::to_string(c.dim);
    // The backend keeps weight vectors by address and length, as a loaded model's live for its lifetime: a gain
    // freed at the end of an iteration could come back at the same address with another case's values.
    const auto x = Random(c.m * c.dim, rng_, 2.0f);
    const std::vector<float>& gain = gains.emplace_back(Random(c.dim, rng_));
    std::vector<const TensorView*> ws;
    std::vector<std::vector<float>> want;
    std::vector<float*> ys, ys_ref, ys_cpu;
    for (int64_t r : c.rows) {
      ws.push_back(weight(r, c.dim));
      want.emplace_back(c.m * r);
      ys_cpu.push_back(want.back().data());
      ys.push_back(Dev(std::vector<float>(c.m * r, NAN)));
      ys_ref.push_back(Dev(std::vector<float>(c.m * r, NAN)));
    }
    std::vector<float> xn(c.m * c.dim);
    cpu_.NormMatMuls(x.data(), c.m, c.dim, gain, {}, false, 1e-5f, xn.data(), ws.data(), int(ws.size()), ys_cpu.data());
    const float* dx = Dev(x);
    gpu_->NormMatMuls(dx, c.m, c.dim, gain, {}, false, 1e-5f, Dev(xn), ws.data(), int(ws.size()), ys.data());
    unfused->NormMatMuls(dx, c.m, c.dim, gain, {}, false, 1e-5f, Dev(xn), ws.data(), int(ws.size()), ys_ref.data());
    for (size_t i = 0; i < ws.size(); ++i) {
      std::vector<float> ref(want[i].size());
      unfused->ToHost(ys_ref[i], ref.size(), ref.data());
      compare(Host(ys[i], want[i].size()), want[i], ref, at + " matrix " + std::to_string(i));
    }
  }
  struct AddCase {
    int64_t m, cols, rows;
  };
  for (bool silu : {false, true}) {
    for (const AddCase& c : std::vector<AddCase>{{1, 4096, 4096}, {1, 14336, 256}, {2, 1536, 37}, {2, 64, 40},
                                                 {5, 576, 64}, {2, 60, 33}, {8, 14336, 300},
                                                 {13, 1536, 37}, {17, 576, 64}}) {
      const std::string at = std::string(silu ? "SiluMulMatMulAdd " : "MatMulAdd ") + std::to_string(c.m) + "x" +
                             std::to_string(c.cols) + " -> " + std::to_string(c.rows);
      const TensorView* w = weight(c.rows, c.cols);
      const auto a = Random(c.m * c.cols, rng_, 2.0f), up = Random(c.m * c.cols, rng_), x0 = Random(c.m * c.rows, rng_);
      std::vector<float> want = x0, a_cpu = a, proj(c.m * c.rows);
      float* dx = Dev(x0);
      float* dx_ref = Dev(x0);
      if (silu) {
        cpu_.SiluMulMatMulAdd(a_cpu.data(), up.data(), *w, c.m, proj.data(), want.data());
        gpu_->SiluMulMatMulAdd(Dev(a), Dev(up), *w, c.m, Dev(proj), dx);
        unfused->SiluMulMatMulAdd(Dev(a), Dev(up), *w, c.m, Dev(proj), dx_ref);
      } else {
        cpu_.MatMulAdd(*w, a.data(), c.m, proj.data(), want.data());
        gpu_->MatMulAdd(*w, Dev(a), c.m, Dev(proj), dx);
        unfused->MatMulAdd(*w, Dev(a), c.m, Dev(proj), dx_ref);
      }
      std::vector<float> ref(want.size());
      unfused->ToHost(dx_ref, ref.size(), ref.data());
      compare(Host(dx, want.size()), want, ref, at);
    }
  }
}

// Deterministic K/V rows of (layer, head, position, dim), as the razor cache tests make them.
float Synth(int kv, int l, int h, int64_t p, int i) {
  uint64_t x = 0x9E3779B97F4A7C15ull ^ (uint64_t(kv) << 62) ^ (uint64_t(l) << 52) ^ (uint64_t(h) << 44) ^
               (uint64_t(p) << 12) ^ uint64_t(i);
  x ^= x >> 30; x *= 0xBF58476D1CE4E5B9ull; x ^= x >> 27; x *= 0x94D049BB133111EBull; x ^= x >> 31;
  return static_cast<float>(x >> 40) / static_cast<float>(1 << 23) - 1.0f;
}

struct AttnCase {
  int layers, kv_heads, group, head_dim;
  KvType type;
  int64_t prompt, decodes;
  bool razor;
};

TEST_F(CudaBackendTest, AttentionOverRaggedPagedCompressedHeadsMatchesTheCpu) {
  const AttnCase cases[] = {
      {2, 3, 3, 64, KvType::kF32, 300, 0, false},    // full heads, several blocks
      {2, 4, 4, 128, KvType::kF16, 260, 37, true},   // razor: compressed heads, folding, compensation tokens
      {3, 2, 12, 64, KvType::kBF16, 200, 9, true},   // a group wider than one kernel pass (12 > 8)
      {1, 2, 2, 16, KvType::kF16, 90, 70, true},     // tiny heads, many folds (first_row wraps blocks)
      {2, 4, 4, 128, KvType::kF16, 333, 0, false},   // prompt tiles on tensor cores: Llama-3 8B's group of 4
      {2, 2, 7, 128, KvType::kBF16, 150, 0, false},  // Qwen2.5-7B's group of 7 (112 rows a tile)
      {1, 3, 3, 64, KvType::kF32, 70, 0, false},     // SmolLM2's heads, one partial key tile
      {2, 2, 16, 128, KvType::kBF16, 700, 3, true},  // a group of 16: every row of the decode mma tile
  };
  // Decode on tensor cores (f16 / bf16 storage, head_dim 64 / 128, groups <= 16; the compensation token added
  // by the combine kernel), then every decode item on the split kernel (RAZOR_CUDA_DECODE_KERNEL=split).
  for (const bool split_decode : {false, true}) {
  if (split_decode) {
    setenv("RAZOR_CUDA_DECODE_KERNEL", "split", 1);
    auto g = MakeCudaBackend(MathMode::kFast);
    unsetenv("RAZOR_CUDA_DECODE_KERNEL");
    ASSERT_TRUE(g.ok()) << g.error();
    gpu_ = std::move(g).value();
  }
  for (const AttnCase& c : cases) {
    const std::string at = std::string(KvTypeName(c.type)) + " d" + std::to_string(c.head_dim) + " g" +
                           std::to_string(c.group) + (c.razor ? " razor" : " full") +
                           (split_decode ? " (split decode)" : "");
    const bool decode_tc = !split_decode && c.type != KvType::kF32 && (c.head_dim == 64 || c.head_dim == 128) &&
                           c.group <= 16;
    RazorParams p;
    p.mode = c.razor ? KvMode::kRazor : KvMode::kFull;
    p.sinks = 4;
    p.window_min = 40;
    p.window_frac = 0.1;
    p.block_tokens = 16;
    p.decode_fold = true;
    std::vector<bool> retrieval(c.layers * c.kv_heads);
    for (size_t i = 0; i < retrieval.size(); ++i) retrieval[i] = i % 3 == 1;
    auto policy = KvHeadPolicy::Make(p, c.layers, c.kv_heads, retrieval);
    ASSERT_TRUE(policy.ok()) << policy.error();
    const size_t bb = RazorKvCache::block_bytes(p.block_tokens, c.head_dim, c.type);
    RazorKvCache host(*policy, c.head_dim, 4096, c.type, cpu_.NewKvPool(bb, size_t{64} << 20));
    RazorKvCache dev(*policy, c.head_dim, 4096, c.type, gpu_->NewKvPool(bb, size_t{64} << 20));
    // Feed both: the prompt in one call (compressed per layer), then single-token decodes.
    auto feed = [&](int64_t n) {
      const int64_t pos0 = host.sequence_length();
      const bool prompt = pos0 == 0;
      if (prompt) {
        host.BeginPrefill(n);
        dev.BeginPrefill(n);
      }
      for (int l = 0; l < c.layers; ++l) {
        std::vector<float> k(n * c.kv_heads * c.head_dim), v(k.size());
        for (int64_t t = 0; t < n; ++t)
          for (int h = 0; h < c.kv_heads; ++h)
            for (int i = 0; i < c.head_dim; ++i) {
              k[(t * c.kv_heads + h) * c.head_dim + i] = Synth(0, l, h, pos0 + t, i);
              v[(t * c.kv_heads + h) * c.head_dim + i] = Synth(1, l, h, pos0 + t, i);
            }
        ASSERT_TRUE(host.Append(l, pos0, n, k.data(), v.data()).ok());
        ASSERT_TRUE(dev.Append(l, pos0, n, Dev(k), Dev(v)).ok());
        host.OnLayerDone(l, prompt);
        dev.OnLayerDone(l, prompt);
      }
      host.CommitTokens(n);
      dev.CommitTokens(n);
    };
    feed(c.prompt);
    for (int64_t i = 0; i < c.decodes; ++i) feed(1);
    const int64_t seq = host.sequence_length();
    bool any_comp = false, any_offset = false, any_ragged = false;
    // Queries: the last 16 positions (a prefill tile) and the last one (a decode), per (layer, KV head).
    for (int64_t nq : {int64_t{16}, int64_t{1}}) {
      std::vector<int32_t> qpos(nq);
      for (int64_t t = 0; t < nq; ++t) qpos[t] = static_cast<int32_t>(seq - nq + t);
      const int64_t stride = static_cast<int64_t>(c.kv_heads) * c.group * c.head_dim;
      const auto q = Random(nq * stride, rng_);
      std::vector<float> want(q.size(), 0.0f);
      float* dq = Dev(q);
      float* dout = Dev(std::vector<float>(q.size(), NAN));
      for (int l = 0; l < c.layers; ++l) {
        std::vector<AttentionItem> hi, di;
        for (int h = 0; h < c.kv_heads; ++h) {
          const KvHeadView hv = host.View(l, h), dv = dev.View(l, h);
          // Integer bookkeeping is exact: the same code ran on both pools.
          ASSERT_EQ(hv.len, dv.len) << at;
          ASSERT_EQ(hv.first_row, dv.first_row) << at;
          ASSERT_EQ(hv.comp_count, dv.comp_count) << at;
          for (int64_t j = 0; j < hv.len; ++j) ASSERT_EQ(hv.positions[j], dv.positions[j]) << at;
          if (hv.comp_count > 0) {
            any_comp = true;
            for (int i = 0; i < c.head_dim; ++i) ASSERT_EQ(hv.comp_k[i], dv.comp_k[i]) << at << " comp";
          }
          any_offset |= hv.first_row > 0;
          any_ragged |= hv.len != host.View(0, 0).len;
          AttentionQuery a;
          a.q_token_stride = a.out_token_stride = stride;
          a.positions = qpos.data();
          a.n_tokens = nq;
          a.n_group_heads = c.group;
          a.head_dim = c.head_dim;
          a.scale = 1.0f / std::sqrt(float(c.head_dim));
          const int64_t off = static_cast<int64_t>(h) * c.group * c.head_dim;
          a.q = q.data() + off;
          a.out = want.data() + off;
          hi.push_back({hv, a});
          a.q = dq + off;
          a.out = dout + off;
          di.push_back({dv, a});
        }
        cpu_.Attend(hi);
        gpu_->Attend(di);
        // The split kernel (fp32 throughout): fp32 rounding. Prompt tiles without a compensation token run on
        // tensor cores (Q, K, V and P rounded to bf16), and so do decodes of f16 / bf16 storage (Q and P
        // rounded to the storage type): the bf16 bound.
        const bool on_tc = nq > 1 ? !c.razor && c.head_dim >= 64 : decode_tc;
        const double bound = nq > 1 || decode_tc ? 5e-4 : 1e-9;
        const double e = Nmse(Host(dout, want.size()), want);
        EXPECT_LE(e, bound) << at << " layer " << l << " queries " << nq;
        if (on_tc) EXPECT_GT(e, 1e-9) << at << " queries " << nq << ": a tensor-core kernel should have run";
      }
    }
    if (c.razor) {
      EXPECT_TRUE(any_comp) << at << ": the case should hold compensation tokens";
      EXPECT_TRUE(any_ragged) << at << ": the case should hold heads of different lengths";
      if (c.decodes > p.block_tokens) {
        EXPECT_TRUE(any_offset) << at << ": folding should offset first rows";
      }
    }
  }
  }
}

TEST_F(CudaBackendTest, KvRowsRoundTripThroughDeviceMemoryAsOnTheHost) {
  // StoreRows / LoadRows / CopyRows with overlapping moves, both memories, every storage type.
  for (KvType type : {KvType::kF32, KvType::kF16, KvType::kBF16}) {
    const int d = 64;
    const size_t row = d * KvTypeBytes(type);
    auto hp = cpu_.NewKvPool(row * 64, row * 64 * 4);
    auto dp = gpu_->NewKvPool(row * 64, row * 64 * 4);
    const auto k = Random(40 * d, rng_), v = Random(40 * d, rng_);
    std::vector<int64_t> off(40);
    for (int i = 0; i < 40; ++i) off[i] = static_cast<int64_t>((i * 7 % 40) * 2 * row);
    hp->memory().StoreRows(type, d, k.data(), v.data(), off.data(), row, 40);
    dp->memory().StoreRows(type, d, Dev(k), Dev(v), off.data(), row, 40);
    std::vector<int64_t> src, dst;  // shift rows 0..19 up by one slot pair: destinations overlap sources
    for (int i = 0; i < 20; ++i) {
      src.push_back(off[i]);
      dst.push_back(off[i] + static_cast<int64_t>(2 * row) * 3);
    }
    hp->memory().CopyRows(row, src.data(), dst.data(), 20);
    dp->memory().CopyRows(row, src.data(), dst.data(), 20);
    std::vector<int64_t> all;  // every row written: K and V of each stored row, each copy destination
    for (int i = 0; i < 40; ++i) {
      all.push_back(off[i]);
      all.push_back(off[i] + static_cast<int64_t>(row));
    }
    all.insert(all.end(), dst.begin(), dst.end());
    const int64_t n = static_cast<int64_t>(all.size());
    std::vector<float> a(n * d), b(n * d);
    hp->memory().LoadRows(type, d, all.data(), n, a.data());
    dp->memory().LoadRows(type, d, all.data(), n, b.data());
    EXPECT_EQ(a, b) << KvTypeName(type);
    // And the moved rows hold the sources' original keys (every read before any write).
    std::vector<float> moved(d);
    hp->memory().LoadRows(type, d, &dst[5], 1, moved.data());
    std::vector<float> orig(d);
    StoreKvRow(type, &k[5 * d], d, &orig[0]);  // round-trip row 5's key through the type
    std::vector<float> widened(d);
    LoadKvRow(type, &orig[0], d, widened.data());
    EXPECT_EQ(moved, widened) << KvTypeName(type);
  }
}

// Stores recorded between BeginStores and EndStores land as if each were made at once: two that join (the
// second's rows follow the first's in k / v), one that does not (its own buffers), a load that must see the
// recorded rows before EndStores, then rows stored after it.
TEST_F(CudaBackendTest, KvStoresJoinedBetweenBeginAndEndLandAsIfMadeAtOnce) {
  for (KvType type : {KvType::kF16, KvType::kBF16}) {
    const int d = 128;
    const size_t row = d * KvTypeBytes(type);
    auto hp = cpu_.NewKvPool(row * 64, row * 64 * 4);
    auto dp = gpu_->NewKvPool(row * 64, row * 64 * 4);
    const auto k = Random(30 * d, rng_), v = Random(30 * d, rng_);
    const auto k2 = Random(5 * d, rng_), v2 = Random(5 * d, rng_);
    float* dk = Dev(k);
    float* dv = Dev(v);
    std::vector<int64_t> off(35);
    for (int i = 0; i < 35; ++i) off[i] = static_cast<int64_t>((i * 11 % 35) * 2 * row);
    // Host: each store at once. Device: rows 0-11, 12-29 (joins), then k2's 5 rows (does not), inside a batch.
    hp->memory().StoreRows(type, d, k.data(), v.data(), off.data(), row, 30);
    hp->memory().StoreRows(type, d, k2.data(), v2.data(), off.data() + 30, row, 5);
    dp->memory().BeginStores();
    dp->memory().StoreRows(type, d, dk, dv, off.data(), row, 12);
    dp->memory().StoreRows(type, d, dk + 12 * d, dv + 12 * d, off.data() + 12, row, 18);
    dp->memory().StoreRows(type, d, Dev(k2), Dev(v2), off.data() + 30, row, 5);
    std::vector<float> a(35 * d), b(35 * d);
    hp->memory().LoadRows(type, d, off.data(), 35, a.data());
    dp->memory().LoadRows(type, d, off.data(), 35, b.data());  // sees the recorded stores
    EXPECT_EQ(a, b) << KvTypeName(type) << " load inside the batch";
    dp->memory().StoreRows(type, d, dk, dv, off.data() + 30, row, 5);  // overwrite k2's rows, still recorded
    hp->memory().StoreRows(type, d, k.data(), v.data(), off.data() + 30, row, 5);
    dp->memory().EndStores();
    dp->memory().StoreRows(type, d, Dev(k2), Dev(v2), off.data(), row, 2);  // after EndStores: at once
    hp->memory().StoreRows(type, d, k2.data(), v2.data(), off.data(), row, 2);
    std::vector<int64_t> all;
    for (int i = 0; i < 35; ++i) {
      all.push_back(off[i]);
      all.push_back(off[i] + static_cast<int64_t>(row));
    }
    std::vector<float> ha(70 * d), hb(70 * d);
    hp->memory().LoadRows(type, d, all.data(), 70, ha.data());
    dp->memory().LoadRows(type, d, all.data(), 70, hb.data());
    EXPECT_EQ(ha, hb) << KvTypeName(type) << " after the batch";
  }
}

// The compensation token's sums reduced on the device equal the host's (double sums of the same widened rows:
// equal to ~1e-12 relative, whatever the order), for every storage type and more rows than one reducing block.
TEST_F(CudaBackendTest, KvRowSumsOnTheDeviceEqualTheHosts) {
  for (KvType type : {KvType::kF32, KvType::kF16, KvType::kBF16}) {
    for (int d : {64, 128}) {
      const int n = 3000;
      const size_t row = d * KvTypeBytes(type);
      auto hp = cpu_.NewKvPool(row * 2, row * 2 * n);
      auto dp = gpu_->NewKvPool(row * 2, row * 2 * n);
      const auto k = Random(static_cast<size_t>(n) * d, rng_), v = Random(static_cast<size_t>(n) * d, rng_, 3.0f);
      std::vector<int64_t> off(n);
      for (int i = 0; i < n; ++i) off[i] = static_cast<int64_t>((static_cast<int64_t>(i) * 7919 % n) * 2 * row);
      hp->memory().StoreRows(type, d, k.data(), v.data(), off.data(), row, n);
      dp->memory().StoreRows(type, d, Dev(k), Dev(v), off.data(), row, n);
      // A subset (every third row, scattered blocks), added onto sums that already hold something.
      std::vector<int64_t> some;
      for (int i = 0; i < n; i += 3) some.push_back(off[i]);
      std::vector<double> hk(d, 1.0), hv(d, -2.0), dk(d, 1.0), dv(d, -2.0);
      hp->memory().SumRows(type, d, some.data(), row, static_cast<int64_t>(some.size()), hk.data(), hv.data());
      dp->memory().SumRows(type, d, some.data(), row, static_cast<int64_t>(some.size()), dk.data(), dv.data());
      // And the host's against the plain sum of the widened rows it was given.
      std::vector<double> want_k(d, 1.0);
      std::vector<float> stored(d), widened(d);
      for (int i = 0; i < n; i += 3) {
        StoreKvRow(type, &k[static_cast<size_t>(i) * d], d, stored.data());
        LoadKvRow(type, stored.data(), d, widened.data());
        for (int j = 0; j < d; ++j) want_k[j] += widened[j];
      }
      const std::string at = std::string(KvTypeName(type)) + " d" + std::to_string(d);
      for (int j = 0; j < d; ++j) {
        EXPECT_NEAR(hk[j], want_k[j], 1e-9 * (1 + std::fabs(want_k[j]))) << at;
        EXPECT_NEAR(dk[j], hk[j], 1e-9 * (1 + std::fabs(hk[j]))) << at;
        EXPECT_NEAR(dv[j], hv[j], 1e-9 * (1 + std::fabs(hv[j]))) << at;
      }
      double moved = 0;
      for (int j = 0; j < d; ++j) moved += std::fabs(hv[j] + 2.0);
      EXPECT_GT(moved, d) << at;  // the values really were added (each sum of ~1,000 rows of sd 3)
    }
  }
}

}  // namespace
}  // namespace razor
