// libFuzzer target for the GGUF reader. Build and run (clang; seeds in fuzz/corpus_gguf):
//   CXX=clang++ cmake --preset fuzz && ninja -C build/fuzz fuzz_gguf
//   build/fuzz/fuzz_gguf -max_total_time=60 fuzz/corpus_gguf   (add a scratch dir first to keep new inputs)
#include <cstddef>
#include <cstdint>

#include "config_invariants.h"
#include "io/gguf.h"
#include "model/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto g = razor::GgufFile::ParseBytes(data, size, "fuzz.gguf");
  if (g.ok()) {
    // Touch what a loader would touch: every value's rendering and every tensor's bytes (ASan checks the range).
    for (const auto& key : g->keys()) (void)g->Find(key)->ToShortString();
    volatile uint8_t sink = 0;
    for (const auto& t : g->tensors()) {
      if (t.nbytes > 0) sink = sink ^ t.data[0] ^ t.data[t.nbytes - 1];
      (void)g->FindTensor(t.name);
      (void)t.elements();
    }
    // The config a loader builds from the metadata: validated before any arithmetic on it.
    if (auto c = razor::ConfigFromGguf(*g); c.ok()) CheckConfigInvariants(*c);
  }
  return 0;
}
