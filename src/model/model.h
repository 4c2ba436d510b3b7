// A loaded model: config, weights bound to the mapped GGUF, and the forward pass.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "gguf/gguf_file.h"
#include "kv/kv_cache.h"
#include "model/model_config.h"
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
  const KvCache* cache = nullptr;  // every head of `layer` already holds the T new entries
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
};

// Which rows of a batch need logits.
enum class LogitsRows { Last, All };

class Model {
 public:
  static std::unique_ptr<Model> load(const std::string& path);

  const ModelConfig& config() const { return cfg_; }
  const GgufFile& gguf() const { return file_; }

  KvCache make_cache(int64_t n_ctx, KvType type_k = KvType::F16,
                     KvType type_v = KvType::F16) const;

  // Runs T tokens at positions cache.n_past() .. +T-1, appending their KV to the cache.
  // logits: [T or 1][n_vocab] depending on rows. Callers split long prompts into batches.
  // An observer, if given, sees every layer's queries (see LayerQueries).
  void forward(const int32_t* tokens, int64_t T, KvCache& cache, LogitsRows rows,
               std::vector<float>& logits, ThreadPool& pool,
               ForwardObserver* observer = nullptr) const;

  // Embedding row of a token: [n_embd].
  void embed(int32_t token, float* out) const;

  const LayerWeights& layer(int l) const { return layers_[l]; }
  const std::vector<float>& output_norm() const { return output_norm_; }
  const WeightView& output() const { return output_; }

 private:
  Model() = default;
  GgufFile file_;
  ModelConfig cfg_;
  WeightView tok_embd_;
  std::vector<float> output_norm_;
  WeightView output_;  // separate or tied to tok_embd_
  std::vector<float> rope_freqs_;
  std::vector<LayerWeights> layers_;
};

}  // namespace glimpse
