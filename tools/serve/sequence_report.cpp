#include "serve/sequence_report.h"

namespace razor::serve {
namespace {

using nlohmann::json;

// [n_layers][n_kv_heads] from a layer-major vector (short rows when the vector is short).
template <typename T>
json PerLayer(const std::vector<T>& values, int n_layers, int n_kv_heads) {
  json layers = json::array();
  for (int l = 0; l < n_layers; ++l) {
    json row = json::array();
    for (int h = 0; h < n_kv_heads; ++h) {
      const size_t i = static_cast<size_t>(l) * static_cast<size_t>(n_kv_heads) + static_cast<size_t>(h);
      if (i < values.size()) row.push_back(static_cast<int64_t>(values[i]));
    }
    layers.push_back(std::move(row));
  }
  return layers;
}

json Sequence(const SequenceSnapshot& s) {
  const double reduction =
      s.full_bytes == 0 ? 0.0 : 1.0 - static_cast<double>(s.kv_bytes) / static_cast<double>(s.full_bytes);
  return {{"id", s.id},
          {"kv", s.kv},
          {"prompt_tokens", s.prompt_tokens},
          {"prefilled", s.prefilled},
          {"generated", s.generated},
          {"length", s.length},
          {"kv_bytes", s.kv_bytes},
          {"full_bytes", s.full_bytes},
          {"reduction", reduction},
          {"heads", s.heads},
          {"heads_compressed", s.heads_compressed},
          {"n_layers", s.n_layers},
          {"n_kv_heads", s.n_kv_heads},
          {"head_tokens", PerLayer(s.head_tokens, s.n_layers, s.n_kv_heads)},
          {"head_compressed", PerLayer(s.head_compressed, s.n_layers, s.n_kv_heads)}};
}

}  // namespace

json SequenceReport(const SchedulerMetrics& m, size_t pool_bytes) {
  json sequences = json::array();
  for (const SequenceSnapshot& s : m.sequences) sequences.push_back(Sequence(s));
  return {{"pool_bytes", pool_bytes},
          {"kv_bytes_held", m.kv_bytes_held},
          {"kv_bytes_full_equivalent", m.kv_bytes_full_equivalent},
          {"running", m.running},
          {"waiting", m.waiting},
          {"sequences", std::move(sequences)}};
}

}  // namespace razor::serve
