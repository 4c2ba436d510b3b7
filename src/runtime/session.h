// A loaded model with its tokenizer, chat template, thread pool and KV cache: the object
// every frontend (run, bench, eval, server) drives.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "kv/kv_cache.h"
#include "model/model.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/thread_pool.h"

namespace glimpse {

struct SessionParams {
  std::string model_path;  // empty: the default model (see default_model_path)
  int n_ctx = 4096;        // 0: the model's training context
  int n_threads = 0;       // 0: all cores
  int n_batch = 512;       // prompt tokens per forward batch
  KvType type_k = KvType::F16;  // KV cache element types (-ctk / -ctv)
  KvType type_v = KvType::F16;
};

// GLIMPSE_MODEL if set, else models/SmolLM2-135M-Instruct.Q4_1.gguf in the source tree.
std::string default_model_path();

// A tokenized prompt; n_context = tokens before the question (all of them without one).
struct PromptTokens {
  std::vector<int32_t> tokens;
  int64_t n_context = 0;
};

class Session {
 public:
  explicit Session(const SessionParams& p);

  const Model& model() const { return *model_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const ChatTemplate& chat_template() const { return *chat_; }
  ThreadPool& pool() { return *pool_; }
  KvCache& cache() { return *cache_; }
  int n_ctx() const { return n_ctx_; }
  int n_threads() const { return pool_->size(); }
  int n_batch() const { return n_batch_; }
  double load_ms() const { return load_ms_; }

  // Called per batch with (index of the batch's first token, logits [n][n_vocab], n).
  using RowsCallback = std::function<void(int64_t, const float*, int64_t)>;

  // Runs tokens through the model in batches of n_batch after what the cache holds.
  // last_logits receives the logits of the final token. With on_rows, every token's
  // logits are computed and handed over batch by batch.
  // An observer sees every layer's queries (KV policies score from them).
  void prefill(const std::vector<int32_t>& tokens, std::vector<float>& last_logits,
               const RowsCallback& on_rows = nullptr, ForwardObserver* observer = nullptr);
  // One token at the next position.
  void decode(int32_t token, std::vector<float>& logits);
  void reset() { cache_->clear(); }
  // Replaces the cache by an empty one of other element types (bench compares types).
  void set_cache_types(KvType type_k, KvType type_v);

  // Tokenizes a prompt, applying the chat template when chat is true.
  std::vector<int32_t> tokenize_prompt(const std::string& prompt, const std::string& system,
                                       bool chat) const;
  // Same with an optional question appended to the user turn after a blank line. The
  // tokens are those of the whole text; n_context counts the leading tokens that belong
  // to the context alone (the common prefix with the context's own tokenization).
  PromptTokens tokenize_prompt(const std::string& context, const std::string& question,
                               const std::string& system, bool chat) const;

 private:
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<ChatTemplate> chat_;
  std::unique_ptr<ThreadPool> pool_;
  std::unique_ptr<KvCache> cache_;
  int n_ctx_ = 0;
  int n_batch_ = 512;
  double load_ms_ = 0;
};

}  // namespace glimpse
