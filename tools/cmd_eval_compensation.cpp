// razor eval compensation: what the compensation token does for the heads razor compresses, on the CPU with
// a full fp32 cache (eval::CompensationProbe): dropped attention mass, the token's share and how much of the
// dropped mass it stands for, output errors with / without it, and the spread of the dropped keys.
// Writes DIR/compensation.{json,md,png}. See docs/EVAL.md.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>

#include "cli_common.h"
#include "eval/compensation_probe.h"
#include "eval/eval_report.h"
#include "eval/haystack.h"
#include "eval/kld_samples.h"
#include "kv/full_kv_cache.h"
#include "model/transformer.h"
#include "output_path.h"
#include "runtime/heatmap_png.h"

namespace razor::cli {
namespace {

struct CompensationOptions {
  CommonOptions common;
  KvCliOptions kv;
  int length = 4096, steps = 32, samples = 1;
  uint64_t seed = 1;
  bool force = false;
  std::string out = "eval_out", haystack_dir;
};

std::string Row(const std::string& label, const eval::CompensationSummary& s) {
  return fmt::format("| {} | {:.3f} | {:.3f} | {:.3f} | {:.4f} | {:.4f} | {:.4f} | {:.0f}% | {:.3f} | {:.3f} | {:.3f} |\n",
                     label, s.dropped_mass, s.token_share, s.captured, s.err_none, s.err_token, s.err_ideal_weight,
                     100 * s.token_better, s.key_cos, s.key_norm_ratio, s.value_norm_ratio);
}

int RunCompensation(CompensationOptions& o) {
  auto modes = o.kv.Resolve();
  if (!modes) return Fail(modes.error());
  // The probe measures razor's compressed heads as the paper's cache cuts them at the end of the prompt.
  if (modes->size() != 1 || (*modes)[0] != KvMode::kRazor) return Fail("eval compensation measures --kv razor only");
  if (o.kv.no_compensation) return Fail("eval compensation: --no-compensation has nothing to measure");
  if (o.kv.cache.razor.decode_fold)
    return Fail("eval compensation: --decode-fold is not modelled (its dropped set grows during decode)");
  if (o.steps >= o.length) return Fail("--steps must be below --length");
  if (Status st = CheckOutputDir(o.out, {"compensation.json", "compensation.md", "compensation.png"}, o.force, "--out");
      !st.ok())
    return Fail(st.message());
  auto loaded = LoadModelFromOption(o.common.model);
  if (!loaded) return Fail(loaded.error());
  const LoadedModel& m = **loaded;
  const ModelConfig& c = m.config;
  if (!m.tokenizer) return Fail(m.path + ": the model has no tokenizer");
  if (c.alibi) return Fail("eval compensation: ALiBi models keep per-head spans, not one window (not supported)");
  if (c.sliding_window > 0)  // the probe's sums run over every key with 1/sqrt(d): no local window, no query scale
    return Fail("eval compensation: sliding-window models (Gemma 3) are not modelled (not supported)");
  const int64_t ctx = o.common.ctx > 0 ? o.common.ctx : c.context_length;
  if (o.length > ctx) return Fail(fmt::format("--length {} is over the context of {}", o.length, ctx));
  ThreadPool pool(o.common.ResolvedThreads());
  KvCacheOptions kvo = o.kv.cache;
  kvo.mode = KvMode::kRazor;
  kvo.log = [](const std::string& s) { std::fprintf(stderr, "%s\n", s.c_str()); };
  auto profile = LoadOrMakeProfile(m, kvo, pool);
  if (!profile) return Fail(profile.error());
  const int64_t prefix = o.length - o.steps;
  auto policy = MakeKvPolicy(m, kvo, o.length, prefix, &*profile);
  if (!policy) return Fail(policy.error());
  std::vector<bool> compressed(static_cast<size_t>(c.n_layers) * c.n_kv_heads);
  for (int l = 0; l < c.n_layers; ++l)
    for (int g = 0; g < c.n_kv_heads; ++g) compressed[static_cast<size_t>(l) * c.n_kv_heads + g] = policy->compresses(l, g);
  const int64_t window = policy->Window(prefix), sinks = policy->params().sinks;
  if (prefix <= sinks + window)
    return Fail(fmt::format("a prefix of {} tokens is not compressed (sinks {} + window {}): raise --length",
                            prefix, sinks, window));

  auto text = eval::LoadHaystackText(o.haystack_dir.empty() ? eval::DefaultHaystackDir() : o.haystack_dir);
  if (!text) return Fail(text.error());
  const std::vector<std::string> sentences = eval::SplitSentences(*text);
  const size_t chars = static_cast<size_t>(o.length) * 8;
  auto starts = eval::KldWindowStarts(o.seed, o.samples, sentences.size(),
                                      eval::SentencesForChars(sentences, static_cast<size_t>(o.length) * 5));
  if (!starts) return Fail(starts.error());
  // Sums per (layer, query head) over every sample's queries; the spreads of every sample's dropped keys.
  std::vector<eval::CompensationHeadSums> sums(static_cast<size_t>(c.n_layers) * c.n_heads);
  std::vector<eval::DroppedSpread> spreads;
  std::vector<std::vector<eval::DroppedSpread>> layer_spreads(c.n_layers);
  std::vector<double> captured_kv(compressed.size(), 0.0), dropped_kv(compressed.size(), 0.0);
  std::fprintf(stderr, "[compensation] %lld-token prefix (dropped [%lld, %lld) on %lld of %zu KV heads), %d queries "
               "after it, %d sample(s)\n", (long long)prefix, (long long)sinks, (long long)(prefix - window),
               (long long)std::count(compressed.begin(), compressed.end(), true), compressed.size(), o.steps, o.samples);
  for (int k = 0; k < o.samples; ++k) {
    const size_t first = (*starts)[k];
    std::vector<int32_t> tokens =
        m.tokenizer->Encode(eval::JoinWindow(sentences, first, chars), /*add_bos=*/true, /*parse_special=*/false);
    if (static_cast<int64_t>(tokens.size()) < o.length)
      return Fail(fmt::format("not enough haystack text for --length {}", o.length));
    tokens.resize(o.length);
    eval::CompensationProbe probe(c.n_layers, c.n_heads, c.n_kv_heads, c.head_dim, compressed, sinks, window, prefix,
                                  &pool);
    Transformer tf(c, m.weights, pool, o.common.mode());
    tf.set_observer(&probe);
    FullKvCache cache(c.n_layers, c.n_kv_heads, c.head_dim, o.length);
    std::vector<float> logits;
    const int64_t chunk = 512;
    for (int64_t b = 0; b < o.length; b += chunk) {
      if (Status st = tf.Forward(tokens.data() + b, std::min(chunk, o.length - b), cache, false, &logits); !st.ok())
        return Fail(st.message());
      std::fprintf(stderr, "\r[compensation %d/%d] %lld/%d tokens", k + 1, o.samples,
                   (long long)std::min<int64_t>(b + chunk, o.length), o.length);
    }
    std::fprintf(stderr, "\n");
    const auto& hs = probe.head_sums();
    spreads.insert(spreads.end(), probe.spreads().begin(), probe.spreads().end());
    const int group = c.n_heads / c.n_kv_heads;
    for (int l = 0; l < c.n_layers; ++l) {
      for (int h = 0; h < c.n_heads; ++h) {
        const auto& x = hs[static_cast<size_t>(l) * c.n_heads + h];
        eval::CompensationHeadSums& s = sums[static_cast<size_t>(l) * c.n_heads + h];
        s.queries += x.queries, s.token_better += x.token_better;
        s.dropped_mass += x.dropped_mass, s.token_share += x.token_share, s.token_mass += x.token_mass;
        s.err_token += x.err_token, s.err_none += x.err_none, s.err_ideal_weight += x.err_ideal_weight;
        captured_kv[static_cast<size_t>(l) * c.n_kv_heads + h / group] += x.token_mass;
        dropped_kv[static_cast<size_t>(l) * c.n_kv_heads + h / group] += x.dropped_mass;
      }
      for (int g = 0; g < c.n_kv_heads; ++g) layer_spreads[l].push_back(probe.spreads()[static_cast<size_t>(l) * c.n_kv_heads + g]);
    }
  }

  const eval::CompensationSummary all = eval::Summarise(sums, spreads);
  nlohmann::json j = {{"eval", "compensation"}, {"model", m.path},   {"length", o.length}, {"prefix_tokens", prefix},
                      {"steps", o.steps},        {"samples", o.samples}, {"sinks", sinks},   {"window", window},
                      {"summary", eval::ToJson(all)}};
  j["settings"] = {{"sinks", sinks}, {"window_min", o.kv.cache.razor.window_min},
                   {"window_frac", o.kv.cache.razor.window_frac}, {"induction_ratio", o.kv.cache.induction_ratio},
                   {"echo_heads", o.kv.cache.use_echo_heads}, {"threads", o.common.ResolvedThreads()},
                   {"kernels", o.common.mode_name()}, {"seed", o.seed}};
  j["sample_first_sentences"] = *starts;
  j["layers"] = nlohmann::json::array();
  std::string md = fmt::format(
      "# razor eval compensation\n\nmodel: `{}`  \n{} sample(s): a {}-token prefix of essays, then {} queries; razor "
      "drops [{}, {}) on {} of {} KV heads (window {}).  \nColumns: mean over (compressed query head, query) of the "
      "full cache's attention mass on the dropped tokens; the compensation token's share of razor's softmax; captured "
      "= its weight / the dropped mass (Σ over queries); relative output error without the token, with it, and with "
      "the token weighted by the true dropped mass; queries where the token lowered the error; mean cos(k, k̄) of the "
      "dropped keys, |k̄| / mean |k|, |v̄| / mean |v|.\n\n| layers | dropped mass | token share | captured | err (no "
      "token) | err (token) | err (ideal weight) | token helps | key cos | \\|k̄\\|/\\|k\\| | \\|v̄\\|/\\|v\\| "
      "|\n|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|\n",
      m.path, o.samples, prefix, o.steps, sinks, prefix - window,
      std::count(compressed.begin(), compressed.end(), true), compressed.size(), window);
  md += Row("all", all);
  for (int l = 0; l < c.n_layers; ++l) {
    const std::vector<eval::CompensationHeadSums> layer(sums.begin() + static_cast<ptrdiff_t>(l) * c.n_heads,
                                                        sums.begin() + static_cast<ptrdiff_t>(l + 1) * c.n_heads);
    const eval::CompensationSummary s = eval::Summarise(layer, layer_spreads[l]);
    nlohmann::json jl = eval::ToJson(s);
    jl["layer"] = l;
    j["layers"].push_back(jl);
    if (s.heads > 0) md += Row(std::to_string(l), s);
  }
  // Picture: layer x KV head, the share of the dropped mass the token stands for (retrieval heads blank).
  eval::EvalReport pic;
  pic.eval = "compensation";
  pic.model = m.path;
  pic.legend = "dropped attention mass the compensation token stands for (captured)";
  pic.column_axis = "kv head";
  pic.row_axis = "layer";
  pic.show_reduction = false;
  pic.title = fmt::format("compensation token - captured share of the dropped mass, prefix {}", prefix);
  j["captured_per_kv_head"] = nlohmann::json::array();
  for (int l = 0; l < c.n_layers; ++l)
    for (int g = 0; g < c.n_kv_heads; ++g) {
      const size_t hk = static_cast<size_t>(l) * c.n_kv_heads + g;
      const double cap = dropped_kv[hk] > 0 ? captured_kv[hk] / dropped_kv[hk] : 0;
      j["captured_per_kv_head"].push_back(compressed[hk] ? nlohmann::json(cap) : nlohmann::json(nullptr));
      if (!compressed[hk]) continue;
      eval::CellResult cell;
      cell.task = fmt::format("{:02d}", l);
      cell.mode = "captured";
      cell.length = g;
      cell.score = std::min(1.0, cap);
      pic.cells.push_back(cell);
    }
  std::error_code ec;
  std::filesystem::create_directories(o.out, ec);
  std::ofstream json_out(o.out + "/compensation.json");
  json_out << j.dump(2) << "\n";
  std::ofstream md_out(o.out + "/compensation.md");
  md_out << md;
  if (ec || !json_out || !md_out) return Fail(fmt::format("--out {}: cannot write compensation.json / .md", o.out));
  if (!pic.cells.empty())
    if (Status st = WritePng(eval::RenderScoreGrid(pic, "captured"), o.out + "/compensation.png"); !st.ok())
      return Fail(st.message());
  std::printf("%s\nwrote %s/compensation.json, compensation.md, compensation.png\n", md.c_str(), o.out.c_str());
  return 0;
}

}  // namespace

void RegisterEvalCompensation(CLI::App* eval, int* exit_code) {
  static CompensationOptions o;
  auto* cmd = eval->add_subcommand(
      "compensation", "what the compensation token stands for in razor's compressed heads (CPU, full fp32 cache)");
  AddModelOption(cmd, &o.common);
  AddRuntimeOptions(cmd, &o.common);
  o.kv.cache.razor.window_min = 512;  // as the other evals
  o.kv.modes = "razor";
  AddKvOptions(cmd, &o.kv, /*allow_list=*/false);
  AddNumber(cmd, "--length", &o.length, "tokens in all: prefix + queries", 64, 1 << 20);
  AddNumber(cmd, "--steps", &o.steps, "queries scored after the prefix", 1, 1 << 20);
  AddNumber(cmd, "--samples", &o.samples, "windows of the essays (as eval kld --samples)", 1, 1000);
  AddNumber(cmd, "--seed", &o.seed, "seed of the windows", uint64_t{0}, UINT64_MAX);
  cmd->add_option("--out", o.out, "output directory")->capture_default_str();
  cmd->add_option("--haystack", o.haystack_dir, "essay directory (default: ${RAZOR_HOME}/eval/haystack)");
  cmd->add_flag("--force", o.force, "replace existing compensation.* in --out");
  cmd->callback([exit_code] { *exit_code = RunCompensation(o); });
}

}  // namespace razor::cli
