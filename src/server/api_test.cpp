#include "server/api.h"

#include <gtest/gtest.h>

#include <string>

namespace glimpse {
namespace {

using json = nlohmann::json;

CompletionRequest chat(const std::string& body, const ApiDefaults& d = {}) {
  return parse_completion_request(body, true, ApiLimits{}, d);
}
CompletionRequest plain(const std::string& body) {
  return parse_completion_request(body, false, ApiLimits{}, ApiDefaults{});
}

// The status and param of the ApiError a body raises (0 / "" if none).
std::pair<int, std::string> refusal(const std::string& body, bool is_chat = true) {
  try {
    parse_completion_request(body, is_chat, ApiLimits{}, ApiDefaults{});
  } catch (const ApiError& e) {
    EXPECT_EQ(e.body()["error"]["type"], e.type());
    return {e.status(), e.param()};
  }
  return {0, ""};
}

const char* kHello = R"({"messages": [{"role": "user", "content": "hello"}]})";

TEST(ServerApi, MinimalChatTakesTheDefaults) {
  ApiDefaults d;
  d.sampling.temp = 0.3f;
  d.kv.name = "snapkv";
  d.kv.budget = 64;
  d.n_predict = 12;
  const CompletionRequest r = chat(kHello, d);
  EXPECT_TRUE(r.chat);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].role, "user");
  EXPECT_EQ(r.messages[0].content, "hello");
  EXPECT_FLOAT_EQ(r.sampling.temp, 0.3f);
  EXPECT_EQ(r.kv.name, "snapkv");
  EXPECT_EQ(r.kv.budget, 64);
  EXPECT_EQ(r.n_predict, 12);
  EXPECT_FALSE(r.stream);
}

TEST(ServerApi, ReadsEveryField) {
  const CompletionRequest r = chat(R"({
    "model": "m", "messages": [{"role": "system", "content": "s"},
                               {"role": "user", "content": [{"type": "text", "text": "a"},
                                                            {"type": "text", "text": "b"}]}],
    "max_tokens": 5, "temperature": 0, "top_p": 0.5, "top_k": 7, "min_p": 0.1, "seed": 42,
    "stop": ["x", "y"], "stream": true, "stream_options": {"include_usage": true},
    "presence_penalty": 0.5, "frequency_penalty": -0.5, "repeat_penalty": 1.1,
    "kv_policy": "snapkv", "kv_budget": 256, "query_aware": false})");
  EXPECT_EQ(r.model, "m");
  EXPECT_EQ(r.messages[1].content, "ab");
  EXPECT_EQ(r.n_predict, 5);
  EXPECT_EQ(r.sampling.temp, 0.0f);
  EXPECT_FLOAT_EQ(r.sampling.top_p, 0.5f);
  EXPECT_EQ(r.sampling.top_k, 7);
  EXPECT_EQ(r.sampling.seed, 42u);
  EXPECT_EQ(r.stop, (std::vector<std::string>{"x", "y"}));
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_EQ(r.kv.name, "snapkv");
  EXPECT_EQ(r.kv.budget, 256);
  EXPECT_TRUE(r.kv.query_agnostic);
  // max_completion_tokens and a single stop string, a ratio instead of a budget.
  const CompletionRequest r2 = chat(R"({"messages": [{"role": "user", "content": "q"}],
    "max_completion_tokens": 9, "stop": "z", "kv_policy": "snapkv", "kv_ratio": 0.5})");
  EXPECT_EQ(r2.n_predict, 9);
  EXPECT_EQ(r2.stop, (std::vector<std::string>{"z"}));
  EXPECT_DOUBLE_EQ(r2.kv.ratio, 0.5);
  EXPECT_EQ(r2.kv.budget, -1);
  EXPECT_TRUE(chat(R"({"messages": [{"role": "user", "content": "q"}], "max_tokens": 4, "ignore_eos": true})").ignore_eos);
}

TEST(ServerApi, PlainCompletionPrompt) {
  EXPECT_EQ(plain(R"({"prompt": "once upon"})").prompt, "once upon");
  EXPECT_EQ(plain(R"({"prompt": ["once upon"]})").prompt, "once upon");
  EXPECT_EQ(refusal(R"({"prompt": [1, 2]})", false).second, "prompt");
  EXPECT_EQ(refusal(R"({"prompt": ["a", "b"]})", false).second, "prompt");
  EXPECT_EQ(refusal(R"({})", false).second, "prompt");
  EXPECT_EQ(refusal(R"({"prompt": "x", "query_aware": false})", false).second, "query_aware");
}

TEST(ServerApi, MalformedBodiesAre400) {
  for (const char* body : {"", "{", "[]", "null", "42", "\"text\"", "{\"messages\": [}",
                           "{\"messages\": \"\xff\xfe\"}",
                           "{\"temperature\": 1e400}"}) {  // overflows the JSON number
    SCOPED_TRACE(body);
    EXPECT_EQ(refusal(body).first, 400);
  }
}

TEST(ServerApi, WrongTypesAndRangesName400Params) {
  struct Case {
    const char* body;
    const char* param;
  };
  const Case cases[] = {
      {R"({})", "messages"},
      {R"({"messages": []})", "messages"},
      {R"({"messages": {}})", "messages"},
      {R"({"messages": [{"content": "x"}]})", "messages[0]"},
      {R"({"messages": [{"role": "wizard", "content": "x"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user", "content": 5}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url"}]}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": "x"}], "temperature": "hot"})", "temperature"},
      {R"({"messages": [{"role": "user", "content": "x"}], "temperature": -1})", "temperature"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_p": 2})", "top_p"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_k": 1.5})", "top_k"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 0})", "max_tokens"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1.5})", "max_tokens"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 99999999999999999999999})", "max_tokens"},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": -2})", "max_tokens"},
      {R"({"messages": [{"role": "user", "content": "x"}], "seed": "1"})", "seed"},
      {R"({"messages": [{"role": "user", "content": "x"}], "stop": 3})", "stop"},
      {R"({"messages": [{"role": "user", "content": "x"}], "stop": [""]})", "stop"},
      {R"({"messages": [{"role": "user", "content": "x"}], "stop": ["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]})", "stop"},
      {R"({"messages": [{"role": "user", "content": "x"}], "stream": "yes"})", "stream"},
      {R"({"messages": [{"role": "user", "content": "x"}], "stream_options": 1})", "stream_options"},
      {R"({"messages": [{"role": "user", "content": "x"}], "n": 2})", "n"},
      {R"({"messages": [{"role": "user", "content": "x"}], "logprobs": 5})", "logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 3})", "top_logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21})", "top_logprobs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "n_probs": -1})", "n_probs"},
      {R"({"messages": [{"role": "user", "content": "x"}], "ignore_eos": 1})", "ignore_eos"},
      {R"({"messages": [{"role": "user", "content": "x"}], "ignore_eos": true})", "ignore_eos"},
      {R"({"messages": [{"role": "user", "content": "x"}], "kv_policy": "magic"})", "kv_policy"},
      {R"({"messages": [{"role": "user", "content": "x"}], "kv_policy": 3})", "kv_policy"},
      {R"({"messages": [{"role": "user", "content": "x"}], "kv_budget": 0})", "kv_budget"},
      {R"({"messages": [{"role": "user", "content": "x"}], "kv_ratio": 1.5})", "kv_ratio"},
      {R"({"messages": [{"role": "user", "content": "x"}], "kv_budget": 8, "kv_ratio": 0.5})", "kv_ratio"},
      {R"({"messages": [{"role": "user", "content": "x"}], "query_aware": 0})", "query_aware"},
      {R"({"messages": [{"role": "user", "content": "x"}], "query_aware": false})", "query_aware"},
      {R"({"messages": [{"role": "user", "content": "x"}], "model": 7})", "model"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.body);
    const auto [status, param] = refusal(c.body);
    EXPECT_EQ(status, 400);
    EXPECT_EQ(param, c.param);
  }
}

TEST(ServerApi, LimitsAreEnforced) {
  ApiLimits lim;
  lim.max_prompt_chars = 10;
  EXPECT_THROW(parse_completion_request(R"({"prompt": "01234567890"})", false, lim, {}), ApiError);
  EXPECT_NO_THROW(parse_completion_request(R"({"prompt": "0123456789"})", false, lim, {}));
  lim.max_tokens = 100;
  EXPECT_THROW(parse_completion_request(R"({"prompt": "x", "max_tokens": 101})", false, lim, {}),
               ApiError);
}

TEST(ServerApi, ErrorBodyIsOpenAiShaped) {
  const ApiError e(400, "invalid_request_error", "bad thing", "temperature");
  const json b = e.body();
  EXPECT_EQ(b["error"]["message"], "bad thing");
  EXPECT_EQ(b["error"]["type"], "invalid_request_error");
  EXPECT_EQ(b["error"]["param"], "temperature");
  EXPECT_EQ(b["error"]["code"], 400);
  EXPECT_TRUE(ApiError(401, "authentication_error", "no").body()["error"]["param"].is_null());
}

// logprobs as OpenAI's chat (logprobs + top_logprobs) and legacy completions (an integer)
// name them, or llama-server's n_probs; and the shapes of the objects in responses.
TEST(ServerApi, LogprobsRequestsAndShapes) {
  EXPECT_EQ(chat(R"({"messages": [{"role": "user", "content": "q"}]})").n_probs, -1);
  EXPECT_EQ(chat(R"({"messages": [{"role": "user", "content": "q"}], "logprobs": true})").n_probs, 0);
  EXPECT_EQ(chat(R"({"messages": [{"role": "user", "content": "q"}], "logprobs": false})").n_probs, -1);
  EXPECT_EQ(chat(R"({"messages": [{"role": "user", "content": "q"}], "logprobs": true, "top_logprobs": 4})").n_probs, 4);
  EXPECT_EQ(chat(R"({"messages": [{"role": "user", "content": "q"}], "n_probs": 2})").n_probs, 2);
  EXPECT_EQ(plain(R"({"prompt": "q", "logprobs": 3})").n_probs, 3);
  EXPECT_EQ(plain(R"({"prompt": "q", "logprobs": null})").n_probs, -1);
  std::vector<TokenLogprob> lps(2);
  lps[0].token = {5, "He", -0.25f};
  lps[0].top = {{5, "He", -0.25f}, {9, "Hi", -1.5f}};
  lps[1].token = {7, "\xC3", -2.0f};  // part of a character: the bytes tell
  lps[1].top = {{8, "llo", -0.5f}, {7, "\xC3", -2.0f}};
  const CompletionRequest c = chat(R"({"messages": [{"role": "user", "content": "q"}], "logprobs": true, "top_logprobs": 2})");
  const json full = completion_response(c, "chatcmpl-1", 7, "He", "eos", CompletionStats{}, lps);
  const json& content = full["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 2u);
  EXPECT_EQ(content[0]["token"], "He");
  EXPECT_FLOAT_EQ(content[0]["logprob"].get<float>(), -0.25f);
  EXPECT_EQ(content[0]["bytes"], json({72, 101}));
  EXPECT_EQ(content[0]["top_logprobs"][1]["token"], "Hi");
  EXPECT_EQ(content[1]["bytes"], json({0xC3}));
  EXPECT_NO_THROW(sse_event(full));  // the lone byte is replaced in the JSON text
  EXPECT_EQ(stream_chunk(c, "chatcmpl-1", 7, "He", true, {lps[0]})["choices"][0]["logprobs"]["content"].size(), 1u);
  const CompletionRequest p = plain(R"({"prompt": "q", "logprobs": 2})");
  const json legacy = completion_response(p, "cmpl-1", 7, "He", "eos", CompletionStats{}, lps)["choices"][0]["logprobs"];
  EXPECT_EQ(legacy["tokens"], json({"He", "\xC3"}));
  EXPECT_EQ(legacy["text_offset"], json({0, 2}));
  EXPECT_FLOAT_EQ(legacy["top_logprobs"][0]["Hi"].get<float>(), -1.5f);
  EXPECT_EQ(stream_chunk(p, "cmpl-1", 7, "x", false, {lps[1]}, 2)["choices"][0]["logprobs"]["text_offset"], json({2}));
  EXPECT_TRUE(completion_response(plain(R"({"prompt": "q"})"), "cmpl-1", 7, "He", "eos",
                                  CompletionStats{})["choices"][0]["logprobs"].is_null());
}

TEST(ServerApi, ResponsesAndChunks) {
  EXPECT_EQ(finish_reason("eos"), "stop");
  EXPECT_EQ(finish_reason("stop"), "stop");
  EXPECT_EQ(finish_reason("length"), "length");
  EXPECT_EQ(finish_reason("context"), "length");
  CompletionStats s;
  s.n_prompt = 10;
  s.n_gen = 4;
  s.prompt_ms = 20;
  s.predicted_ms = 8;
  s.kv_policy = "snapkv";
  s.kv_entries = 100;
  s.kv_full_entries = 400;
  const CompletionRequest c = chat(R"({"model": "x", "messages": [{"role": "user", "content": "q"}]})");
  const json full = completion_response(c, "chatcmpl-1", 7, "hi", "eos", s);
  EXPECT_EQ(full["object"], "chat.completion");
  EXPECT_EQ(full["choices"][0]["message"]["content"], "hi");
  EXPECT_EQ(full["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(full["usage"]["total_tokens"], 14);
  EXPECT_DOUBLE_EQ(full["timings"]["predicted_per_second"].get<double>(), 500.0);
  EXPECT_EQ(full["kv"]["full_entries"], 400);
  const json first = stream_chunk(c, "chatcmpl-1", 7, "h", true);
  EXPECT_EQ(first["object"], "chat.completion.chunk");
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_FALSE(stream_chunk(c, "chatcmpl-1", 7, "i", false)["choices"][0]["delta"].contains("role"));
  const json last = stream_final_chunk(c, "chatcmpl-1", 7, "length", s);
  EXPECT_EQ(last["choices"][0]["finish_reason"], "length");
  EXPECT_TRUE(stream_usage_chunk(c, "chatcmpl-1", 7, s)["choices"].empty());
  const CompletionRequest p = plain(R"({"prompt": "q"})");
  EXPECT_EQ(completion_response(p, "cmpl-1", 7, "hi", "stop", s)["choices"][0]["text"], "hi");
  EXPECT_EQ(stream_chunk(p, "cmpl-1", 7, "h", true)["object"], "text_completion");
  const std::string ev = sse_event(json{{"a", 1}});
  EXPECT_EQ(ev, "data: {\"a\":1}\n\n");
}

}  // namespace
}  // namespace glimpse
