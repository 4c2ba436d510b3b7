#include "runtime/engine.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "lookahead/policy_lookahead.h"
#include "util/error.h"
#include "util/timer.h"

namespace glimpse {

std::string default_model_path() {
  if (const char* env = std::getenv("GLIMPSE_MODEL"); env && *env) return env;
  return std::string(GLIMPSE_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

std::shared_ptr<Engine> Engine::load(const EngineParams& p) {
  register_lookahead_policy();
  Stopwatch sw;
  std::shared_ptr<Engine> e(new Engine());
  e->path_ = p.model_path.empty() ? default_model_path() : p.model_path;
  const std::string& path = e->path_;
  struct stat st{};
  if (stat(path.c_str(), &st) != 0) {
    if (p.model_path.empty())
      fail("default model not found at '{}' (run scripts/fetch-model.sh, or pass -m FILE)", path);
    fail("model file not found: '{}'", path);
  }
  e->model_ = Model::load(path);
  e->tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::from_gguf(e->model_->gguf()));
  e->chat_ = std::make_unique<ChatTemplate>(ChatTemplate::from_gguf(e->model_->gguf()));
  e->has_chat_template_ = e->model_->gguf().has("tokenizer.chat_template");
  if (e->tokenizer_->n_vocab() != e->model_->config().n_vocab)
    fail("{}: tokenizer has {} tokens but the embedding has {} rows", path,
         e->tokenizer_->n_vocab(), e->model_->config().n_vocab);
  const int threads =
      p.n_threads > 0 ? p.n_threads : (int)std::max(1u, std::thread::hardware_concurrency());
  e->pool_ = std::make_unique<ThreadPool>(threads);
  e->ctx_ = e->resolve(p.context);
  e->load_ms_ = sw.ms();
  return e;
}

ContextParams Engine::resolve(ContextParams p) const {
  if (p.n_ctx < 0) fail("-c: context size must be >= 0");
  if (p.n_ctx == 0) p.n_ctx = model_->config().n_ctx_train;
  p.n_batch = std::max(1, p.n_batch);
  check_kv_type(p.type_k, model_->config().head_dim, "K (-ctk)");
  check_kv_type(p.type_v, model_->config().head_dim, "V (-ctv)");
  return p;
}

std::vector<int32_t> Engine::tokenize_prompt(const std::string& prompt, const std::string& system,
                                             bool chat) const {
  if (!chat) {
    if (!system.empty()) fail("-sys needs --chat (the system prompt goes into the chat template)");
    return tokenizer_->encode(prompt, tokenizer_->add_bos(), /*parse_special=*/false);
  }
  std::vector<ChatMessage> msgs;
  if (!system.empty()) msgs.push_back({"system", system});
  msgs.push_back({"user", prompt});
  const std::string text = chat_->render(msgs, /*add_generation_prompt=*/true);
  return tokenizer_->encode(text, tokenizer_->add_bos(), /*parse_special=*/true);
}

PromptTokens Engine::tokenize_prompt(const std::string& context, const std::string& question,
                                     const std::string& system, bool chat) const {
  PromptTokens pt;
  if (question.empty()) {
    pt.tokens = tokenize_prompt(context, system, chat);
    pt.n_context = (int64_t)pt.tokens.size();
    return pt;
  }
  const std::string user = context + "\n\n" + question;
  std::string text;
  if (chat) {
    std::vector<ChatMessage> msgs;
    if (!system.empty()) msgs.push_back({"system", system});
    msgs.push_back({"user", user});
    text = chat_->render(msgs, /*add_generation_prompt=*/true);
  } else {
    if (!system.empty()) fail("-sys needs --chat (the system prompt goes into the chat template)");
    text = user;
  }
  const size_t at = text.find(user);
  if (at == std::string::npos) fail("the chat template altered the prompt text; cannot place the question");
  const bool special = chat;
  pt.tokens = tokenizer_->encode(text, tokenizer_->add_bos(), special);
  const std::vector<int32_t> head =
      tokenizer_->encode(text.substr(0, at + context.size()), tokenizer_->add_bos(), special);
  size_t k = 0;
  while (k < head.size() && k < pt.tokens.size() && head[k] == pt.tokens[k]) ++k;
  pt.n_context = (int64_t)k;
  return pt;
}

PromptTokens Engine::task_prompt(const std::string& context, const std::string& question,
                                 const std::string& system) const {
  if (has_chat_template_) return tokenize_prompt(context, question, system, true);
  return tokenize_prompt(context, question.empty() ? question : question + "\nAnswer:", "", false);
}

int64_t Engine::task_prompt_overhead() const {
  if (has_chat_template_) return (int64_t)tokenize_prompt("", "", true).size();
  return (int64_t)(tokenize_prompt("", "", false).size() +
                   tokenizer_->encode("\nAnswer:", false, false).size());
}

}  // namespace glimpse
