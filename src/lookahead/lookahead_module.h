// LookaheadKV module (arXiv 2603.10899): n learned lookahead embeddings appended after the
// prompt plus rank-r LoRA adapters that act ONLY on those lookahead rows. The base model is
// frozen; the prompt rows never see the module, so the prompt KV and the first answer token
// stay the base model's own.
//
// Adapters: for a frozen linear W [out][in], a lookahead row x computes
//   y = W x + scale * B (A x),   A [rank][in], B [out][rank] (f32), scale = alpha / rank.
// Every layer has adapters on q, k, v, o, gate, up, down, except the last layer, where only
// q and k have them: nothing after the last layer's attention probabilities is consumed.
//
// Stored as GGUF: metadata lookahead.* (kind, version, n_lookahead, rank, alpha and the base
// model's shape plus a fingerprint of its weights) and f32 tensors lookahead.embd [n][n_embd],
// blk.L.<slot>.lora_a [rank][in], blk.L.<slot>.lora_b [out][rank].
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "model/layer_hooks.h"

namespace glimpse {

class Model;

// Adapters sit on the model's linears, numbered as the layer hooks number them.
using LoraSlot = LinearSlot;
constexpr int kLoraSlots = 7;
const char* lora_slot_name(int slot);  // "q", "k", "v", "o", "gate", "up", "down"

struct LoraAdapter {
  int in = 0, out = 0;    // 0 x 0 when the layer has no adapter in this slot
  std::vector<float> A;   // [rank][in]
  std::vector<float> B;   // [out][rank]
  bool present() const { return in > 0; }
};

// What a module was trained for; compared field by field when loading.
struct LookaheadBaseInfo {
  std::string arch;
  int n_layer = 0, n_embd = 0, n_head = 0, n_kv_head = 0, head_dim = 0, n_ff = 0, n_vocab = 0;
  uint64_t fingerprint = 0;
};

// 64-bit hash of a model's weights as loaded: per tensor its name, type, shape and up to
// 3 x 64 bytes of data (start, middle, end), through Fnv1a + mix64 (util/hash.h). Cheap (no
// full read) and deterministic; stored as base.fingerprint in module files (the shipped
// ones too) and in sample files, so the value is fixed. Unlike eval's file_fingerprint() it
// ignores the metadata.
uint64_t weights_fingerprint(const Model& m);
LookaheadBaseInfo lookahead_base_info(const Model& m);

struct LookaheadHyper {
  int n_lookahead = 32;
  int rank = 8;
  float alpha = 32.0f;
};

class LookaheadModule {
 public:
  LookaheadModule() = default;

  // Fresh module for a model: B = 0, A ~ U(-1/sqrt(in), 1/sqrt(in)) (Kaiming-uniform with
  // a = sqrt(5), as PEFT does), P = mean token embedding + N(0, 0.02 * rms(embedding)) noise.
  // Deterministic for a seed.
  static LookaheadModule create(const Model& m, const LookaheadHyper& h, uint64_t seed);
  // Same layout, every parameter zero (gradient accumulators, optimizer moments).
  LookaheadModule zeros_like() const;

  // Loads a module file and checks it belongs to model m; any mismatch, missing, mis-shaped
  // or non-f32 tensor, or a corrupt/truncated file fails with one Error.
  static LookaheadModule load(const std::string& path, const Model& m);
  // Loads without a model (inspection); the file must still be self-consistent.
  static LookaheadModule load(const std::string& path);
  void save(const std::string& path) const;

  int n_lookahead() const { return hyper_.n_lookahead; }
  int rank() const { return hyper_.rank; }
  float alpha() const { return hyper_.alpha; }
  float scale() const { return hyper_.alpha / (float)hyper_.rank; }
  const LookaheadHyper& hyper() const { return hyper_; }
  const LookaheadBaseInfo& base() const { return base_; }

  // Checks the module was made for m (shape and fingerprint); fails naming the difference.
  void check_compatible(const Model& m, const std::string& what) const;

  std::vector<float>& P() { return P_; }  // [n_lookahead][n_embd]
  const std::vector<float>& P() const { return P_; }
  LoraAdapter& lora(int layer, int slot) { return lora_[layer][slot]; }
  const LoraAdapter& lora(int layer, int slot) const { return lora_[layer][slot]; }
  bool has(int layer, int slot) const { return lora_[layer][slot].present(); }

  int64_t n_params() const;
  // Every parameter array in a fixed order (P, then per layer and slot A, B): optimizers and
  // gradient checks walk modules of the same layout in lockstep through this.
  std::vector<std::vector<float>*> tensors();
  std::vector<const std::vector<float>*> tensors() const;
  std::vector<std::string> tensor_names() const;

 private:
  void allocate();
  LookaheadHyper hyper_;
  LookaheadBaseInfo base_;
  std::vector<float> P_;
  std::vector<std::array<LoraAdapter, kLoraSlots>> lora_;  // [n_layer]
};

}  // namespace glimpse
