#include "server/completion.h"

#include <fmt/format.h>

namespace glimpse {

namespace {

std::vector<int32_t> encode_chat(const Engine& engine, const std::vector<ChatMessage>& msgs,
                                 bool add_generation_prompt) {
  const std::string text = engine.chat_template().render(msgs, add_generation_prompt);
  return engine.tokenizer().encode(text, engine.tokenizer().add_bos(), /*parse_special=*/true);
}

}  // namespace

std::vector<int32_t> completion_prompt(const Engine& engine, const CompletionRequest& r,
                                       int64_t* n_compress) {
  std::vector<int32_t> tokens;
  if (!r.chat) {
    tokens = engine.tokenizer().encode(r.prompt, engine.tokenizer().add_bos(),
                                       /*parse_special=*/false);
    *n_compress = (int64_t)tokens.size();
    return tokens;
  }
  tokens = encode_chat(engine, r.messages, true);
  *n_compress = (int64_t)tokens.size();
  if (r.kv.query_agnostic) {
    // The document is the conversation before the last message: compress what the tokens
    // of the whole prompt share with it, before the question is read.
    const std::vector<ChatMessage> head(r.messages.begin(), r.messages.end() - 1);
    const std::vector<int32_t> prefix = encode_chat(engine, head, false);
    size_t k = 0;
    while (k < prefix.size() && k < tokens.size() && prefix[k] == tokens[k]) ++k;
    *n_compress = (int64_t)k;
  }
  return tokens;
}

void check_completion_fits(const Engine& engine, size_t n_prompt) {
  const int n_ctx = engine.context_defaults().n_ctx;
  if (n_prompt == 0) bad_request("prompt", "the prompt is empty");
  if ((int64_t)n_prompt >= n_ctx)
    throw ApiError(400, "invalid_request_error",
                   fmt::format("the prompt is {} tokens, which does not fit the context size {}",
                               n_prompt, n_ctx),
                   "context_length_exceeded");
}

GenerateParams completion_params(const CompletionRequest& r, int64_t n_compress) {
  GenerateParams gp;
  gp.n_predict = r.n_predict;
  gp.n_probs = r.n_probs;
  gp.ignore_eos = r.ignore_eos;
  gp.sampling = r.sampling;
  gp.stop = r.stop;
  gp.kv = r.kv;
  gp.n_compress = r.kv.query_agnostic ? n_compress : -1;
  return gp;
}

CompletionStats completion_stats(const CompletionRequest& r, const GenerateResult& g,
                                 const Context& ctx) {
  CompletionStats s;
  s.n_prompt = g.timings.n_prompt;
  s.n_cached = g.timings.n_cached;
  s.n_gen = g.timings.n_gen;
  s.prompt_ms = g.timings.prefill_ms;
  s.predicted_ms = g.timings.decode_ms + g.timings.sample_ms;
  s.kv_policy = r.kv.name;
  s.kv_budget = g.timings.kv.evicted ? g.timings.kv.budget : 0;
  s.kv_compressed = g.timings.kv.evicted && g.timings.n_cached == 0;
  s.kv_score_ms = g.timings.kv.score_ms;
  s.kv_evict_ms = g.timings.kv.evict_ms;
  s.kv_entries = g.timings.kv_entries;
  s.kv_bytes = g.timings.kv_bytes;
  const ModelConfig& c = ctx.model().config();
  s.kv_full_entries = (int64_t)c.n_layer * c.n_kv_head * ctx.n_past();
  s.kv_full_bytes =
      (size_t)s.kv_full_entries * (ctx.cache().k_row_bytes() + ctx.cache().v_row_bytes());
  return s;
}

}  // namespace glimpse
