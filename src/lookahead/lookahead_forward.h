// The lookahead pass: the module's n embeddings run as rows at positions N .. N+n-1 after a
// prefilled prompt of N tokens, through every layer with the LoRA adapters, attending over
// the prompt's cached keys/values plus their own (causal among themselves). The cache is
// only read: the lookahead keys and values live in local buffers and are dropped.
//
// Output: per (layer, query head) the mean over the n rows of their softmax attention on
// each prompt key j < N, scores [n_layer][n_head][N] (f32 softmax over prompt + visible
// lookahead keys, not renormalised). The last layer stops after its attention
// probabilities: nothing later is consumed.
//
// Cost: the frozen weights see n rows (one GEMM batch of 32 through the prefill kernel) and
// attention reads each prompt key/value once per (layer, KV head) for all G x n queries of
// the group, so the pass costs about as much as ~n extra prompt tokens.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

#include "kv/kv_cache.h"
#include "lookahead/lookahead_module.h"
#include "model/model.h"

namespace glimpse {

class ThreadPool;

// Activations of the lookahead rows kept for the backward pass. T = n_lookahead,
// E = n_embd, n_keys = n_prompt + T (the layer's own prompt entries: a sliding-window layer
// of Gemma 3 holds only its window). Vectors of the last layer after its probabilities (v,
// att and everything later) stay empty; q_raw .. rinv_k only with per-head q/k norms,
// o_raw .. rinv_f only with post-attention / post-FFN norms (ModelConfig::qk_norm,
// post_norms).
template <typename Real>
struct LookaheadLayerTrace {
  int64_t n_prompt = 0;      // prompt entries this layer's rows attend over
  std::vector<Real> x_in;    // [T][E] residual stream entering the layer
  std::vector<Real> rinv1;   // [T] 1/rms of x_in (attention norm)
  std::vector<Real> xn1;     // [T][E] attention-normed input
  std::array<std::vector<Real>, kLoraSlots> a;  // [T][rank] A x of each adapter
  std::vector<Real> q_raw, k_raw;    // [T][n_head][d], [T][n_kv_head][d] before the norm
  std::vector<Real> rinv_q, rinv_k;  // [T][n_head], [T][n_kv_head] their 1/rms
  std::vector<Real> q;       // [T][n_head][d] after (norm and) RoPE
  std::vector<Real> k, v;    // [T][n_kv_head][d], k after (norm and) RoPE
  std::vector<Real> prob;    // [n_head][T][n_keys] softmax rows, 0 where masked
  std::vector<Real> att;     // [T][n_head][d] attention output
  std::vector<Real> o_raw;   // [T][E] attention output projection before its post-norm
  std::vector<Real> rinv_o;  // [T]
  std::vector<Real> x_mid;   // [T][E] after the attention residual
  std::vector<Real> rinv2;   // [T]
  std::vector<Real> xn2;     // [T][E] ffn-normed
  std::vector<Real> gate, up;  // [T][n_ff] before the activation
  std::vector<Real> hid;     // [T][n_ff] act(gate) * up (SiLU or GELU-tanh)
  std::vector<Real> f_raw;   // [T][E] FFN output before its post-norm
  std::vector<Real> rinv_f;  // [T]
};

template <typename Real>
struct LookaheadTrace {
  int64_t n_prompt = 0;  // prompt entries of the scored (global) layers: the scores' N
  int32_t pos0 = 0;  // position of the first lookahead row
  std::vector<LookaheadLayerTrace<Real>> layers;
};

// Runs the lookahead rows; scores receives [n_layer][n_head][N]. With a trace, keeps every
// activation the backward pass needs. Checks that the cache holds exactly N entries per
// head in position order (a prefilled, not yet evicted prompt) and that the module fits.
template <typename Real>
void lookahead_forward(const Model& model, const KvCache& cache, const LookaheadModule& mod,
                       ThreadPool& pool, std::vector<Real>& scores,
                       LookaheadTrace<Real>* trace = nullptr);
// The engine's pass: the model's own layer code (Model::forward(HookedRows)) with hooks
// that add the LoRA, attend over prompt + lookahead keys and keep the trace.
template <>
void lookahead_forward<float>(const Model& model, const KvCache& cache, const LookaheadModule& mod,
                              ThreadPool& pool, std::vector<float>& scores,
                              LookaheadTrace<float>* trace);
// Test reference (lookahead_reference.cpp): the same pass as a plain layer sequence in
// double, for the finite-difference gradient check and float-vs-double agreement tests.
template <>
void lookahead_forward<double>(const Model& model, const KvCache& cache, const LookaheadModule& mod,
                               ThreadPool& pool, std::vector<double>& scores,
                               LookaheadTrace<double>* trace);

// Fails unless the module was made for this model's shape and the cache holds one
// unevicted prompt (the same entry count N >= 1 in every head of every scored layer; a
// sliding-window layer holds its window). Returns N.
int64_t check_lookahead_fits(const Model& model, const KvCache& cache, const LookaheadModule& mod);

// Scores exist for the scored layers only (kv/kv_scores.h: all but the sliding-window
// layers, which are never evicted); the rows of the others stay 0 and have no target.

// Eval hook for KV policies: scores [n_layer][n_head][N] of the prompt in the cache.
std::vector<float> lookahead_kv_scores(const Model& model, const KvCache& cache,
                                       const LookaheadModule& mod, ThreadPool& pool);

}  // namespace glimpse
