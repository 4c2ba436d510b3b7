// Hooks into the model's layer code, for passes that run extra rows through the frozen
// layers with something added: LookaheadKV's scoring pass (src/lookahead/) adds LoRA to the
// linears, replaces attention (its rows read the prompt's cache but are never appended to
// it) and keeps activations for its backward pass. The forward calls a hook once per op
// over all rows (never per row), so the hook-free forward pays one null test per op.
#pragma once

#include <cstdint>

namespace glimpse {

class ThreadPool;

// The linears of a layer, in the order LookaheadKV numbers its adapters.
enum class LinearSlot : int { Q = 0, K, V, O, Gate, Up, Down };

// Activations a hook may read (T rows each; E = n_embd, F = n_ff).
enum class LayerTap : int {
  Input,      // [T][E] residual stream entering the layer
  AttnNormed, // [T][E] attention-normed input (what q/k/v read)
  Mid,        // [T][E] residual stream after the attention block
  FfnNormed,  // [T][E] ffn-normed (what gate/up read)
  Gate,       // [T][F] gate projection before the activation (after after_linear)
  Up,         // [T][F] up projection (after after_linear)
  Hidden,     // [T][F] act(gate) * up (what down reads)
  // Only where the block has the norm (Gemma 3):
  QProj,      // [T][n_head * head_dim] q projection (after after_linear), before its per-head norm
  KProj,      // [T][n_kv_head * head_dim] k projection, likewise
  AttnOut,    // [T][E] attention output projection, before the post-attention norm
  FfnOut,     // [T][E] FFN output (down projection), before the post-FFN norm
};

class LayerHooks {
 public:
  virtual ~LayerHooks() = default;
  // Called after each frozen linear (and its bias): out [T][rows] = W in; the hook may add
  // to out. in: the linear's input [T][cols].
  virtual void after_linear(int layer, LinearSlot slot, const float* in, int64_t T, float* out) = 0;
  // Replaces the KV-store append and attention of the layer. q [T][n_head][d],
  // k, v [T][n_kv_head][d] (q, k after RoPE); out [T][n_head][d] receives the attention.
  virtual void attend(int layer, const float* q, const float* k, const float* v, int64_t T,
                      float* out, ThreadPool& pool) = 0;
  virtual void on_activation(int layer, LayerTap tap, const float* data, int64_t T) = 0;
};

// Rows given as embeddings run through the layers with hooks: no KV store, no logits.
struct HookedRows {
  const float* x = nullptr;      // [T][n_embd] input embeddings
  int64_t n_rows = 0;            // T
  int32_t pos0 = 0;              // position of the first row (RoPE)
  LayerHooks* hooks = nullptr;   // required
  // Stop after the last layer's attention (its hook saw q, k, v; nothing later runs).
  bool stop_after_last_attention = false;
};

}  // namespace glimpse
