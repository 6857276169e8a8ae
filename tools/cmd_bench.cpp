// razor bench: prefill and decode speed over prompt lengths, thread counts and KV caches, with KV bytes,
// reduction vs a full cache, peak RSS, and the decode floor (bytes one decode step must read / measured
// read bandwidth). Each configuration runs in a forked child so its peak RSS is its own.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>

#include "bench_gpu.h"
#include "cli_common.h"
#include "median.h"
#include "core/thread_pool.h"
#include "model/transformer.h"
#include "progress.h"
#include "runtime/compute_peak.h"
#include "runtime/engine.h"
#include "runtime/generator.h"
#include "runtime/memory_bandwidth.h"
#include "runtime/process_memory.h"
#include "runtime/synthetic_model.h"

namespace razor::cli {
namespace {

struct BenchOptions {
  CommonOptions common;
  KvCliOptions kv;
  std::string prompt_lengths = "512";
  std::string thread_counts;  // empty: all cores
  std::string batches = "1";  // sequences decoded together
  int n_decode = 64;
  int reps = 1;
  uint64_t seed = 1;
  std::string synthetic;      // a shape name: random weights made on the GPU
  int prefill_max = 32768;    // GPU: longer contexts get synthetic K/V instead of a prefill
  double synthetic_profile = -1;  // GPU: this fraction of KV heads as retrieval heads, seeded (no profiling)
  bool fill_pool = false;     // GPU: as many sequences as the KV pool holds
};

// What one child measures (sent back through a pipe as raw bytes).
struct Measurement {
  int ok = 0;
  char error[200] = {};
  double prefill_tok_s = 0, decode_tok_s = 0;
  double kv_bytes_after_prefill = 0, kv_bytes_after_decode = 0;
  double peak_rss = 0, rss_at_start = 0;
};

// `batch` sequences of one engine (one shared KV pool): each prefilled with its own prompt of `len` tokens,
// then n_decode steps that decode one token of every sequence together (one batched forward per step).
// Prefill tok/s is over all prompts; decode tok/s is the aggregate (batch tokens per step).
Measurement MeasureOnce(const std::shared_ptr<LoadedModel>& m, const BenchOptions& o, KvMode mode, int threads,
                        int len, int batch, const std::vector<std::vector<int32_t>>& prompts) {
  Measurement r;
  r.rss_at_start = CurrentRssBytes();
  auto fail = [&](const std::string& e) {
    std::snprintf(r.error, sizeof r.error, "%s", e.c_str());
    return r;
  };
  CommonOptions common = o.common;
  common.threads = threads;
  common.ctx = len + o.n_decode;
  auto engine = OpenEngine(m, common, o.kv);
  if (!engine) return fail(engine.error());
  Engine& e = **engine;
  SequenceOptions so;
  so.kv = o.kv.cache;
  so.kv.mode = mode;
  so.prompt_tokens = len;
  if (Status st = e.EnsureProfile(so.kv); !st.ok()) return fail(st.message());
  std::vector<std::unique_ptr<Sequence>> seqs;
  for (int b = 0; b < batch; ++b) {
    auto s = e.NewSequence(so);
    if (!s) return fail(s.error());
    seqs.push_back(std::move(s).value());
  }
  auto t0 = std::chrono::steady_clock::now();
  for (int b = 0; b < batch; ++b)
    if (Status st = PrefillSequence(e, *seqs[b], prompts[b], 512, nullptr); !st.ok()) return fail(st.message());
  auto t1 = std::chrono::steady_clock::now();
  for (const auto& s : seqs) r.kv_bytes_after_prefill += s->cache().bytes_allocated();
  std::vector<SequenceInput> step(batch);
  for (int b = 0; b < batch; ++b) {
    step[b].sequence = seqs[b].get();
    step[b].tokens = {ArgMax(seqs[b]->logits().data(), m->config.vocab_size)};
  }
  for (int i = 0; i < o.n_decode; ++i) {
    if (Status st = e.Step(step); !st.ok()) return fail(st.message());
    for (int b = 0; b < batch; ++b) {
      if (!step[b].status.ok()) return fail(step[b].status.message());
      step[b].tokens[0] = ArgMax(seqs[b]->logits().data(), m->config.vocab_size);
    }
  }
  auto t2 = std::chrono::steady_clock::now();
  for (const auto& s : seqs) r.kv_bytes_after_decode += s->cache().bytes_allocated();
  r.prefill_tok_s = double(len) * batch / std::chrono::duration<double>(t1 - t0).count();
  r.decode_tok_s = double(o.n_decode) * batch / std::chrono::duration<double>(t2 - t1).count();
  r.peak_rss = PeakRssBytes();
  r.ok = 1;
  return r;
}

// Runs MeasureOnce in a child process so that its peak RSS is not mixed with the other configurations'.
Measurement MeasureInChild(const std::shared_ptr<LoadedModel>& m, const BenchOptions& o, KvMode mode, int threads,
                           int len, int batch, const std::vector<std::vector<int32_t>>& prompts) {
  int fds[2];
  Measurement r;
  if (pipe(fds) != 0) {
    std::snprintf(r.error, sizeof r.error, "pipe failed");
    return r;
  }
  std::fflush(nullptr);
  pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    std::snprintf(r.error, sizeof r.error, "fork failed");
    return r;
  }
  if (pid == 0) {
    close(fds[0]);
    Measurement c;
    try {  // an exception must not unwind into the parent's copy of main
      c = MeasureOnce(m, o, mode, threads, len, batch, prompts);
    } catch (const std::exception& e) {
      std::snprintf(c.error, sizeof c.error, "%s", e.what());
    }
    ssize_t w = write(fds[1], &c, sizeof c);
    _exit(w == sizeof c ? 0 : 1);
  }
  close(fds[1]);
  ssize_t got = read(fds[0], &r, sizeof r);
  close(fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  if (got != sizeof r) std::snprintf(r.error, sizeof r.error, "benchmark child died (status %d)", status);
  return r;
}

int Bench(BenchOptions& o) {
  auto lengths = ParseIntList(o.prompt_lengths, "prompt length", 1, int(kMaxTokens));
  if (!lengths) return Fail(lengths.error());
  auto threads = o.thread_counts.empty() ? Result<std::vector<int>>(std::vector<int>{o.common.ResolvedThreads()})
                                         : ParseIntList(o.thread_counts, "thread count", 1, MaxThreads());
  if (!threads) return Fail(threads.error());
  auto batches = ParseIntList(o.batches, "batch size", 1, 256);  // one chunk: weights read once per step
  if (!batches) return Fail(batches.error());
  auto modes = o.kv.Resolve();
  if (!modes) return Fail(modes.error());
  auto device = ParseEngineDevice(o.common.device);
  if (!device) return Fail("--device: " + device.error());
  // A model file is loaded once, before the device is chosen: --device auto runs on the CPU a model that the
  // CUDA backend cannot run (Gemma 3's sliding window).
  std::shared_ptr<LoadedModel> file_model;
  if (o.synthetic.empty()) {
    auto loaded = LoadModelFromOption(o.common.model, false);
    if (!loaded) return Fail(loaded.error());
    file_model = *loaded;
  }
  const bool gpu = !o.synthetic.empty() ||
                   ResolveEngineDevice(*device, o.common.mode(), file_model->config) == EngineDevice::kCuda;
  if (gpu) {
    if (*device == EngineDevice::kCpu) return Fail("--synthetic: random-weight models run on the GPU only (--device cuda)");
    if (!o.synthetic.empty() && o.synthetic_profile < 0 &&
        std::any_of(modes->begin(), modes->end(), [](KvMode k) { return k != KvMode::kFull; }))
      return Fail("--synthetic: random weights have no retrieval heads to profile; give --synthetic-profile FRACTION "
                  "(RazorAttention's share is 0.15)");
    if (o.common.exact || o.common.int8) return Fail("--device cuda runs the default math only");
    auto model = o.synthetic.empty() ? Result<std::shared_ptr<LoadedModel>>(file_model) : MakeSyntheticModel(o.synthetic);
    if (!model) return Fail(model.error());
    GpuBenchOptions g;
    g.contexts = *lengths;
    g.batches = *batches;
    g.modes = *modes;
    g.cache = o.kv.cache;
    g.synthetic_profile = o.synthetic_profile;
    g.fill_pool = o.fill_pool;
    g.kv_pool_bytes = static_cast<size_t>(o.kv.kv_pool_mib) << 20;
    g.n_decode = o.n_decode;
    g.prefill_max = o.prefill_max;
    g.kv_type = o.kv.cache.kv_type;
    g.seed = o.seed;
    return BenchOnGpu(*model, g);
  }
  const std::shared_ptr<LoadedModel>& loaded = file_model;
  const LoadedModel& m = *loaded;
  const ModelConfig& c = m.config;
  const size_t kv_token_bytes = c.kv_bytes_per_token(KvTypeBytes(o.kv.cache.kv_type));
  const int ctx_limit = o.common.ctx > 0 ? o.common.ctx : c.context_length;
  // Lengths against the context before any work (bandwidth probes, profiling, children). Every count is
  // <= kMaxTokens, so the sums cannot overflow.
  std::vector<int> fitting, skipped;
  for (int len : *lengths) (len + o.n_decode <= ctx_limit ? fitting : skipped).push_back(len);
  if (fitting.empty())
    return Fail(fmt::format("no prompt length fits the context of {} tokens with -n {} (-p {})", ctx_limit,
                            o.n_decode, o.prompt_lengths));
  for (int len : skipped)
    std::fprintf(stderr, "razor: skipping prompt %d: %d + %d tokens exceed the context of %d\n", len, len,
                 o.n_decode, ctx_limit);
  *lengths = fitting;
  if (std::any_of(modes->begin(), modes->end(), [](KvMode k) { return k != KvMode::kFull; })) {
    // Profile once here (cached on disk) so that no child profiles again.
    ThreadPool pool(threads->front());
    KvCacheOptions kvo = o.kv.cache;
    kvo.log = [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
    ProgressReporter profiling("profiling retrieval heads");
    kvo.on_profile_progress = profiling.Callback();
    auto profile = LoadOrMakeProfile(m, kvo, pool);
    if (!profile) return Fail(profile.error());
  }
  std::printf("model: %s | %s kernels (%s) | weights %.1f MiB | full KV %s %zu B/token\n", m.path.c_str(),
              o.common.mode_name(), MatMulIsa(), m.weights.stored_bytes / 1048576.0,
              KvTypeName(o.kv.cache.kv_type), kv_token_bytes);
  // batch > 1: prefill over every sequence's prompt, decode tok/s aggregate over the batch (one step decodes a
  // token of every sequence), KV MiB summed; the floor counts the weights once per step.
  std::printf("| kv | threads | prompt | prefill tok/s | decode tok/s | KV MiB | KV reduction | peak RSS MiB | "
              "decode floor tok/s | decode / floor | batch |\n");
  std::printf("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n");
  std::mt19937 rng(o.seed);
  std::uniform_int_distribution<int32_t> tok(100, c.vocab_size - 1);
  for (int t : *threads) {
    double bw = 0, peak = 0;
    {
      ThreadPool pool(t);
      bw = MeasureReadBandwidth(pool);
      peak = MeasureFmaPeak(pool);
    }
    for (int len : *lengths) {
      const int max_batch = *std::max_element(batches->begin(), batches->end());
      std::vector<std::vector<int32_t>> prompts(max_batch, std::vector<int32_t>(len));
      for (auto& p : prompts)
        for (auto& id : p) id = tok(rng);
      for (int batch : *batches) {
        double full_measured = 0;  // the full cache's bytes at this length, when this run measured it
        for (KvMode mode : *modes) {
          std::vector<double> pre, dec, kv, rss;
          for (int r = 0; r < o.reps; ++r) {
            if (::isatty(STDERR_FILENO))  // a log gets the table rows, not one line per run
              std::fprintf(stderr, "\r[kv=%s t=%d p=%d batch=%d rep %d/%d] running...", KvModeName(mode), t, len,
                           batch, r + 1, o.reps);
            Measurement meas = MeasureInChild(loaded, o, mode, t, len, batch, prompts);
            if (::isatty(STDERR_FILENO)) std::fprintf(stderr, "\r\033[K");
            if (!meas.ok) return Fail(meas.error);
            pre.push_back(meas.prefill_tok_s);
            dec.push_back(meas.decode_tok_s);
            kv.push_back(meas.kv_bytes_after_prefill);
            rss.push_back(meas.peak_rss);
          }
          const double kv_bytes = Median(kv);
          // Reduction against the full cache's real allocation when measured (its block pool rounds up: a short
          // prompt holds more than len tokens' bytes), else against len tokens' bytes.
          if (mode == KvMode::kFull) full_measured = kv_bytes;
          const double full = full_measured > 0 ? full_measured : double(kv_token_bytes) * len * batch;
          // A decode step reads every weight once plus the K/V every sequence holds; it yields `batch` tokens.
          const double floor_tok_s = batch * bw / (m.weights.stored_bytes + kv_bytes);
          const double d = Median(dec);
          std::printf("| %s | %d | %d | %.1f | %.1f | %.1f | %.1f%% | %.0f | %.1f | %.0f%% | %d |\n", KvModeName(mode),
                      t, len, Median(pre), d, kv_bytes / 1048576.0, 100.0 * (1.0 - kv_bytes / full),
                      Median(rss) / 1048576.0, floor_tok_s, 100.0 * d / floor_tok_s, batch);
          std::fflush(stdout);
        }
      }
    }
    std::printf("(threads %d: measured read bandwidth %.1f GB/s, fp32 FMA peak %.1f GFLOP/s)\n", t, bw / 1e9,
                peak / 1e9);
  }
  return 0;
}

}  // namespace

void RegisterBench(CLI::App& app, int* exit_code) {
  static BenchOptions o;
  auto* cmd = app.add_subcommand("bench", "measure prefill / decode tok/s, KV bytes and peak RSS per KV cache");
  AddModelOption(cmd, &o.common);
  cmd->add_option("-p,--prompt-lengths", o.prompt_lengths, "comma-separated prompt lengths")->capture_default_str();
  AddNumber(cmd, "-n,--n-decode", &o.n_decode, "tokens decoded after each prompt", 1, 1 << 20);
  cmd->add_option("-t,--threads", o.thread_counts, "comma-separated thread counts, each at most " +
                                                       std::to_string(MaxThreads()) + " (the CPUs; default: all)");
  cmd->add_option("-b,--batch", o.batches,
                  "comma-separated batch sizes: sequences prefilled, then decoded together (aggregate tok/s)")
      ->capture_default_str();
  AddNumber(cmd, "-r,--reps", &o.reps, "repetitions per figure (median reported)", 1, 1000);
  AddNumber(cmd, "--seed", &o.seed, "seed of the random prompts (and of --synthetic-profile's heads)", uint64_t{0},
            UINT64_MAX);
  AddNumber(cmd, "--ctx", &o.common.ctx, "context limit (0: the model's)", 0, int(kMaxTokens));
  cmd->add_flag("--exact", o.common.exact, "reference kernels");
  cmd->add_flag("--int8", o.common.int8, "8-bit activations in Q4_0/Q4_1/Q5_0/Q5_1/Q4_K/Q6_K decode (llama.cpp-style; faster decode, less exact)");
  AddKvOptions(cmd, &o.kv, /*allow_list=*/true);
  cmd->add_option("--device", o.common.device, "where to run: auto | cpu | cuda (auto: the GPU when present)")
      ->capture_default_str();
  cmd->add_option("--synthetic", o.synthetic,
                  "random weights of a named shape made on the GPU, no checkpoint: " +
                      fmt::format("{}", fmt::join(SyntheticShapeNames(), " | ")));
  AddNumber(cmd, "--prefill-max", &o.prefill_max,
            "GPU: contexts above this are filled with synthetic K/V rows instead of a prefill", 0, int(kMaxTokens));
  AddNumber(cmd, "--synthetic-profile", &o.synthetic_profile,
            "GPU: this fraction of KV heads, chosen at random (seeded by --seed), as retrieval heads instead of a "
            "profile (for --synthetic; RazorAttention's share is 0.15)",
            0.0, 1.0);
  cmd->add_flag("--fill-pool", o.fill_pool,
                "GPU: instead of -b, as many sequences of each context as the KV pool holds (synthetic K/V), "
                "decoded together");
  cmd->callback([exit_code] { *exit_code = Bench(o); });
}

}  // namespace razor::cli
