#include "runtime/session.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "util/error.h"
#include "util/timer.h"

namespace glimpse {

std::string default_model_path() {
  if (const char* env = std::getenv("GLIMPSE_MODEL"); env && *env) return env;
  return std::string(GLIMPSE_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
}

Session::Session(const SessionParams& p) {
  Stopwatch sw;
  std::string path = p.model_path.empty() ? default_model_path() : p.model_path;
  struct stat st{};
  if (stat(path.c_str(), &st) != 0) {
    if (p.model_path.empty())
      fail("default model not found at '{}' (run scripts/fetch-model.sh, or pass -m FILE)", path);
    fail("model file not found: '{}'", path);
  }
  model_ = Model::load(path);
  tokenizer_ = std::make_unique<Tokenizer>(Tokenizer::from_gguf(model_->gguf()));
  chat_ = std::make_unique<ChatTemplate>(ChatTemplate::from_gguf(model_->gguf()));
  if (tokenizer_->n_vocab() != model_->config().n_vocab)
    fail("{}: tokenizer has {} tokens but the embedding has {} rows", path, tokenizer_->n_vocab(),
         model_->config().n_vocab);
  const int n_train = model_->config().n_ctx_train;
  n_ctx_ = p.n_ctx > 0 ? p.n_ctx : n_train;
  if (p.n_ctx < 0) fail("-c: context size must be >= 0");
  int threads = p.n_threads > 0 ? p.n_threads : (int)std::max(1u, std::thread::hardware_concurrency());
  pool_ = std::make_unique<ThreadPool>(threads);
  set_cache_types(p.type_k, p.type_v);
  n_batch_ = std::max(1, p.n_batch);
  load_ms_ = sw.ms();
}

void Session::set_cache_types(KvType type_k, KvType type_v) {
  cache_.reset();  // the old buffers go before the new cache exists
  cache_ = std::make_unique<KvCache>(model_->make_cache(n_ctx_, type_k, type_v));
}

void Session::prefill(const std::vector<int32_t>& tokens, std::vector<float>& last_logits,
                      const RowsCallback& on_rows, ForwardObserver* observer) {
  if (tokens.empty()) fail("empty prompt");
  if (cache_->n_past() + (int64_t)tokens.size() > n_ctx_)
    fail("prompt of {} tokens does not fit the context size {} ({} already used); raise -c",
         tokens.size(), n_ctx_, cache_->n_past());
  const int64_t n = (int64_t)tokens.size();
  std::vector<float> logits;
  for (int64_t b = 0; b < n; b += n_batch_) {
    const int64_t T = std::min<int64_t>(n_batch_, n - b);
    model_->forward(tokens.data() + b, T, *cache_, on_rows ? LogitsRows::All : LogitsRows::Last,
                    logits, *pool_, observer);
    if (on_rows) on_rows(b, logits.data(), T);
  }
  const int64_t V = model_->config().n_vocab;
  const int64_t last_row = (int64_t)logits.size() / V - 1;
  last_logits.assign(logits.begin() + last_row * V, logits.begin() + (last_row + 1) * V);
}

void Session::decode(int32_t token, std::vector<float>& logits) {
  if (cache_->n_past() + 1 > n_ctx_) fail("context size {} exhausted", n_ctx_);
  model_->forward(&token, 1, *cache_, LogitsRows::Last, logits, *pool_);
}

std::vector<int32_t> Session::tokenize_prompt(const std::string& prompt, const std::string& system,
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

PromptTokens Session::tokenize_prompt(const std::string& context, const std::string& question,
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

}  // namespace glimpse
