// What RoPE needs to know about a model: base, rotated dimensions, pair layout, long-context scaling.
// Lives in ops so the kernels never reach up into model/ (ModelConfig holds one of these).
#pragma once

namespace razor {

// How RoPE pairs the dimensions of a head.
enum class RopeLayout {
  kInterleaved,  // pairs (x[2i], x[2i+1])          — llama.cpp "normal" (GGUF llama, whose Q/K are permuted)
  kHalfSplit,    // pairs (x[i], x[i + head_dim/2]) — HF rotate_half, llama.cpp "neox"
};

struct RopeScaling {
  enum class Kind { kNone, kLlama3 } kind = Kind::kNone;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  double original_max_positions = 8192;
};

struct RopeParams {
  double theta = 10000.0;
  int dim = 0;  // dimensions rotated per head
  RopeLayout layout = RopeLayout::kHalfSplit;
  RopeScaling scaling;
};

}  // namespace razor
