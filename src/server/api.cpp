#include "server/api.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "util/error.h"

namespace glimpse {

using json = nlohmann::json;

json ApiError::body() const {
  json e = {{"message", what()}, {"type", type_}, {"code", status_}};
  e["param"] = param_.empty() ? json(nullptr) : json(param_);
  return json{{"error", e}};
}

void bad_request(const std::string& param, const std::string& message) {
  throw ApiError(400, "invalid_request_error", message, param);
}

json parse_json_object(std::string_view body) {
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    // Parse again for the reason (invalid JSON or ill-formed UTF-8 in a string).
    try {
      const json again = json::parse(body);
      (void)again;
    } catch (const json::exception& e) {
      bad_request("", fmt::format("the body is not valid JSON: {}", e.what()));
    }
    bad_request("", "the body is not valid JSON");
  }
  if (!j.is_object()) bad_request("", "the body must be a JSON object");
  return j;
}

namespace {

// Typed field readers: absent or null keeps *out; a wrong type or range is a 400.
bool present(const json& j, const char* key) {
  const auto it = j.find(key);
  return it != j.end() && !it->is_null();
}

void read_bool(const json& j, const char* key, bool* out) {
  if (!present(j, key)) return;
  if (!j[key].is_boolean()) bad_request(key, fmt::format("'{}' must be a boolean", key));
  *out = j[key].get<bool>();
}

double read_number(const json& j, const char* key, double lo, double hi) {
  const json& v = j[key];
  if (!v.is_number()) bad_request(key, fmt::format("'{}' must be a number", key));
  const double x = v.get<double>();
  if (!std::isfinite(x) || x < lo || x > hi)
    bad_request(key, fmt::format("'{}' must be between {} and {}", key, lo, hi));
  return x;
}

void read_float(const json& j, const char* key, double lo, double hi, float* out) {
  if (present(j, key)) *out = (float)read_number(j, key, lo, hi);
}

// Integers only (1.5 is refused; 2.0 as JSON "2.0" too: OpenAI's integers are integers).
int64_t read_integer(const json& j, const char* key, int64_t lo, int64_t hi) {
  const json& v = j[key];
  if (!v.is_number_integer()) bad_request(key, fmt::format("'{}' must be an integer", key));
  if (v.is_number_unsigned() && v.get<uint64_t>() > (uint64_t)INT64_MAX)
    bad_request(key, fmt::format("'{}' must be between {} and {}", key, lo, hi));
  const int64_t x = v.get<int64_t>();
  if (x < lo || x > hi) bad_request(key, fmt::format("'{}' must be between {} and {}", key, lo, hi));
  return x;
}

std::string read_string(const json& j, const char* key) {
  if (!j[key].is_string()) bad_request(key, fmt::format("'{}' must be a string", key));
  return j[key].get<std::string>();
}

// A message's content: a string or an array of {"type": "text", "text": ...} parts.
std::string message_content(const json& m, size_t i) {
  const std::string param = fmt::format("messages[{}].content", i);
  if (!m.contains("content") || m["content"].is_null()) return "";
  const json& c = m["content"];
  if (c.is_string()) return c.get<std::string>();
  if (!c.is_array()) bad_request(param, "a message's content must be a string or an array of text parts");
  std::string text;
  for (const json& part : c) {
    if (!part.is_object() || !part.contains("type") || part["type"] != "text" ||
        !part.contains("text") || !part["text"].is_string())
      bad_request(param, "only text parts ({\"type\": \"text\", \"text\": ...}) are supported");
    text += part["text"].get<std::string>();
  }
  return text;
}

std::vector<ChatMessage> read_messages(const json& j, const ApiLimits& limits) {
  if (!present(j, "messages")) bad_request("messages", "'messages' is required");
  const json& ms = j["messages"];
  if (!ms.is_array() || ms.empty()) bad_request("messages", "'messages' must be a non-empty array");
  if (ms.size() > limits.max_messages)
    bad_request("messages", fmt::format("at most {} messages", limits.max_messages));
  std::vector<ChatMessage> out;
  int64_t chars = 0;
  for (size_t i = 0; i < ms.size(); ++i) {
    const json& m = ms[i];
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string())
      bad_request(fmt::format("messages[{}]", i), "each message needs a string 'role'");
    const std::string role = m["role"].get<std::string>();
    if (role != "system" && role != "user" && role != "assistant" && role != "developer" &&
        role != "tool")
      bad_request(fmt::format("messages[{}].role", i), fmt::format("unknown role '{}'", role));
    out.push_back({role == "developer" ? "system" : role, message_content(m, i)});
    chars += (int64_t)out.back().content.size();
  }
  if (chars > limits.max_prompt_chars)
    bad_request("messages", fmt::format("the messages exceed {} bytes", limits.max_prompt_chars));
  return out;
}

std::string read_prompt(const json& j, const ApiLimits& limits) {
  if (!present(j, "prompt")) bad_request("prompt", "'prompt' is required");
  const json& p = j["prompt"];
  std::string text;
  if (p.is_string()) {
    text = p.get<std::string>();
  } else if (p.is_array() && p.size() == 1 && p[0].is_string()) {
    text = p[0].get<std::string>();
  } else {
    bad_request("prompt", "'prompt' must be a string (or an array of one string)");
  }
  if ((int64_t)text.size() > limits.max_prompt_chars)
    bad_request("prompt", fmt::format("the prompt exceeds {} bytes", limits.max_prompt_chars));
  return text;
}

std::vector<std::string> read_stop(const json& j, const ApiLimits& limits) {
  std::vector<std::string> stop;
  if (!present(j, "stop")) return stop;
  const json& s = j["stop"];
  if (s.is_string()) {
    stop.push_back(s.get<std::string>());
  } else if (s.is_array()) {
    for (const json& x : s) {
      if (!x.is_string()) bad_request("stop", "'stop' must be a string or an array of strings");
      stop.push_back(x.get<std::string>());
    }
  } else {
    bad_request("stop", "'stop' must be a string or an array of strings");
  }
  if ((int)stop.size() > limits.max_stop)
    bad_request("stop", fmt::format("at most {} stop strings", limits.max_stop));
  for (const std::string& x : stop)
    if (x.empty()) bad_request("stop", "stop strings must not be empty");
  return stop;
}

void read_sampling(const json& j, SamplerParams* s) {
  read_float(j, "temperature", 0.0, 100.0, &s->temp);
  read_float(j, "top_p", 0.0, 1.0, &s->top_p);
  read_float(j, "min_p", 0.0, 1.0, &s->min_p);
  read_float(j, "typical_p", 0.0, 1.0, &s->typical_p);
  read_float(j, "presence_penalty", -2.0, 2.0, &s->presence_penalty);
  read_float(j, "frequency_penalty", -2.0, 2.0, &s->frequency_penalty);
  read_float(j, "repeat_penalty", 0.0, 100.0, &s->repeat_penalty);
  if (present(j, "top_k")) s->top_k = (int32_t)read_integer(j, "top_k", 0, 1 << 30);
  if (present(j, "repeat_last_n"))
    s->repeat_last_n = (int32_t)read_integer(j, "repeat_last_n", -1, 1 << 30);
  // Any integer seed: OpenAI's are 64-bit; the sampler takes 32 bits (-1: random).
  if (present(j, "seed")) {
    const int64_t seed = read_integer(j, "seed", INT64_MIN, INT64_MAX);
    s->seed = seed == -1 ? kDefaultSeed : (uint32_t)((uint64_t)seed & 0xFFFFFFFFu);
    if (s->seed == kDefaultSeed && seed != -1) s->seed = 0;
  }
}

// Chat: "logprobs": true with "top_logprobs": 0..20; completions: "logprobs": 0..20 (the
// legacy integer); either: llama-server's "n_probs". *n_probs = alternatives per token, -1 off.
void read_logprobs(const json& j, bool chat, int* n_probs) {
  if (chat) {
    bool on = false;
    read_bool(j, "logprobs", &on);
    if (present(j, "top_logprobs")) {
      const int top = (int)read_integer(j, "top_logprobs", 0, kMaxLogprobs);
      if (!on) bad_request("top_logprobs", "'top_logprobs' needs 'logprobs': true");
      *n_probs = top;
    } else if (on) {
      *n_probs = 0;
    }
  } else if (present(j, "logprobs")) {
    *n_probs = (int)read_integer(j, "logprobs", 0, kMaxLogprobs);
  }
  if (present(j, "n_probs")) *n_probs = (int)read_integer(j, "n_probs", 0, kMaxLogprobs);
}

void read_kv(const json& j, KvPolicySettings* kv) {
  if (present(j, "kv_policy")) {
    const std::string name = read_string(j, "kv_policy");
    const std::vector<std::string> names = kv_policy_names();
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      std::string known;
      for (const auto& n : names) known += (known.empty() ? "" : ", ") + n;
      bad_request("kv_policy", fmt::format("unknown KV policy '{}' (known: {})", name, known));
    }
    // A draft model's generation inside a scoring step would stall every other request of
    // the batch: draft-guided policies are for glimpse run / bench / eval.
    if (name == "speckv")
      bad_request("kv_policy", "KV policy 'speckv' runs a draft model and is not served "
                               "(use glimpse run --kv-policy speckv --kv-draft FNAME)");
    kv->name = name;
  }
  if (present(j, "kv_budget")) {
    kv->budget = read_integer(j, "kv_budget", 1, 1 << 30);
    kv->ratio = -1;
  }
  if (present(j, "kv_ratio")) {
    if (present(j, "kv_budget")) bad_request("kv_ratio", "give 'kv_budget' or 'kv_ratio', not both");
    kv->ratio = read_number(j, "kv_ratio", 0.0, 0.999);
    kv->budget = -1;
  }
  bool query_aware = !kv->query_agnostic;
  read_bool(j, "query_aware", &query_aware);
  kv->query_agnostic = !query_aware;
  try {
    validate_policy_settings(*kv);
  } catch (const Error& e) {
    bad_request("kv_policy", e.what());
  }
}

}  // namespace

CompletionRequest parse_completion_request(std::string_view body, bool chat,
                                           const ApiLimits& limits, const ApiDefaults& defaults) {
  const json j = parse_json_object(body);
  CompletionRequest r;
  r.chat = chat;
  r.sampling = defaults.sampling;
  r.kv = defaults.kv;
  r.n_predict = defaults.n_predict;
  if (present(j, "model")) r.model = read_string(j, "model");
  if (chat)
    r.messages = read_messages(j, limits);
  else
    r.prompt = read_prompt(j, limits);
  for (const char* key : {"max_tokens", "max_completion_tokens", "n_predict"})
    if (present(j, key)) r.n_predict = (int)read_integer(j, key, -1, limits.max_tokens);
  if (r.n_predict == 0) bad_request("max_tokens", "'max_tokens' must be at least 1");
  if (present(j, "n") && read_integer(j, "n", 1, 1) != 1) bad_request("n", "only n = 1 is supported");
  read_logprobs(j, chat, &r.n_probs);
  read_sampling(j, &r.sampling);
  r.stop = read_stop(j, limits);
  read_bool(j, "stream", &r.stream);
  read_bool(j, "ignore_eos", &r.ignore_eos);
  if (r.ignore_eos && r.n_predict < 0)
    bad_request("ignore_eos", "'ignore_eos' needs 'max_tokens' (it would run to the end of the context)");
  if (present(j, "stream_options")) {
    const json& so = j["stream_options"];
    if (!so.is_object()) bad_request("stream_options", "'stream_options' must be an object");
    read_bool(so, "include_usage", &r.include_usage);
  }
  read_kv(j, &r.kv);
  if (r.kv.query_agnostic && !chat)
    bad_request("query_aware", "query_aware = false needs a chat request (the last message is the question)");
  if (r.kv.query_agnostic && r.messages.size() < 2)
    bad_request("query_aware", "query_aware = false needs at least two messages (the document, then the question)");
  return r;
}

std::string finish_reason(const std::string& stop_reason) {
  return stop_reason == "length" || stop_reason == "context" ? "length" : "stop";
}

json usage_json(const CompletionStats& s) {
  return {{"prompt_tokens", s.n_prompt},
          {"completion_tokens", s.n_gen},
          {"total_tokens", s.n_prompt + s.n_gen},
          {"prompt_tokens_details", {{"cached_tokens", s.n_cached}}}};
}

json timings_json(const CompletionStats& s) {
  auto per_token = [](double ms, int64_t n) { return n > 0 ? ms / (double)n : 0.0; };
  auto per_second = [](double ms, int64_t n) { return ms > 0 ? 1e3 * (double)n / ms : 0.0; };
  // As llama-server: prompt_n counts the tokens processed, cache_n those reused.
  const int64_t n_run = s.n_prompt - s.n_cached;
  return {{"cache_n", s.n_cached},
          {"prompt_n", n_run},
          {"prompt_ms", s.prompt_ms},
          {"prompt_per_token_ms", per_token(s.prompt_ms, n_run)},
          {"prompt_per_second", per_second(s.prompt_ms, n_run)},
          {"predicted_n", s.n_gen},
          {"predicted_ms", s.predicted_ms},
          {"predicted_per_token_ms", per_token(s.predicted_ms, s.n_gen)},
          {"predicted_per_second", per_second(s.predicted_ms, s.n_gen)}};
}

json kv_json(const CompletionStats& s) {
  return {{"policy", s.kv_policy},
          {"budget", s.kv_budget},
          {"entries", s.kv_entries},
          {"full_entries", s.kv_full_entries},
          {"bytes", s.kv_bytes},
          {"full_bytes", s.kv_full_bytes}};
}

namespace {
json response_head(const CompletionRequest& r, const std::string& id, int64_t created,
                   bool chunk) {
  const char* object = r.chat ? (chunk ? "chat.completion.chunk" : "chat.completion")
                              : "text_completion";
  return {{"id", id}, {"object", object}, {"created", created}, {"model", r.model}};
}
}  // namespace

json logprobs_json(const CompletionRequest& r, const std::vector<TokenLogprob>& lps,
                   int64_t text_offset) {
  auto bytes = [](const std::string& piece) {
    json b = json::array();
    for (unsigned char c : piece) b.push_back((int)c);
    return b;
  };
  if (r.chat) {
    json content = json::array();
    for (const TokenLogprob& lp : lps) {
      json top = json::array();
      for (const TokenLogprob::Entry& e : lp.top)
        top.push_back({{"token", e.piece}, {"logprob", e.logprob}, {"bytes", bytes(e.piece)}});
      content.push_back({{"token", lp.token.piece}, {"logprob", lp.token.logprob},
                         {"bytes", bytes(lp.token.piece)}, {"top_logprobs", top}});
    }
    return {{"content", content}};
  }
  json tokens = json::array(), token_logprobs = json::array(), top = json::array(),
       offsets = json::array();
  for (const TokenLogprob& lp : lps) {
    tokens.push_back(lp.token.piece);
    token_logprobs.push_back(lp.token.logprob);
    json alts = json::object();
    for (const TokenLogprob::Entry& e : lp.top) alts[e.piece] = e.logprob;
    top.push_back(alts);
    offsets.push_back(text_offset);
    text_offset += (int64_t)lp.token.piece.size();
  }
  return {{"tokens", tokens}, {"token_logprobs", token_logprobs}, {"top_logprobs", top},
          {"text_offset", offsets}};
}

json completion_response(const CompletionRequest& r, const std::string& id, int64_t created,
                         const std::string& text, const std::string& stop_reason,
                         const CompletionStats& s, const std::vector<TokenLogprob>& lps) {
  json j = response_head(r, id, created, false);
  json choice = {{"index", 0}, {"finish_reason", finish_reason(stop_reason)}};
  if (r.chat) {
    choice["message"] = {{"role", "assistant"}, {"content", text}};
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = r.n_probs >= 0 ? logprobs_json(r, lps, 0) : json(nullptr);
  j["choices"] = json::array({choice});
  j["usage"] = usage_json(s);
  j["timings"] = timings_json(s);
  j["kv"] = kv_json(s);
  return j;
}

json stream_chunk(const CompletionRequest& r, const std::string& id, int64_t created,
                  const std::string& text, bool first, const std::vector<TokenLogprob>& lps,
                  int64_t text_offset) {
  json j = response_head(r, id, created, true);
  json choice = {{"index", 0}, {"finish_reason", nullptr}};
  if (r.chat) {
    json delta = {{"content", text}};
    if (first) delta["role"] = "assistant";
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  if (r.n_probs >= 0)
    choice["logprobs"] = logprobs_json(r, lps, text_offset);
  else if (!r.chat)
    choice["logprobs"] = nullptr;
  j["choices"] = json::array({choice});
  return j;
}

json stream_final_chunk(const CompletionRequest& r, const std::string& id, int64_t created,
                        const std::string& stop_reason, const CompletionStats& s) {
  json j = response_head(r, id, created, true);
  json choice = {{"index", 0}, {"finish_reason", finish_reason(stop_reason)}};
  if (r.chat)
    choice["delta"] = json::object();
  else
    choice["text"] = "";
  j["choices"] = json::array({choice});
  j["timings"] = timings_json(s);
  j["kv"] = kv_json(s);
  return j;
}

json stream_usage_chunk(const CompletionRequest& r, const std::string& id, int64_t created,
                        const CompletionStats& s) {
  json j = response_head(r, id, created, true);
  j["choices"] = json::array();
  j["usage"] = usage_json(s);
  return j;
}

std::string sse_event(const json& j) {
  return "data: " + j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n\n";
}

}  // namespace glimpse
