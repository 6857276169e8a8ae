#include "serve/prometheus_metrics.h"

#include <fmt/format.h>

namespace razor::serve {
namespace {

void Metric(std::string* out, const char* name, const char* type, const char* help, double value) {
  *out += fmt::format("# HELP razor:{} {}\n# TYPE razor:{} {}\nrazor:{} {}\n", name, help, name, type, name, value);
}

}  // namespace

std::string FormatPrometheusMetrics(const SchedulerMetrics& m) {
  std::string out;
  Metric(&out, "num_requests_running", "gauge", "Requests whose sequences are in the running batch.",
         double(m.running));
  Metric(&out, "num_requests_waiting", "gauge", "Requests queued for admission.", double(m.waiting));
  Metric(&out, "kv_cache_usage_perc", "gauge", "Fraction of the KV pool's bytes held by sequences (0..1).",
         m.kv_pool_bytes > 0 ? double(m.kv_bytes_held) / double(m.kv_pool_bytes) : 0.0);
  Metric(&out, "prompt_tokens_total", "counter", "Prompt tokens prefilled.", double(m.prompt_tokens_total));
  Metric(&out, "generation_tokens_total", "counter", "Tokens generated.", double(m.generation_tokens_total));
  Metric(&out, "kv_bytes_held", "gauge", "KV pool bytes held by the running sequences.", double(m.kv_bytes_held));
  Metric(&out, "kv_bytes_full_equivalent", "gauge",
         "K/V bytes full caches of the running sequences would hold at their lengths.",
         double(m.kv_bytes_full_equivalent));
  Metric(&out, "kv_heads_compressed", "gauge",
         "KV heads (over layers and running sequences) cut to sinks + window + compensation token.",
         double(m.heads_compressed));
  m.time_to_first_token.Format("time_to_first_token_seconds",
                               "From a request's arrival to its first generated token, seconds.", &out);
  m.inter_token_latency.Format("inter_token_latency_seconds", "Between consecutive generated tokens, seconds.", &out);
  m.e2e_request_latency.Format("e2e_request_latency_seconds",
                               "From a request's arrival to its last token (requests that finished), seconds.", &out);
  return out;
}

}  // namespace razor::serve
