// libFuzzer target for the head-profile JSON reader (HeadProfile::FromJson). Seeds in fuzz/corpus_head_profile.
// Build and run (clang):
//   CXX=clang++ cmake --preset fuzz && cmake --build build/fuzz --target fuzz_head_profile
//   build/fuzz/fuzz_head_profile -max_total_time=30 fuzz/corpus_head_profile
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "kv/head_profile.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto p = razor::HeadProfile::FromJson(text, "fuzz.json");
  if (!p.ok()) {
    if (p.error().find('\n') != std::string::npos) std::abort();  // errors are one line
    return 0;
  }
  // Touch what a cache built from it touches: the mask (indexes by every named head), rankings, re-selection,
  // and a round trip through the writer, which must read back.
  const auto mask = p->RetrievalMask();
  if (mask.size() != static_cast<size_t>(p->total_kv_heads())) std::abort();
  (void)p->Ranked(p->kv_induction);
  for (const auto& h : p->retrieval) (void)p->IsRetrieval(h.layer, h.kv_head);
  razor::HeadProfile copy = *p;
  copy.SelectRetrievalHeads();
  if (!razor::HeadProfile::FromJson(copy.ToJson(), "round-trip").ok()) std::abort();
  return 0;
}
