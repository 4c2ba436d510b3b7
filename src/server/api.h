// The OpenAI-compatible request and response bodies of glimpse serve, kept apart from HTTP so
// parsing and validation can be tested (and fuzzed) without a socket.
//
// Requests: POST /v1/chat/completions and /v1/completions bodies as OpenAI and llama-server
// name their fields (model, messages | prompt, max_tokens, temperature, top_p, top_k, min_p,
// seed, stop, stream, stream_options.include_usage, presence_penalty, frequency_penalty,
// repeat_penalty, logprobs / top_logprobs / n_probs, llama-server's ignore_eos) plus glimpse's KV fields (kv_policy, kv_budget, kv_ratio, query_aware).
// Anything malformed -- invalid JSON or UTF-8, a wrong type, a number out of range, an
// unknown policy -- throws ApiError with a 4xx status and an OpenAI-style error object.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "kv/policy.h"
#include "runtime/generate.h"
#include "sampling/sampler.h"
#include "tokenizer/chat_template.h"

namespace glimpse {

// A request the server refuses: HTTP status and the OpenAI error fields.
class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string type, const std::string& message, std::string param = "")
      : std::runtime_error(message), status_(status), type_(std::move(type)),
        param_(std::move(param)) {}
  int status() const { return status_; }
  const std::string& type() const { return type_; }
  const std::string& param() const { return param_; }
  // {"error": {"message", "type", "param", "code"}}.
  nlohmann::json body() const;

 private:
  int status_;
  std::string type_, param_;
};

// 400 invalid_request_error naming the field.
[[noreturn]] void bad_request(const std::string& param, const std::string& message);

// What every request may use at most and the server's defaults (the serve flags).
struct ApiLimits {
  int64_t max_prompt_chars = 4 << 20;  // characters of prompt / messages text
  int max_tokens = 1 << 20;            // cap on max_tokens (and the default when absent: -1)
  int max_stop = 16;                   // stop strings
  size_t max_messages = 4096;
};

struct ApiDefaults {
  SamplerParams sampling;  // server flags --temp --top-k ...
  KvPolicySettings kv;     // server flags --kv-policy --kv-budget ...
  int n_predict = -1;      // -n
};

// A parsed completion request (chat or plain).
struct CompletionRequest {
  bool chat = false;
  std::string model;                  // as given (echoed back); any value is accepted
  std::vector<ChatMessage> messages;  // chat
  std::string prompt;                 // plain completion
  int n_predict = -1;                 // max_tokens; -1: until end of generation / context
  SamplerParams sampling;
  std::vector<std::string> stop;
  bool stream = false;
  bool include_usage = false;  // stream_options.include_usage
  int n_probs = -1;  // log-probabilities: alternatives per token (0..kMaxLogprobs), -1 off
  bool ignore_eos = false;  // llama-server's ignore_eos: generate max_tokens whatever comes
  KvPolicySettings kv;
};

inline constexpr int kMaxLogprobs = 20;

// Parses and validates a request body. Throws ApiError (400) on anything malformed.
CompletionRequest parse_completion_request(std::string_view body, bool chat,
                                           const ApiLimits& limits, const ApiDefaults& defaults);

// Parses a JSON object body (400 if it is not valid JSON or not an object).
nlohmann::json parse_json_object(std::string_view body);

// Response pieces. finish_reason from a generation stop reason ("eos", "stop" -> "stop";
// "length", "context" -> "length").
std::string finish_reason(const std::string& stop_reason);

struct CompletionStats {
  int64_t n_prompt = 0, n_gen = 0;
  int64_t n_cached = 0;  // prompt tokens whose KV came from the document cache
  double prompt_ms = 0, predicted_ms = 0;
  // KV held after prefill (and eviction) vs what the full cache would hold.
  std::string kv_policy = "none";
  int64_t kv_budget = 0;
  int64_t kv_entries = 0, kv_full_entries = 0;
  size_t kv_bytes = 0, kv_full_bytes = 0;
  bool kv_compressed = false;  // the policy scored and evicted in this request (not a cache hit)
  double kv_score_ms = 0, kv_evict_ms = 0;
};

// {"prompt_tokens", "completion_tokens", "total_tokens"}.
nlohmann::json usage_json(const CompletionStats& s);
// llama-server's timings object (prompt_n, prompt_ms, prompt_per_token_ms,
// prompt_per_second, predicted_n, ...).
nlohmann::json timings_json(const CompletionStats& s);
// glimpse's KV report: policy, budget, entries and bytes kept vs the full cache.
nlohmann::json kv_json(const CompletionStats& s);

// A whole (non-streamed) response.
// The "logprobs" object of a choice for these tokens: chat {"content": [{token, logprob,
// bytes, top_logprobs}]}, completions {tokens, token_logprobs, top_logprobs, text_offset}
// (offsets in bytes of the completion text, the first at text_offset).
nlohmann::json logprobs_json(const CompletionRequest& r, const std::vector<TokenLogprob>& lps,
                             int64_t text_offset);
// lps: every generated token's log-probabilities when r.n_probs >= 0.
nlohmann::json completion_response(const CompletionRequest& r, const std::string& id,
                                   int64_t created, const std::string& text,
                                   const std::string& stop_reason, const CompletionStats& s,
                                   const std::vector<TokenLogprob>& lps = {});
// One streamed chunk: text (delta) or, with finish set, the closing chunk (empty delta,
// finish_reason, timings and kv). first adds the role to a chat delta.
// lps: the chunk's tokens (r.n_probs >= 0), the first at byte text_offset of the completion.
nlohmann::json stream_chunk(const CompletionRequest& r, const std::string& id, int64_t created,
                            const std::string& text, bool first,
                            const std::vector<TokenLogprob>& lps = {}, int64_t text_offset = 0);
nlohmann::json stream_final_chunk(const CompletionRequest& r, const std::string& id,
                                  int64_t created, const std::string& stop_reason,
                                  const CompletionStats& s);
// The usage chunk of stream_options.include_usage (choices empty).
nlohmann::json stream_usage_chunk(const CompletionRequest& r, const std::string& id,
                                  int64_t created, const CompletionStats& s);
// "data: <json>\n\n".
std::string sse_event(const nlohmann::json& j);

}  // namespace glimpse
