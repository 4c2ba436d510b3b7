// A model loaded once: weights, config, tokenizer and chat template, immutable after load
// and shared (std::shared_ptr<const Engine>) by every request context, whichever thread
// drives it. The engine also owns a default thread pool: a pool runs one forward at a time,
// so a thread driving contexts concurrently with others brings its own (Context takes one).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/model.h"
#include "ops/kv_types.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "util/thread_pool.h"

namespace glimpse {

// What one request context holds room for (-c, -b, -ctk, -ctv).
struct ContextParams {
  int n_ctx = 4096;   // positions; 0: the model's training context
  int n_batch = 512;  // prompt tokens per forward batch
  KvType type_k = KvType::F16, type_v = KvType::F16;
};

struct EngineParams {
  std::string model_path;  // empty: the default model (see default_model_path)
  int n_threads = 0;       // default pool; 0: all cores
  ContextParams context;   // defaults of contexts made without their own params
};

// GLIMPSE_MODEL if set, else models/SmolLM2-135M-Instruct.Q4_1.gguf in the source tree.
std::string default_model_path();

// A tokenized prompt; n_context = tokens before the question (all of them without one).
struct PromptTokens {
  std::vector<int32_t> tokens;
  int64_t n_context = 0;
};

class Engine {
 public:
  // Loads the model (errors name the file); registers the policies of the layers above kv.
  static std::shared_ptr<Engine> load(const EngineParams& p);

  const Model& model() const { return *model_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }
  const ChatTemplate& chat_template() const { return *chat_; }
  const std::string& model_path() const { return path_; }
  // The default pool (one driving thread at a time) and the threads it has.
  ThreadPool& pool() const { return *pool_; }
  int n_threads() const { return pool_->size(); }
  // Context defaults with n_ctx resolved (0 -> the model's training context).
  const ContextParams& context_defaults() const { return ctx_; }
  double load_ms() const { return load_ms_; }

  // Tokenizes a prompt, applying the chat template when chat is true.
  std::vector<int32_t> tokenize_prompt(const std::string& prompt, const std::string& system,
                                       bool chat) const;
  // Same with an optional question appended to the user turn after a blank line. The
  // tokens are those of the whole text; n_context counts the leading tokens that belong
  // to the context alone (the common prefix with the context's own tokenization).
  PromptTokens tokenize_prompt(const std::string& context, const std::string& question,
                               const std::string& system, bool chat) const;
  // A task's context and question as the model expects them: one user turn of its chat
  // template when the GGUF carries one; a base model (no template: e.g. Gemma 3 270M) gets
  // the raw text with "\nAnswer:" after the question, the usual cue for a completion.
  // Evaluation, training prompts and speculative benchmarks all go through it. system is
  // the chat template's system prompt (a base model has none, so it is ignored there).
  PromptTokens task_prompt(const std::string& context, const std::string& question,
                           const std::string& system = "") const;
  bool has_chat_template() const { return has_chat_template_; }
  // Tokens task_prompt adds around the user text: the chat template's around an empty user
  // turn, or a base model's BOS and answer cue (task generators reserve them).
  int64_t task_prompt_overhead() const;
  // Resolves n_ctx of params (0 -> the model's) and checks it.
  ContextParams resolve(ContextParams p) const;

 private:
  Engine() = default;
  std::string path_;
  std::unique_ptr<Model> model_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<ChatTemplate> chat_;
  bool has_chat_template_ = false;  // the GGUF has tokenizer.chat_template
  std::unique_ptr<ThreadPool> pool_;
  ContextParams ctx_;
  double load_ms_ = 0;
};

}  // namespace glimpse
