// The SIMD levels (MatMulIsa names) this CPU runs, for tests that check every level: the fast matmul and the
// attention kernels both follow the level SetMatMulIsa chooses.
#pragma once

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "ops/matmul.h"

namespace razor::testing {

// "scalar", then "avx2" and "avx512" where the CPU has them; the current level is left as it was.
inline std::vector<std::string> SupportedIsas() {
  std::vector<std::string> out;
  const std::string best = MatMulIsa();
  for (const char* name : {"scalar", "avx2", "avx512"})
    if (SetMatMulIsa(name)) out.push_back(name);
  SetMatMulIsa(best.c_str());
  return out;
}

// Runs body() once per supported level (a gtest trace names the level), then restores the current one.
template <class Body>
void ForEachIsa(Body body) {
  const std::string best = MatMulIsa();
  for (const std::string& isa : SupportedIsas()) {
    SCOPED_TRACE("isa " + isa);
    ASSERT_TRUE(SetMatMulIsa(isa.c_str()));
    body();
  }
  SetMatMulIsa(best.c_str());
}

}  // namespace razor::testing
