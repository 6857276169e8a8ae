// libFuzzer target for the Hugging Face config.json parser (ConfigFromHfJsonText). Seeds in fuzz/corpus_hf_config
// (the tiny fixtures' configs and a zero-heads one). Build and run (clang):
//   CXX=clang++ cmake --preset fuzz && cmake --build build/fuzz --target fuzz_hf_config
//   build/fuzz/fuzz_hf_config -max_total_time=30 fuzz/corpus_hf_config
#include <cstddef>
#include <cstdint>
#include <string>

#include "config_invariants.h"
#include "model/model_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto c = razor::ConfigFromHfJsonText(text, "fuzz/config.json");
  if (c.ok()) CheckConfigInvariants(*c);
  else if (c.error().find('\n') != std::string::npos) std::abort();  // errors are one line
  return 0;
}
