// A loaded model: config, weights bound to the mapped GGUF, and the forward pass over a
// batch of sequences (each with its own KV store). Immutable after load: one Model serves
// any number of request contexts, from any number of threads (each with its own pool).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "model/kv_store.h"
#include "model/layer_hooks.h"
#include "model/model_config.h"
#include "ops/backend.h"
#include "ops/matmul.h"

namespace glimpse {

class ThreadPool;

// What a layer's attention saw for one batch, handed to a ForwardObserver right after the
// batch's keys were appended: KV-eviction policies score prompt tokens from these queries
// without a second pass over the prompt and without any T x N buffer.
struct LayerQueries {
  int layer = 0;
  const float* q = nullptr;      // [T][n_head][head_dim], after RoPE (unscaled)
  const int32_t* pos = nullptr;  // [T] positions of the batch rows
  int64_t n_tokens = 0;          // T
  int n_head = 0, head_dim = 0;
  // [n_kv_head] the sequence's heads of `layer`; each already holds the T new entries
  // (head h has heads[h].n_base + T rows of keys stored as type_k).
  const KvHeadView* heads = nullptr;
  KvType type_k = KvType::F16;
};

class ForwardObserver {
 public:
  virtual ~ForwardObserver() = default;
  virtual void on_queries(const LayerQueries& lq, ThreadPool& pool) = 0;
};

struct LayerWeights {
  std::vector<float> attn_norm;       // [n_embd]
  WeightView wq, wk, wv, wo;          // [n_head*d][n_embd], [n_kv*d][n_embd] x2, [n_embd][n_head*d]
  std::vector<float> bq, bk, bv;      // biases (qwen2) or empty
  std::vector<float> ffn_norm;        // [n_embd]
  WeightView w_gate, w_up, w_down;    // [n_ff][n_embd] x2, [n_embd][n_ff]
  std::vector<float> q_norm, k_norm;  // [head_dim] per-head RMSNorm weights (qk_norm) or empty
  std::vector<float> attn_post_norm;  // [n_embd] (post_norms) or empty
  std::vector<float> ffn_post_norm;   // [n_embd] (post_norms) or empty
};

// Which rows of a batch need logits.
enum class LogitsRows { Last, All };

// One sequence's part of a batched forward: T tokens at positions cache->n_past() ..
// n_past()+T-1, appended to its own KV store. logits receives [T or 1][n_vocab] per rows.
struct SequenceBatch {
  const int32_t* tokens = nullptr;
  int64_t n_tokens = 0;
  KvStore* cache = nullptr;
  LogitsRows rows = LogitsRows::Last;
  std::vector<float>* logits = nullptr;
  ForwardObserver* observer = nullptr;  // sees this sequence's queries, if set
};

class Model {
 public:
  static std::unique_ptr<Model> load(const std::string& path);

  const ModelConfig& config() const { return cfg_; }
  const GgufFile& gguf() const { return file_; }

  // One forward over several sequences: the weight matmuls run once over the rows of all of
  // them (weights are read once per step however many sequences decode), attention runs
  // per sequence over its own store. Every kernel computes a row independently of the
  // others in the batch, so each sequence's logits are bit-identical to a forward of that
  // sequence alone (tested). Callers split long prompts into batches.
  void forward(std::vector<SequenceBatch>& batch, ThreadPool& pool) const;
  // One sequence: T tokens, appending their KV to the cache.
  void forward(const int32_t* tokens, int64_t T, KvStore& cache, LogitsRows rows,
               std::vector<float>& logits, ThreadPool& pool,
               ForwardObserver* observer = nullptr) const;

  // Rows from embeddings through the same layer code with hooks (model/layer_hooks.h): the
  // hooks' attend replaces the KV store and attention; no logits.
  void forward(const HookedRows& rows, ThreadPool& pool) const;

  // Embedding row of a token: [n_embd].
  void embed(int32_t token, float* out) const;

  // Weight bytes one decode step reads, however many sequences it serves (each weight is
  // read once per step): every layer's matrices, norms and biases, the output norm and
  // matrix, and one embedding row (the rest of the embedding table is not touched).
  size_t decode_weight_bytes() const;

  const LayerWeights& layer(int l) const { return layers_[l]; }
  const std::vector<float>& output_norm() const { return output_norm_; }
  const WeightView& output() const { return output_; }

 private:
  Model() = default;
  // One layer over the batch's rows (see model.cpp for the buffers it uses).
  struct Scratch;
  void prepare(Scratch& s) const;
  void rope_row(Scratch& s, int64_t r) const;
  void layer_forward(int l, std::vector<SequenceBatch>& batch, Scratch& s, ThreadPool& pool) const;
  // Appends the layer's keys/values to every sequence's store, then attention per sequence.
  void attend(int l, std::vector<SequenceBatch>& batch, Scratch& s, ThreadPool& pool) const;
  void output_logits(std::vector<SequenceBatch>& batch, Scratch& s, ThreadPool& pool) const;
  // Sequences of at most this many rows are attended one per thread when several share a batch.
  static constexpr int64_t kShortSequenceRows = 16;

  const Backend* backend_ = &cpu_backend();
  GgufFile file_;
  ModelConfig cfg_;
  WeightView tok_embd_;
  std::vector<float> output_norm_;
  WeightView output_;  // separate or tied to tok_embd_
  std::vector<float> rope_freqs_;
  std::vector<LayerWeights> layers_;
};

}  // namespace glimpse
