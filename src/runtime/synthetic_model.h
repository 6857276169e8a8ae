// Random-weight models of real shapes, for speed runs at 8B scale without a checkpoint (razor bench
// --synthetic). The weight matrices have no host data (TensorView::data == nullptr): a device backend fills
// them with random bf16 values in its own memory (CudaBackend), so nothing of the model's size is made or
// copied on the host. Norm gains are ones, biases zeros. The CPU backend cannot run them.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "kv/head_profile.h"
#include "runtime/loaded_model.h"

namespace razor {

// The shapes known by name: "llama-3.1-8b", "qwen2.5-7b", "smollm2-135m".
std::vector<std::string> SyntheticShapeNames();
Result<std::shared_ptr<LoadedModel>> MakeSyntheticModel(std::string_view shape);

// A head profile for a model whose heads cannot be profiled (random weights): ceil(fraction * KV heads) heads
// chosen at random (seeded) as retrieval heads, so that speed runs see a realistic head mix (RazorAttention's
// 15 %: fraction 0.15). Its scores are the random draws, marked as such by params.seed and a zero echo ratio.
Result<HeadProfile> MakeSyntheticProfile(const LoadedModel& model, double fraction, uint64_t seed);

}  // namespace razor
