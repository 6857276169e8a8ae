// razor bench: prefill and decode speed over prompt lengths and thread counts, with the decode floor
// (bytes one decode step must read / measured read bandwidth) and our ratio to it.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <sstream>

#include "cli_common.h"
#include "core/thread_pool.h"
#include "kv/full_kv_cache.h"
#include "model/transformer.h"
#include "runtime/generator.h"
#include "runtime/memory_bandwidth.h"

namespace razor::cli {
namespace {

struct BenchOptions {
  CommonOptions common;
  std::string prompt_lengths = "512";
  std::string thread_counts;  // empty: all cores
  int n_decode = 64;
  int reps = 1;
  uint64_t seed = 1;
};

Result<std::vector<int>> ParseList(const std::string& s, const char* what) {
  std::vector<int> out;
  std::stringstream ss(s);
  std::string item;
  while (std::getline(ss, item, ',')) {
    try {
      size_t used = 0;
      int v = std::stoi(item, &used);
      if (used != item.size() || v <= 0) throw std::invalid_argument(item);
      out.push_back(v);
    } catch (const std::exception&) {
      return Err(fmt::format("bad {} list '{}': expected positive integers separated by commas", what, s));
    }
  }
  if (out.empty()) return Err(fmt::format("empty {} list", what));
  return out;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

int Bench(BenchOptions& o) {
  auto lengths = ParseList(o.prompt_lengths, "prompt length");
  if (!lengths) return Fail(lengths.error());
  auto threads = o.thread_counts.empty() ? Result<std::vector<int>>(std::vector<int>{ThreadPool::DefaultThreadCount()})
                                         : ParseList(o.thread_counts, "thread count");
  if (!threads) return Fail(threads.error());
  auto loaded = LoadModelFromOption(o.common.model, false);
  if (!loaded) return Fail(loaded.error());
  const LoadedModel& m = **loaded;
  const ModelConfig& c = m.config;
  const int ctx_limit = o.common.ctx > 0 ? o.common.ctx : c.context_length;
  std::printf("model: %s | %s kernels (%s) | weights %.1f MiB | KV fp32 %zu B/token\n", m.path.c_str(),
              o.common.exact ? "exact" : "fast", MatMulIsa(), m.weights.stored_bytes / 1048576.0, c.kv_bytes_per_token());
  std::printf("| threads | prompt | prefill tok/s | decode tok/s | decode floor tok/s | decode / floor |\n");
  std::printf("|--------:|-------:|--------------:|-------------:|-------------------:|---------------:|\n");
  std::mt19937 rng(o.seed);
  std::uniform_int_distribution<int32_t> tok(100, c.vocab_size - 1);
  for (int t : *threads) {
    ThreadPool pool(t);
    const double bw = MeasureReadBandwidth(pool);
    Transformer tf(c, m.weights, pool, o.common.mode());
    for (int len : *lengths) {
      if (len + o.n_decode > ctx_limit) {
        std::fprintf(stderr, "razor: skipping prompt %d: %d + %d tokens exceed the context of %d\n", len, len,
                     o.n_decode, ctx_limit);
        continue;
      }
      std::vector<double> pre, dec;
      for (int r = 0; r < o.reps; ++r) {
        std::vector<int32_t> prompt(len);
        for (auto& id : prompt) id = tok(rng);
        FullKvCache cache(c.n_layers, c.n_kv_heads, c.head_dim, len + o.n_decode);
        std::vector<float> logits;
        auto t0 = std::chrono::steady_clock::now();
        Status st = Prefill(tf, cache, prompt, 512, [&](int64_t d, int64_t n) {
          std::fprintf(stderr, "\r[t=%d p=%d rep %d] prefill %lld/%lld", t, len, r + 1, (long long)d, (long long)n);
        }, &logits);
        if (!st.ok()) return Fail(st.message());
        auto t1 = std::chrono::steady_clock::now();
        int32_t next = ArgMax(logits.data(), c.vocab_size);
        for (int i = 0; i < o.n_decode; ++i) {
          st = tf.Forward(&next, 1, cache, false, &logits);
          if (!st.ok()) return Fail(st.message());
          next = ArgMax(logits.data(), c.vocab_size);
        }
        auto t2 = std::chrono::steady_clock::now();
        std::fprintf(stderr, "\r\033[K");
        pre.push_back(len / std::chrono::duration<double>(t1 - t0).count());
        dec.push_back(o.n_decode / std::chrono::duration<double>(t2 - t1).count());
      }
      // A decode step reads every weight once plus the K/V of the whole context (mean context over the run).
      const double ctx_mean = len + o.n_decode / 2.0;
      const double bytes = m.weights.stored_bytes + c.kv_bytes_per_token() * ctx_mean;
      const double floor_tok_s = bw / bytes;
      const double d = Median(dec);
      std::printf("| %7d | %6d | %13.1f | %12.1f | %18.1f | %13.0f%% |\n", t, len, Median(pre), d, floor_tok_s,
                  100.0 * d / floor_tok_s);
      std::fflush(stdout);
    }
    std::printf("(threads %d: measured read bandwidth %.1f GB/s)\n", t, bw / 1e9);
  }
  return 0;
}

}  // namespace

void RegisterBench(CLI::App& app, int* exit_code) {
  static BenchOptions o;
  auto* cmd = app.add_subcommand("bench", "measure prefill and decode tok/s against the memory-bandwidth floor");
  AddModelOption(cmd, &o.common);
  cmd->add_option("-p,--prompt-lengths", o.prompt_lengths, "comma-separated prompt lengths")->capture_default_str();
  cmd->add_option("-n,--n-decode", o.n_decode, "tokens decoded after each prompt")->capture_default_str()->check(CLI::Range(1, 1 << 20));
  cmd->add_option("-t,--threads", o.thread_counts, "comma-separated thread counts (default: all cores)");
  cmd->add_option("-r,--reps", o.reps, "repetitions per figure (median reported)")->capture_default_str()->check(CLI::Range(1, 1000));
  cmd->add_option("--ctx", o.common.ctx, "context limit (default: the model's)");
  cmd->add_flag("--exact", o.common.exact, "reference kernels");
  cmd->callback([exit_code] { *exit_code = Bench(o); });
}

}  // namespace razor::cli
