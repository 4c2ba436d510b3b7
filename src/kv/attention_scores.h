// Softmax attention of selected queries over one KV head's keys, accumulated per key: the
// measurement behind SnapKV, H2O, TOVA, the oracle and LAQ.
//
// Scoring is a separate pass over only the queries a policy asks for, so prefill keeps its
// fused attention. Keys are read in their stored type (ops/kv_types.h), converted to f32 and
// transposed once per call into an f32 [head_dim][n] panel so the dot products run along
// keys (no horizontal sums); queries go 8 at a time, and a query's score row over its
// visible keys is the only buffer ([8][n] floats, never T x N).
#pragma once

#include <cstdint>
#include <vector>

#include "kv/kv_scores.h"
#include "ops/kv_types.h"
#include "model/model.h"

namespace glimpse {

class ThreadPool;

enum class QueryReduce { Sum, Max };

struct ScoreQuery {
  const float* q = nullptr;  // [head_dim] after RoPE, unscaled
  int64_t n_visible = 0;     // the query attends to keys [0, n_visible)
  int slot = 0;              // accumulator row it adds into
};

// For each query: p = softmax(scale * q . k_j) over j < n_visible in f32 (exactly the keys
// the real attention sees), then acc[slot * acc_stride + j] += p_j (Sum) or max= p_j (Max)
// for j < min(n_cols, n_visible). keys: [n_keys] rows of head_dim d stored as key_type,
// n_keys >= every n_visible. Single-threaded; callers parallelise over heads.
void accumulate_attention(const ScoreQuery* qs, int64_t n_q, KvType key_type, const void* keys,
                          int64_t n_keys, int d, float scale, QueryReduce reduce, float* acc,
                          int64_t acc_stride, int64_t n_cols);

// The dot-product kernel under accumulate_attention, also used by the lookahead scoring
// pass: s[i][j] = sum_c q[i][c] * kt[c][j] for i < m (m <= 8), j < n_pad. kt: [d][n_pad] (a
// transposed key panel), s: [m][n_pad]. n_pad must be a multiple of the f32 vector width
// (16 is one on every target); padding columns are computed like the others. Highway,
// runtime dispatch; 8 register accumulators share each panel load.
void score_rows(const float* const* q, int m, const float* kt, int64_t n_pad, int d, float* s);

// Plain reference for tests: double precision, one query at a time.
void accumulate_attention_ref(const ScoreQuery* qs, int64_t n_q, KvType key_type,
                              const void* keys, int64_t n_keys, int d, float scale,
                              QueryReduce reduce, float* acc, int64_t acc_stride,
                              int64_t n_cols);

// Forward observer that accumulates, per layer and query head, the attention of every
// query whose position lies in [pos_lo, pos_hi) over the first n_cols entries of its KV
// head: acc [n_layer][n_head][n_cols]. Heads must still hold the prompt in position order
// (true during prefill and before any eviction). Sliding-window layers (scored_layer false)
// are not scored: their rows stay 0 (they are never evicted, and their heads drop old
// entries, so entry j is not position j there).
class AttentionRecorder : public ForwardObserver {
 public:
  AttentionRecorder(const ModelConfig& c, int64_t n_cols, int32_t pos_lo, int32_t pos_hi,
                    QueryReduce reduce);
  void on_queries(const LayerQueries& lq, ThreadPool& pool) override;

  const std::vector<float>& acc() const { return acc_; }
  std::vector<float>& acc() { return acc_; }
  int64_t n_cols() const { return n_cols_; }
  int64_t n_queries() const { return n_queries_; }  // query rows seen (per head)
  double ms() const { return ms_; }                 // time spent scoring

 private:
  int n_layer_, n_head_, n_kv_head_, head_dim_;
  int64_t n_cols_;
  int32_t pos_lo_, pos_hi_;
  QueryReduce reduce_;
  float scale_;                  // the model's q.k scale (Gemma's query_pre_attn_scalar)
  std::vector<uint8_t> scored_;  // [n_layer] 0: sliding-window layer, left at 0
  int first_scored_ = 0;
  std::vector<float> acc_;
  int64_t n_queries_ = 0;
  double ms_ = 0;
};

}  // namespace glimpse
