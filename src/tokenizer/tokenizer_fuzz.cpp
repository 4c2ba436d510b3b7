// libFuzzer target: encode must not crash on any bytes and must give valid ids; with a
// byte-level BPE vocabulary decode(encode(x)) also gives back x (less the bytes the
// vocabulary cannot represent), with special-token parsing on and off. (SentencePiece
// vocabularies cannot round-trip: they decode U+2581 in the input as a space.)
// Vocabulary: $GLIMPSE_FUZZ_VOCAB, else the starcoder conformance fixture, else (a checkout
// without ../shared) the default model's byte-level BPE vocabulary.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "gguf/gguf_file.h"
#include "tokenizer/tokenizer.h"

namespace {

const glimpse::Tokenizer& tokenizer() {
  static const std::unique_ptr<glimpse::Tokenizer> tok = [] {
    std::string path;
    if (const char* p = std::getenv("GLIMPSE_FUZZ_VOCAB"); p && *p) {
      path = p;
    } else {
      path = std::string(GLIMPSE_SOURCE_DIR) +
             "/../shared/conformance/tokenizer/ggml-vocab-starcoder.gguf";
      if (FILE* f = std::fopen(path.c_str(), "rb")) {
        std::fclose(f);
      } else {
        path = std::string(GLIMPSE_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
      }
    }
    try {
      return std::make_unique<glimpse::Tokenizer>(
          glimpse::Tokenizer::from_gguf(glimpse::GgufFile::open(path)));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "tokenizer_fuzz: cannot load %s: %s\n", path.c_str(), e.what());
      std::abort();
    }
  }();
  return *tok;
}

bool representable[256];

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const glimpse::Tokenizer& tok = tokenizer();
  static const bool init = [&] {
    for (int b = 0; b < 256; ++b) representable[b] = tok.can_encode_byte(static_cast<uint8_t>(b));
    return true;
  }();
  (void)init;
  const std::string text(reinterpret_cast<const char*>(data), size);
  std::string want;
  for (unsigned char c : text)
    if (representable[c]) want += static_cast<char>(c);
  for (bool special : {false, true}) {
    const auto ids = tok.encode(text, false, special);
    for (int32_t id : ids)
      if (id < 0 || id >= tok.n_vocab()) std::abort();
    if (tok.model_name() == "gpt2" && tok.decode(ids) != want) {
      std::fprintf(stderr, "round trip mismatch (special=%d)\n", special);
      std::abort();
    }
  }
  return 0;
}
