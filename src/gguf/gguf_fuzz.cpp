// libFuzzer target: the GGUF parser must reject any byte string with an Error, never crash.
#include <cstddef>
#include <cstdint>

#include "gguf/gguf_file.h"
#include "util/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    glimpse::GgufFile f = glimpse::GgufFile::parse(data, size, "fuzz");
    // Touch what the parser exposes, as a loader would.
    for (const auto& [key, v] : f.metadata()) {
      if (v.type == glimpse::GgufValueType::ARRAY && v.raw && v.count > 0) {
        (void)v.array_float(v.count - 1);
      }
    }
    for (const auto& t : f.tensors()) {
      if (t.nbytes > 0) {
        volatile uint8_t last = t.data[t.nbytes - 1];
        (void)last;
      }
    }
  } catch (const glimpse::Error&) {
  }
  return 0;
}
