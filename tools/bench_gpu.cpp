// razor bench on the GPU (--device cuda, or --synthetic SHAPE): per context, KV cache and batch, prefill
// tok/s and the median decode step time, against the bandwidth floor of the step (every weight byte plus the
// K/V the sequences hold, read once, over the measured device-to-device copy bandwidth), and the memory the
// run really took: K/V bytes held, the pool's peak, and device memory in use at the end (cudaMemGetInfo) with
// the pool's unused reservation taken out.
//
// Contexts longer than --prefill-max are filled with synthetic K/V rows written straight into the cache, layer
// by layer, through the cache's own prefill path (BeginPrefill, Append, OnLayerDone): a compressing cache cuts
// each layer as a prompt would, so the decode step reads the same bytes a prefilled one would (only the values
// differ) and a 1M-token context needs no 1M-token prefill. --fill-pool makes as many such sequences as the
// pool holds (the concurrency a cache allows) and decodes them together.
#include "bench_gpu.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "median.h"
#include "runtime/generator.h"
#include "runtime/synthetic_model.h"

namespace razor::cli {
namespace {

bool IsPoolExhausted(const Status& st) { return st.message().rfind("KV pool exhausted", 0) == 0; }

// Random K/V rows in device buffers, made once per configuration: [kChunk, kv_dim] fp32 each.
struct SyntheticRows {
  static constexpr int64_t kChunk = 8192;
  std::unique_ptr<Buffer> k, v;
  explicit SyntheticRows(Engine& e) {
    const int64_t n = kChunk * e.config().kv_dim();
    e.backend().Reserve(&k, n);
    e.backend().Reserve(&v, n);
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> host(n);
    for (auto& x : host) x = nd(rng);
    e.backend().FromHost(host.data(), host.size(), k->data());
    for (auto& x : host) x = nd(rng);
    e.backend().FromHost(host.data(), host.size(), v->data());
  }
};

// Appends n tokens of random K/V to every layer of seq's cache as one prompt, layer after layer (so a
// compressing cache holds one layer's full K/V at a time), in chunks, through the cache's own Append (device
// rows: the engine's backend buffers).
Status SyntheticFill(Engine& e, Sequence& seq, int64_t n, const SyntheticRows& rows) {
  KvCache& cache = seq.cache();
  cache.BeginPrefill(n);
  for (int l = 0; l < e.config().n_layers; ++l) {
    for (int64_t done = 0; done < n; done += SyntheticRows::kChunk)
      RAZOR_RETURN_IF_ERROR(
          cache.Append(l, done, std::min(SyntheticRows::kChunk, n - done), rows.k->data(), rows.v->data()));
    cache.OnLayerDone(l, true);
  }
  cache.CommitTokens(n);
  return Status::Ok();
}

struct Row {
  std::string error;            // non-empty: the configuration could not run (printed instead of figures)
  int batch = 0;
  bool capped = false;          // --fill-pool stopped at its limit of sequences, not at a full pool
  double prefill_tok_s = 0;     // 0: no prefill (synthetic fill)
  double step_ms = 0, floor_ms = 0;
  double kv_bytes = 0, full_kv_bytes = 0, pool_peak = 0, device_peak = 0;
};

// One configuration: an engine of its own (its pool starts empty), `batch` sequences (or as many as fit).
Row Measure(const std::shared_ptr<LoadedModel>& m, const GpuBenchOptions& o, const HeadProfile* profile, KvMode mode,
            int len, int batch, double bw) {
  const ModelConfig& c = m->config;
  Row r;
  EngineOptions eo;
  eo.device = EngineDevice::kCuda;
  eo.kv_type = o.kv_type;
  eo.kv_pool_bytes = o.kv_pool_bytes;
  eo.context = len + o.n_decode + 8;
  auto engine = Engine::Open(m, eo);
  if (!engine) return {.error = engine.error()};
  Engine& e = **engine;
  SequenceOptions so;
  so.kv = o.cache;
  so.kv.mode = mode;
  so.prompt_tokens = len;
  if (mode != KvMode::kFull) {
    if (profile) {
      if (Status st = e.SetProfile(*profile); !st.ok()) return {.error = st.message()};
    } else if (Status st = e.EnsureProfile(so.kv); !st.ok()) {
      return {.error = st.message()};
    }
  }
  std::mt19937 rng(o.seed);
  std::uniform_int_distribution<int32_t> tok(100, c.vocab_size - 1);
  const bool prefill = len <= o.prefill_max && !o.fill_pool;
  const int most = o.fill_pool ? 256 : batch;
  std::unique_ptr<SyntheticRows> rows;
  if (!prefill) rows = std::make_unique<SyntheticRows>(e);
  std::vector<std::unique_ptr<Sequence>> seqs;
  size_t peak_ok = 0;  // the pool's high-water mark over the fills that succeeded
  bool capped = o.fill_pool;
  for (int b = 0; b < most; ++b) {
    auto s = e.NewSequence(so);
    if (!s) return {.error = s.error()};
    Sequence& seq = **s;
    Status st;
    if (prefill) {
      std::vector<int32_t> prompt(len);
      for (auto& id : prompt) id = tok(rng);
      const auto t0 = std::chrono::steady_clock::now();
      st = PrefillSequence(e, seq, prompt, 4096, nullptr);
      const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (b == 0) r.prefill_tok_s = len / sec;
    } else {
      st = SyntheticFill(e, seq, len, *rows);
    }
    if (!st.ok()) {
      if (o.fill_pool && IsPoolExhausted(st) && !seqs.empty()) {  // the pool is full: this many fit
        capped = false;
        break;
      }
      if (IsPoolExhausted(st))
        return {.error = fmt::format("does not fit: {} (a full cache of {} tokens is {:.1f} GiB)", st.message(), len,
                                     static_cast<double>(len) * c.kv_bytes_per_token(KvTypeBytes(o.kv_type)) /
                                         (1u << 30))};
      return {.error = st.message()};
    }
    seqs.push_back(std::move(s).value());
    peak_ok = e.kv_pool().peak_bytes_in_use();
  }
  e.kv_pool().ResetPeak();  // a failed last fill's blocks are back; decode's growth counts from here
  // Room for every sequence to decode its tokens (each head grows by one a step): drop sequences until it fits.
  const size_t grow_blocks = static_cast<size_t>(c.n_layers) * c.n_kv_heads *
                             ((o.n_decode + 8 + eo.kv_block_tokens - 1) / eo.kv_block_tokens + 1);
  while (o.fill_pool && seqs.size() > 1 && e.kv_pool().blocks_free() < seqs.size() * grow_blocks) seqs.pop_back();
  r.batch = static_cast<int>(seqs.size());
  std::vector<SequenceInput> step(seqs.size());
  for (size_t b = 0; b < seqs.size(); ++b) {
    step[b].sequence = seqs[b].get();
    step[b].tokens = {tok(rng)};
  }
  std::vector<double> ms;
  for (int i = 0; i < o.n_decode + 3; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    if (Status st = e.Step(step); !st.ok()) return {.error = st.message()};  // logits come back: synchronised
    const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= 3) ms.push_back(t);  // warm-up steps first
    for (auto& in : step) {
      if (!in.status.ok()) return {.error = in.status.message()};
      in.tokens = {tok(rng)};
    }
  }
  for (const auto& s : seqs) {
    r.kv_bytes += s->cache().bytes_allocated();
    r.full_kv_bytes += static_cast<double>(s->length()) * e.full_kv_bytes_per_token();
  }
  r.step_ms = Median(ms);
  // The GPU holds every matrix as bf16 (quantized GGUF tensors are widened at load): 2 bytes a parameter.
  r.floor_ms = (2.0 * m->weights.parameter_count + r.kv_bytes) / bw * 1e3;
  r.capped = capped;
  r.pool_peak = static_cast<double>(std::max(peak_ok, e.kv_pool().peak_bytes_in_use()));
  const double used = static_cast<double>(e.backend().TotalDeviceBytes() - e.backend().FreeDeviceBytes());
  r.device_peak = used - static_cast<double>(e.kv_pool().capacity_bytes()) + r.pool_peak;
  return r;
}

}  // namespace

int BenchOnGpu(const std::shared_ptr<LoadedModel>& m, const GpuBenchOptions& o) {
  const ModelConfig& c = m->config;
  const double bw = MeasureGpuCopyBandwidth();
  if (bw <= 0) return Fail("--device cuda: no usable GPU");
  const size_t kv_token = c.kv_bytes_per_token(KvTypeBytes(o.kv_type));
  std::printf("model: %s | weights %.2f GB as bf16 on the GPU | KV %s %zu B/token (full cache)\n", m->path.c_str(),
              m->weights.parameter_count * 2 / 1e9, KvTypeName(o.kv_type), kv_token);
  std::printf("bandwidth: %.2f TB/s (device-to-device copy, read + write)\n", bw / 1e12);
  std::optional<HeadProfile> profile;
  if (o.synthetic_profile >= 0) {
    auto p = MakeSyntheticProfile(*m, o.synthetic_profile, o.seed);
    if (!p) return Fail(p.error());
    profile = std::move(p).value();
    std::printf("head profile: synthetic, %zu of %d KV heads as retrieval heads (fraction %.2f, seed %llu)\n",
                profile->retrieval.size(), profile->total_kv_heads(), o.synthetic_profile,
                static_cast<unsigned long long>(o.seed));
  }
  std::printf("razor: sinks %lld, window max(%lld, N x %.2f), compensation %s, decode fold %s\n",
              static_cast<long long>(o.cache.razor.sinks), static_cast<long long>(o.cache.razor.window_min),
              o.cache.razor.window_frac, o.cache.razor.compensation ? "on" : "off",
              o.cache.razor.decode_fold ? "on" : "off");
  std::printf("| shape | KV | context | batch | prefill tok/s | decode ms/step | decode tok/s | floor ms/step | "
              "decode / floor | KV MiB | KV / full | pool peak MiB | device peak GiB | fill |\n");
  std::printf("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n");
  std::fflush(stdout);
  const std::vector<int> one = {1};
  for (int len : o.contexts)
    for (KvMode mode : o.modes)
      for (int batch : o.fill_pool ? one : o.batches) {
        const Row r = Measure(m, o, profile ? &*profile : nullptr, mode, len, batch, bw);
        if (!r.error.empty()) {
          std::printf("| %s | %s | %d | %s | %s |\n", c.name.c_str(), KvModeName(mode), len,
                      o.fill_pool ? "max" : std::to_string(batch).c_str(), r.error.c_str());
          std::fflush(stdout);
          continue;
        }
        const bool prefill = len <= o.prefill_max && !o.fill_pool;
        std::printf("| %s | %s | %d | %d%s | %s | %.2f | %.1f | %.2f | %.2f | %.1f | %.3f | %.1f | %.2f | %s |\n",
                    c.name.c_str(), KvModeName(mode), len, r.batch,
                    !o.fill_pool ? "" : r.capped ? " (the limit; more fit)" : " (max)",
                    r.prefill_tok_s > 0 ? fmt::format("{:.1f}", r.prefill_tok_s).c_str() : "-", r.step_ms,
                    r.batch * 1e3 / r.step_ms, r.floor_ms, r.step_ms / r.floor_ms, r.kv_bytes / 1048576.0,
                    r.kv_bytes / r.full_kv_bytes, r.pool_peak / 1048576.0, r.device_peak / (1u << 30),
                    prefill ? "prefill" : "synthetic");
        std::fflush(stdout);
      }
  return 0;
}

}  // namespace razor::cli
