// Attention spans of ALiBi heads from the weights alone (RazorAttention §2).
//
// A head's logit for a key Δ positions back is q.k / sqrt(d) - m_h Δ. If |q.k| / sqrt(d) <= B_h for every
// query and key, the mass on all keys farther back than L is at most about e^{2 B_h - m_h L} times the mass
// on the nearest key, so keys beyond L_h = (2 B_h + ln(1/ε)) / m_h carry less than ε. Heads whose L_h
// reaches the context are retrieval heads.
//
// B_h here is a worst-case bound, not msModelSlim's heuristic (max_l sqrt(max |W_q W_k^T|) + α, α = 100):
//   |q.k| <= (σ_q X + |b_q|)(σ_k X + |b_k|),  B_h = max over layers of that / sqrt(head_dim), where
//   σ_q, σ_k  upper bounds on the spectral norms of the head's rows of W_q, W_k (the smaller of the
//             Frobenius norm and the Gershgorin bound on the top eigenvalue of W W^T);
//   |b_q|, |b_k|  the norms of the head's biases;
//   X         a bound on |x|, the normed input of the attention. A LayerNorm output is gain ⊙ z + bias with
//             |z| <= sqrt(dim), so X = max|gain| sqrt(dim) + |bias| (RMSNorm: max|gain| sqrt(dim)) holds for
//             every input: the activation-scale assumption is only that the norm is the one in the weights.
//             AlibiSpanOptions::activation_norm replaces X with a measured or assumed value.
// The bound is rigorous and therefore loose: on real checkpoints it marks more heads as retrieval than the
// paper's heuristic would.
#pragma once

#include <cstdint>
#include <vector>

#include "core/status.h"
#include "kv/head_profile.h"
#include "model/model_config.h"
#include "model/model_weights.h"

namespace razor {

struct AlibiSpanOptions {
  double epsilon = 1e-5;       // mass allowed beyond the span
  int64_t context = 0;         // retrieval when span >= context; 0: the model's context length
  double activation_norm = 0;  // X above; 0: the worst case from each layer's attention norm
};

// L = (2 bound + ln(1/epsilon)) / slope, in tokens; +inf for slope <= 0.
double AlibiSpanLength(double bound, double slope, double epsilon);

// Per query head: slope (AlibiSlopes, or `slopes` when given: [n_heads]), B_h, L_h, retrieval flag.
Result<AlibiSpanSummary> ComputeAlibiSpans(const ModelConfig& config, const ModelWeights& weights,
                                           const AlibiSpanOptions& options, const std::vector<float>* slopes = nullptr);

}  // namespace razor
