// Hyperparameters of a supported architecture, read from GGUF metadata.
#pragma once

#include <cstdint>
#include <string>

#include "gguf/gguf_file.h"
#include "ops/rope.h"

namespace glimpse {

struct ModelConfig {
  std::string arch;       // "llama", "qwen2"
  std::string name;       // general.name
  int n_vocab = 0;
  int n_embd = 0;
  int n_layer = 0;
  int n_head = 0;
  int n_kv_head = 0;
  int head_dim = 0;
  int n_ff = 0;
  int n_ctx_train = 0;
  float rms_eps = 1e-5f;
  bool qkv_bias = false;  // qwen2: biases on q, k, v projections
  RopeParams rope;        // freq_factors bound by the model once weights are mapped

  static ModelConfig from_gguf(const GgufFile& f);
  std::string summary() const;
};

}  // namespace glimpse
