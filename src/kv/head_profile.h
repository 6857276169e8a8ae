// A retrieval-head profile (RazorAttention §1): per-(layer, KV head) induction and echo scores, the
// per-query-head scores they came from, the selected retrieval KV heads, the parameters that produced them,
// and the identity of the model they belong to. Stored as versioned JSON so profiles can be shared and
// checked against the model they are applied to.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "core/tensor_view.h"

namespace razor {

// What a profile must match to be applied to a model. kv knows nothing of model configs, so the runtime
// fills this in (ModelIdentityOf in runtime/head_profiler.h).
struct ModelIdentity {
  std::string architecture;  // "llama" | "qwen2" | "qwen3"
  std::string name;          // informational (general.name); not compared
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  std::string fingerprint;   // "fnv1a64:<16 hex>" of the tensor table (TensorTableFingerprint)

  // One line for error messages: "llama 'SmolLM2' (30 layers, 9 heads / 3 KV heads, head dim 64, fnv1a64:...)".
  std::string Describe() const;
  bool SameShape(const ModelIdentity& o) const;
};

// FNV-1a 64 over every tensor's name, type and shape, in the order given: identifies a checkpoint
// (a re-quantized or fine-tuned-and-renamed model gets another fingerprint) without hashing gigabytes.
std::string TensorTableFingerprint(const std::vector<const TensorView*>& tensors);

struct KvHeadId {
  int layer = 0;
  int kv_head = 0;
  friend bool operator==(const KvHeadId& a, const KvHeadId& b) { return a.layer == b.layer && a.kv_head == b.kv_head; }
  friend bool operator<(const KvHeadId& a, const KvHeadId& b) {
    return a.layer != b.layer ? a.layer < b.layer : a.kv_head < b.kv_head;
  }
};

// The inputs that produced the scores (enough to reproduce them bit for bit on the same build).
struct HeadProfileParams {
  double induction_ratio = 0.14;  // fraction of all KV heads taken by induction score
  double echo_ratio = 0.01;       // fraction of all KV heads taken by echo score
  int64_t block = 2500;           // L: tokens in the random block (after capping by the context)
  int repeats = 4;                // R: copies of the block
  uint64_t seed = 1;
  int32_t token_lo = 0;           // block ids are uniform over the ordinary ids in [token_lo, token_hi)
  int32_t token_hi = 0;
  int32_t bos_id = -1;            // the first token of the input
};

// ALiBi attention span of one query head (RazorAttention §2, runtime/alibi_spans.h): keys farther back than
// `span` tokens carry less than `epsilon` of the head's attention mass.
struct AlibiHeadSpan {
  int head = 0;            // query head index (the same slope in every layer)
  double slope = 0;        // m_h
  double bound = 0;        // B_h >= |q.k| / sqrt(head_dim), max over layers
  double span = 0;         // L_h = (2 B_h + ln(1/epsilon)) / m_h, in tokens (inf for slope 0)
  bool retrieval = false;  // span >= context
};

struct AlibiSpanSummary {
  double epsilon = 1e-5;
  int64_t context = 0;     // the context the retrieval flags were judged against
  std::vector<AlibiHeadSpan> heads;  // empty: not an ALiBi model (no "alibi_spans" in the JSON)
};

class HeadProfile {
 public:
  static constexpr int kFormatVersion = 1;
  static constexpr const char* kFormatName = "razor-head-profile";

  ModelIdentity model;
  HeadProfileParams params;
  // Scores are mean attention mass, in [0, 1]. Row-major by layer.
  std::vector<float> kv_induction, kv_echo;  // [n_layers * n_kv_heads]: max over the group's query heads
  std::vector<float> q_induction, q_echo;    // [n_layers * n_heads]
  std::vector<KvHeadId> by_induction;        // heads selected by induction score (ranked, best first)
  std::vector<KvHeadId> by_echo;             // heads selected by echo score (ranked, best first)
  std::vector<KvHeadId> retrieval;           // by_induction ∪ by_echo, sorted by (layer, kv_head)
  // Optional (ALiBi models): per-head spans, JSON "alibi_spans" {epsilon, context, heads: [...]}.
  // They do not change `retrieval` here; MakeKvCache (runtime/kv_cache_factory.h) adds the heads whose span
  // covers its context and gives the others their span as window. Profiles without the field read as before.
  AlibiSpanSummary alibi_spans;

  int total_kv_heads() const { return model.n_layers * model.n_kv_heads; }
  float kv_induction_at(int layer, int kv_head) const { return kv_induction[layer * model.n_kv_heads + kv_head]; }
  float kv_echo_at(int layer, int kv_head) const { return kv_echo[layer * model.n_kv_heads + kv_head]; }
  bool IsRetrieval(int layer, int kv_head) const;
  // [n_layers * n_kv_heads] flags, what a compressing cache consumes.
  std::vector<bool> RetrievalMask() const;

  // KV heads ranked globally (all layers together) by a score vector, best first; ties by (layer, head).
  std::vector<KvHeadId> Ranked(const std::vector<float>& kv_scores) const;
  // Fills kv_* from q_* (max over each group) and selects by_induction / by_echo / retrieval from the
  // ratios in params: top ceil(ratio * total) of each ranking.
  void SelectRetrievalHeads();

  // Error naming both models when this profile was made for another model (shapes or fingerprint).
  // require_same_fingerprint=false accepts the same shapes from another checkpoint (e.g. another quantization).
  Status CheckMatches(const ModelIdentity& model_identity, bool require_same_fingerprint = true) const;

  std::string ToJson() const;
  // `origin` prefixes errors (a path). Every error is one line.
  static Result<HeadProfile> FromJson(const std::string& text, const std::string& origin);
  static Result<HeadProfile> Load(const std::string& path);
  // Writes atomically (temp file + rename). An existing file is replaced only when overwrite is set or
  // when it already holds exactly this profile; otherwise an error says what it holds.
  Status Save(const std::string& path, bool overwrite) const;
};

// Number of heads a ratio selects out of total: ceil(ratio * total), robust to 0.14 * 100 = 14.000000000000002.
int HeadsForRatio(double ratio, int total);

}  // namespace razor
