// Hyperparameters of a supported architecture, read from GGUF metadata.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "ops/rope.h"

namespace glimpse {

// The gated feed-forward's activation: silu(gate) * up (SwiGLU: llama, qwen2) or
// gelu_tanh(gate) * up (GeGLU: gemma3).
enum class FfnActivation { SiLU, GeluTanh };

struct ModelConfig {
  std::string arch;       // "llama", "qwen2", "gemma3"
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

  // Block variants (gemma3; the defaults are the llama block).
  float embd_scale = 1.0f;   // token embeddings are multiplied by this (gemma3: sqrt(n_embd))
  bool qk_norm = false;      // per-head RMSNorm of q and k over head_dim, before RoPE
  bool post_norms = false;   // RMSNorm of the attention and FFN outputs before each residual add
  FfnActivation ffn_act = FfnActivation::SiLU;
  float attn_scale = 0.0f;   // scale of q·k scores (set by from_gguf: 1/sqrt(head_dim) unless
                             // the architecture says otherwise)
  float final_softcap = 0.0f;  // > 0: logits = c * tanh(logits / c)

  // Sliding-window attention: layer l with swa_layer[l] = 1 lets the query at position p see
  // the keys at positions p - swa_window + 1 .. p, and rotates q, k with rope_swa. Empty
  // swa_layer: every layer is global.
  int swa_window = 0;
  std::vector<uint8_t> swa_layer;  // [n_layer] or empty
  RopeParams rope_swa;

  bool is_swa(int l) const { return !swa_layer.empty() && swa_layer[(size_t)l] != 0; }
  // Keys a query of layer l may see counting itself; 0 = unbounded (global layer).
  int window_of(int l) const { return is_swa(l) ? swa_window : 0; }
  const RopeParams& rope_of(int l) const { return is_swa(l) ? rope_swa : rope; }

  static ModelConfig from_gguf(const GgufFile& f);
  std::string summary() const;
};

// Per-architecture parts of from_gguf (model/arch_*.cpp): c holds the shared llama-style
// hyperparameters already; these read and check the architecture's own.
void configure_gemma3(const GgufFile& f, ModelConfig& c);

}  // namespace glimpse
