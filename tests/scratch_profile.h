// A short head profile of a real model (BOS + a 64-token block repeated twice) saved as JSON: for tests that
// run razor mode through the binary without profiling the whole model or touching its cached profile.
#pragma once

#include <string>

#include "core/status.h"
#include "core/thread_pool.h"
#include "runtime/head_profiler.h"
#include "runtime/loaded_model.h"

namespace razor::testing {

inline Result<HeadProfile> SaveScratchProfile(const LoadedModel& model, const std::string& path) {
  ThreadPool pool(2);
  HeadProfilerOptions po;
  po.block = 64;
  po.repeats = 2;
  RAZOR_ASSIGN_OR_RETURN(HeadProfile profile, ProfileHeads(model, pool, MathMode::kFast, po));
  RAZOR_RETURN_IF_ERROR(profile.Save(path, /*overwrite=*/true));
  return profile;
}

}  // namespace razor::testing
