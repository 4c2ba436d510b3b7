// Importance scores of prompt KV entries, the one currency every eviction policy pays in.
//
// KvScores holds [n_layer][n_kv_head][n_tokens] floats: higher = keep. Index j is the j-th
// entry of that head's list (before eviction every head holds the prompt in position order,
// so j is also the token's position relative to the first prompt entry).
// Query-head scores [n_layer][n_head][n_tokens] are pooled along tokens and reduced over
// each GQA group to get there.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "model/model_config.h"

namespace glimpse {

// Layers eviction scores, budgets and compacts: every layer but the sliding-window ones
// (Gemma 3: 5 of every 6), whose cache is bounded by their window already (kv/kv_cache.h).
// The per-(layer, KV head) budget C applies to these layers; the others keep their window.
inline bool scored_layer(const ModelConfig& c, int layer) { return !c.is_swa(layer); }
// How many layers of the model that is.
inline int n_scored_layers(const ModelConfig& c) {
  int n = 0;
  for (int l = 0; l < c.n_layer; ++l) n += scored_layer(c, l);
  return n;
}

struct KvScores {
  int n_layer = 0, n_kv_head = 0;
  int64_t n_tokens = 0;
  std::vector<float> s;  // [n_layer][n_kv_head][n_tokens]

  KvScores() = default;
  KvScores(int layers, int kv_heads, int64_t n) : n_layer(layers), n_kv_head(kv_heads), n_tokens(n),
      s((size_t)layers * kv_heads * n, 0.0f) {}
  float* at(int l, int h) { return s.data() + ((size_t)l * n_kv_head + h) * n_tokens; }
  const float* at(int l, int h) const { return s.data() + ((size_t)l * n_kv_head + h) * n_tokens; }
};

enum class PoolKind { None, Max, Avg };
enum class GroupReduce { Mean, Max };

PoolKind parse_pool_kind(const std::string& s);      // "none" | "max" | "avg"
GroupReduce parse_group_reduce(const std::string& s);  // "mean" | "max"
const char* pool_kind_name(PoolKind k);
const char* group_reduce_name(GroupReduce r);

// 1-D pooling along tokens, kernel k (odd), stride 1, padding k/2: max ignores padding,
// avg counts padding as zeros (divides by k), as in SnapKV's reference code. k <= 1: copy.
void pool1d(const float* in, int64_t n, int kernel, PoolKind kind, float* out);

// Query-head scores [n_layer][n_head][n] -> KvScores, pooling each query head's row first,
// then reducing the G = n_head / n_kv_head heads of each group.
// Pooling covers only the first n_pooled entries (-1: all n), padded at their end as at the
// start; later entries keep their own scores. Callers pass the entries before the protected
// recent window: the window is kept whatever its scores, and pooling across it would lend
// its recent entries' large attention to the few entries just before it (SnapKV's reference
// pools only the keys before its window).
KvScores reduce_query_heads(const std::vector<float>& per_qhead, int n_layer, int n_head,
                            int n_kv_head, int64_t n, int pool_kernel, PoolKind pool,
                            GroupReduce reduce, int64_t n_pooled = -1);

}  // namespace glimpse
