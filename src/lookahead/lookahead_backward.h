// Training objective of a LookaheadKV module and its hand-written gradient.
//
// loss = mean over (layer, query head) of KL(g || p), g = ground-truth attention of the
// model's own answer over the prompt, p = the lookahead scores; both renormalised to sum 1
// over the prompt. Rows without a target (Gemma 3's sliding-window layers, which are never
// evicted) are left out of the mean. The base model is frozen and the prompt KV is a
// constant, so the backward pass runs through the n lookahead rows only: renormalisation,
// softmax attention (the lookahead keys and values depend on the parameters, the prompt's do
// not; keys outside a sliding window get none), RoPE, RMSNorm (also the per-head q/k norms
// and the post-attention / post-FFN norms where the block has them), the LoRA linears,
// SwiGLU or GeGLU and the residual stream, down to the embeddings P.
#pragma once

#include <vector>

#include "lookahead/lookahead_forward.h"

namespace glimpse {

// What the loss weighs. topk_weight w > 0 adds w * KL(g_B || p) per row, g_B = g kept on
// its top_k entries and renormalised: a term that cares only about whether the entries a
// budget of top_k would keep get their share, the part of the target eviction acts on.
struct LookaheadLoss {
  double topk_weight = 0;
  int64_t top_k = 0;
};

// KL loss of scores [n_layer][n_head][N] against gt (same layout, any non-negative rows),
// plus the top-k term of opt. dscores (if given) receives dloss/dscores.
template <typename Real>
double lookahead_loss(const std::vector<Real>& scores, const float* gt, int n_layer, int n_head,
                      int64_t N, std::vector<Real>* dscores, const LookaheadLoss& opt = {});

// Adds the parameter gradient of a loss with gradient dscores w.r.t. the scores to grad
// (a module of the same layout, e.g. mod.zeros_like()).
template <typename Real>
void lookahead_backward(const Model& model, const KvCache& cache, const LookaheadModule& mod,
                        const LookaheadTrace<Real>& trace, const std::vector<Real>& dscores,
                        LookaheadModule& grad, ThreadPool& pool);

// Forward, loss and (if grad is not null) backward of one prompt; returns the loss.
template <typename Real>
double lookahead_loss_and_grad(const Model& model, const KvCache& cache,
                               const LookaheadModule& mod, const float* gt,
                               LookaheadModule* grad, ThreadPool& pool,
                               const LookaheadLoss& opt = {});

}  // namespace glimpse
