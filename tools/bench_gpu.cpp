// razor bench on the GPU (--device cuda, or --synthetic SHAPE): per context and batch, prefill tok/s and the
// median decode step time, against the bandwidth floor of the step (every weight byte plus the K/V the
// sequences hold, read once, over the measured device-to-device copy bandwidth). Contexts longer than
// --prefill-max are filled with synthetic K/V rows written straight into the cache (the decode step reads the
// same bytes; only the values differ), so 128K-token decode needs no 128K-token prefill.
#include "bench_gpu.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>

#include "median.h"
#include "progress.h"
#include "runtime/generator.h"

namespace razor::cli {
namespace {

// Appends n tokens of random K/V to every layer of seq's cache, in chunks, through the cache's own Append
// (device rows: the engine's backend buffers).
Status SyntheticFill(Engine& e, Sequence& seq, int64_t n) {
  const ModelConfig& c = e.config();
  const int64_t chunk = 1024;
  std::unique_ptr<Buffer> k, v;
  e.backend().Reserve(&k, chunk * c.kv_dim());
  e.backend().Reserve(&v, chunk * c.kv_dim());
  std::mt19937 rng(7);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> host(chunk * c.kv_dim());
  for (auto& x : host) x = nd(rng);
  e.backend().FromHost(host.data(), host.size(), k->data());
  for (auto& x : host) x = nd(rng);
  e.backend().FromHost(host.data(), host.size(), v->data());
  KvCache& cache = seq.cache();
  for (int64_t done = 0; done < n; done += chunk) {
    const int64_t m = std::min(chunk, n - done);
    for (int l = 0; l < c.n_layers; ++l) {
      RAZOR_RETURN_IF_ERROR(cache.Append(l, done, m, k->data(), v->data()));
      cache.OnLayerDone(l, false);
    }
    cache.CommitTokens(m);
  }
  return Status::Ok();
}

}  // namespace

int BenchOnGpu(const std::shared_ptr<LoadedModel>& m, const GpuBenchOptions& o) {
  const ModelConfig& c = m->config;
  const double bw = MeasureGpuCopyBandwidth();
  if (bw <= 0) return Fail("--device cuda: no usable GPU");
  const size_t kv_token = c.kv_bytes_per_token(KvTypeBytes(o.kv_type));
  std::printf("model: %s | weights %.2f GB as bf16 on the GPU | KV %s %zu B/token\n", m->path.c_str(),
              m->weights.parameter_count * 2 / 1e9, KvTypeName(o.kv_type), kv_token);
  std::printf("bandwidth: %.2f TB/s (device-to-device copy, read + write)\n", bw / 1e12);
  std::printf("| shape | context | batch | prefill tok/s | decode ms/token | decode tok/s | floor ms/token | "
              "decode / floor | KV MiB | fill |\n");
  std::printf("|---|--:|--:|--:|--:|--:|--:|--:|--:|---|\n");
  std::fflush(stdout);
  std::mt19937 rng(o.seed);
  std::uniform_int_distribution<int32_t> tok(100, c.vocab_size - 1);
  for (int len : o.contexts) {
    for (int batch : o.batches) {
      EngineOptions eo;
      eo.device = EngineDevice::kCuda;
      eo.kv_type = o.kv_type;
      eo.context = len + o.n_decode + 8;
      auto engine = Engine::Open(m, eo);
      if (!engine) return Fail(engine.error());
      Engine& e = **engine;
      std::vector<std::unique_ptr<Sequence>> seqs;
      for (int b = 0; b < batch; ++b) {
        auto s = e.NewSequence({});
        if (!s) return Fail(s.error());
        seqs.push_back(std::move(s).value());
      }
      const bool prefill = len <= o.prefill_max;
      double prefill_tok_s = 0;
      std::vector<SequenceInput> step(batch);
      for (int b = 0; b < batch; ++b) {
        step[b].sequence = seqs[b].get();
        if (prefill) {
          std::vector<int32_t> prompt(len);
          for (auto& id : prompt) id = tok(rng);
          const auto t0 = std::chrono::steady_clock::now();
          if (Status st = PrefillSequence(e, *seqs[b], prompt, 4096, nullptr); !st.ok()) return Fail(st.message());
          const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
          if (b == 0) prefill_tok_s = len / s;
        } else if (Status st = SyntheticFill(e, *seqs[b], len); !st.ok()) {
          return Fail(st.message());
        }
        step[b].tokens = {tok(rng)};
      }
      std::vector<double> ms;
      for (int i = 0; i < o.n_decode + 3; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        if (Status st = e.Step(step); !st.ok()) return Fail(st.message());  // logits come back: synchronised
        const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        if (i >= 3) ms.push_back(t);  // warm-up steps first
        for (int b = 0; b < batch; ++b) {
          if (!step[b].status.ok()) return Fail(step[b].status.message());
          step[b].tokens = {tok(rng)};
        }
      }
      double kv_bytes = 0;
      for (const auto& s : seqs) kv_bytes += s->cache().bytes_allocated();
      const double step_ms = Median(ms);
      // The GPU holds every matrix as bf16 (quantized GGUF tensors are widened at load): 2 bytes a parameter.
      const double weight_bytes = 2.0 * m->weights.parameter_count;
      const double floor_ms = (weight_bytes + kv_bytes) / bw * 1e3;
      std::printf("| %s | %d | %d | %s | %.2f | %.1f | %.2f | %.2f | %.1f | %s |\n", c.name.c_str(), len, batch,
                  prefill && batch == 1 ? fmt::format("{:.1f}", prefill_tok_s).c_str() : "-", step_ms,
                  batch * 1e3 / step_ms, floor_ms, step_ms / floor_ms, kv_bytes / 1048576.0,
                  prefill ? "prefill" : "synthetic");
      std::fflush(stdout);
    }
  }
  return 0;
}

}  // namespace razor::cli
