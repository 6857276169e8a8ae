// razor inspect MODEL: metadata, tensor table, parameter count, KV bytes per token.
#include <fmt/format.h>

#include <cstdio>
#include <map>
#include <string>

#include "cli_common.h"
#include "io/gguf.h"

namespace razor::cli {
namespace {

struct InspectOptions {
  std::string model = kDefaultModel;
  bool tensors = true;
  bool all_metadata = false;
};

std::string Shape(const std::vector<int64_t>& s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) out += (i ? " x " : "") + std::to_string(s[i]);
  return out;
}

int Inspect(const InspectOptions& o) {
  auto path = ResolveModelPath(o.model);
  if (!path) return Fail(path.error());
  auto loaded = LoadModel(*path, /*load_tokenizer=*/false);
  if (!loaded) return Fail(loaded.error());
  const LoadedModel& m = **loaded;
  const ModelConfig& c = m.config;
  std::printf("file:          %s (%s)\n", m.path.c_str(), m.format.c_str());
  if (m.gguf) std::printf("gguf version:  %u, %zu metadata keys, %zu tensors\n", m.gguf->version(), m.gguf->keys().size(), m.gguf->tensors().size());
  std::printf("architecture:  %s   name: %s\n", ArchitectureName(c.arch), c.name.c_str());
  std::printf("layers %d | dim %d | heads %d (kv %d, head dim %d) | ffn %d | vocab %d | context %d\n", c.n_layers,
              c.dim, c.n_heads, c.n_kv_heads, c.head_dim, c.ffn_dim, c.vocab_size, c.context_length);
  if (c.alibi) {
    std::string slopes;
    for (float x : AlibiSlopes(c.n_heads)) slopes += fmt::format("{}{:.4g}", slopes.empty() ? "" : " ", x);
    std::printf("positions:     ALiBi (no RoPE), slopes %s\n", slopes.c_str());
    std::printf("blocks:        LayerNorm+bias (eps %g, also after the embedding), fused QKV %s+bias, GELU-tanh MLP\n",
                c.rms_eps, c.fused_qkv_split ? "[3, heads, hd] " : "[heads, 3, hd] ");
  } else {
    std::printf("rope:          base %.0f, %s pairs%s%s\n", c.rope_theta,
                c.rope_layout == RopeLayout::kInterleaved ? "interleaved" : "half-split",
                c.rope_scaling.kind == RopeScaling::Kind::kLlama3 ? ", llama3 scaling" : "",
                m.weights.rope_freq_factors.empty() ? "" : ", rope_freqs divisors");
  }
  std::printf("extras:        qkv bias %s, qk norm %s, tied embeddings %s\n", c.qkv_bias ? "yes" : "no",
              c.qk_norm ? "yes" : "no", c.tied_embeddings ? "yes" : "no");
  std::printf("parameters:    %.1f M (%lld), stored in %.1f MiB\n", m.weights.parameter_count / 1e6,
              (long long)m.weights.parameter_count, m.weights.stored_bytes / 1048576.0);
  std::printf("KV cache:      %zu bytes per token (f16 K+V, all layers; f32: %zu); %.1f MiB f16 at the full context "
              "of %d\n",
              c.kv_bytes_per_token(2), c.kv_bytes_per_token(4), c.kv_bytes_per_token(2) * double(c.context_length) / 1048576.0,
              c.context_length);
  if (m.gguf) {
    std::printf("\nmetadata:\n");
    for (const auto& k : m.gguf->keys()) {
      if (!o.all_metadata && k.rfind("tokenizer.chat_template", 0) == 0) {
        std::printf("  %-44s (%zu chars)\n", k.c_str(), m.gguf->GetStringOr(k).value_or("").size());
        continue;
      }
      std::printf("  %-44s %s\n", k.c_str(), m.gguf->Find(k)->ToShortString().c_str());
    }
  }
  if (o.tensors && m.gguf) {
    std::map<std::string, std::pair<int, size_t>> by_type;
    std::printf("\ntensors:\n  %-36s %-6s %-20s %12s\n", "name", "type", "shape", "bytes");
    for (const auto& t : m.gguf->tensors()) {
      std::printf("  %-36s %-6s %-20s %12zu\n", t.name.c_str(), TensorTypeName(t.type), Shape(t.shape).c_str(), t.nbytes);
      auto& e = by_type[TensorTypeName(t.type)];
      e.first++;
      e.second += t.nbytes;
    }
    std::printf("\nby type:\n");
    for (const auto& [name, e] : by_type) std::printf("  %-6s %4d tensors %10.2f MiB\n", name.c_str(), e.first, e.second / 1048576.0);
  }
  return 0;
}

}  // namespace

void RegisterInspect(CLI::App& app, int* exit_code) {
  static InspectOptions o;
  auto* cmd = app.add_subcommand("inspect", "show a model's metadata, tensors, parameters and KV bytes per token");
  cmd->add_option("model", o.model, "GGUF file, HF checkpoint directory, or catalogue name")->capture_default_str();
  cmd->add_flag("!--no-tensors", o.tensors, "omit the tensor table");
  cmd->add_flag("--all-metadata", o.all_metadata, "print long values (chat template) in full");
  cmd->callback([exit_code] { *exit_code = Inspect(o); });
}

}  // namespace razor::cli
