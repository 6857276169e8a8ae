// Which (layer, KV head) keeps every token and how the others are cut (RazorAttention §3), plus the
// kept-fraction formula used in reports. Pure arithmetic: no storage here (that is RazorKvCache).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace razor {

enum class KvMode {
  kFull,       // every head keeps every token (paged per-head storage; same numbers as FullKvCache)
  kRazor,      // retrieval heads keep everything; the others keep sinks + window + compensation token
  kStreaming,  // StreamingLLM baseline: every head keeps sinks + window, no compensation token
};

const char* KvModeName(KvMode mode);  // "full" | "razor" | "streaming"
Result<KvMode> ParseKvMode(std::string_view name);

struct RazorParams {
  KvMode mode = KvMode::kRazor;
  int64_t sinks = 4;            // N0: first tokens every compressed head keeps (attention sinks)
  int64_t window_min = 4000;    // S0: smallest local window, tokens
  double window_frac = 0.2;     // 1 / C: the window grows to this fraction of the prompt, W = max(S0, N / C)
  bool compensation = true;     // mean K/V of the dropped tokens as one token with logit + ln(Nd); off in streaming
  // Beyond the paper: during decode a compressed head keeps exactly W window tokens; the token leaving the
  // window is folded into the compensation token (running mean), so memory stays bounded. Off: every head
  // grows by one token per step (paper / MindIE).
  bool decode_fold = false;
  int64_t block_tokens = 64;    // tokens per pool block
};

// Kept fraction of the KV cache after compressing a prompt of n tokens, counting everything kept:
//   r + (1 - r) * (N0 + [compensation] + W) / n   for retrieval fraction r (1 when n <= N0 + W).
double ExpectedKeptFraction(double retrieval_fraction, int64_t n, int64_t sinks, int64_t window, bool compensation);

class KvHeadPolicy {
 public:
  // retrieval: [n_layers * n_kv_heads] (layer-major), true = retrieval head (keeps every token). Needed in
  // razor mode; ignored in full and streaming modes (may be empty there). Errors on bad sizes / parameters.
  static Result<KvHeadPolicy> Make(const RazorParams& params, int n_layers, int n_kv_heads,
                                   std::vector<bool> retrieval);

  const RazorParams& params() const { return params_; }
  KvMode mode() const { return params_.mode; }
  int n_layers() const { return n_layers_; }
  int n_kv_heads() const { return n_kv_heads_; }
  // True when this head is cut to sinks + window once the prompt is in.
  bool compresses(int layer, int kv_head) const;
  bool is_retrieval(int layer, int kv_head) const;
  bool compensation() const { return params_.compensation && params_.mode == KvMode::kRazor; }
  bool decode_fold() const { return params_.decode_fold && params_.mode != KvMode::kFull; }
  // W = max(S0, floor(n * window_frac)) for a prompt of n tokens.
  int64_t Window(int64_t n) const;
  // The window of one head: its own (SetHeadWindows) when it has one, else Window(n).
  int64_t HeadWindow(int layer, int kv_head, int64_t n) const;
  // Per-head windows ([n_layers * n_kv_heads], layer-major; 0 = use W): an ALiBi head keeps its span L_h
  // (RazorAttention §2) instead of W. Errors on a wrong size or a negative window.
  Status SetHeadWindows(std::vector<int64_t> windows);
  bool has_head_windows() const { return !head_windows_.empty(); }
  // A compressed head drops tokens only when n > N0 + W.
  bool WouldCompress(int64_t n) const { return n > params_.sinks + Window(n); }
  // Fraction of heads that keep every token (1 in full mode, 0 in streaming mode).
  double retrieval_fraction() const;
  double ExpectedKeptFraction(int64_t n) const;
  std::string Describe() const;  // one line for verbose output
  // Most pool blocks (of params().block_tokens tokens) a cache of this policy holds over a life of
  // `prompt_tokens` prompt tokens in one prefill, compressed layer by layer (RazorKvCache::OnLayerDone),
  // then decode up to `total_tokens` tokens, from empty. The larger of (a) the prefill of one layer: the
  // layers before it compressed, it whole, the later ones empty; (b) the end of decode: retrieval (and
  // too-short) heads at total_tokens, compressed ones at sinks + window + the decoded tokens (decode_fold:
  // their steady ring of blocks, which a too-short head joins once decode takes it past sinks + window).
  // What a server admits a request by.
  int64_t PlannedPeakBlocks(int64_t prompt_tokens, int64_t total_tokens) const;

 private:
  RazorParams params_;
  int n_layers_ = 0, n_kv_heads_ = 0;
  std::vector<bool> retrieval_;  // [n_layers * n_kv_heads]; empty unless razor mode
  std::vector<int64_t> head_windows_;  // [n_layers * n_kv_heads] or empty; 0 = W
};

}  // namespace razor
