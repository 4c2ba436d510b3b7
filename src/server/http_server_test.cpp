// glimpse serve end to end on loopback: the default model behind HttpServer, driven by an
// HTTP client. Answers are checked against generate() run directly on the same tokens.
#include "server/http_server.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <filesystem>
#include <thread>

#include "runtime/context.h"
#include "runtime/generate.h"
#include "server/completion.h"
#include "server/web_page.h"

namespace glimpse {
namespace {

using json = nlohmann::json;

std::shared_ptr<const Engine> default_engine() {
  static std::shared_ptr<const Engine> e = [] {
    std::shared_ptr<const Engine> out;
    if (!std::filesystem::exists(default_model_path())) return out;
    EngineParams p;
    p.model_path = default_model_path();
    p.n_threads = 2;
    p.context.n_ctx = 2048;
    out = Engine::load(p);
    return out;
  }();
  return e;
}

// A server on a free loopback port, serving on its own thread for the test's life.
struct Running {
  HttpServer server;
  int port = 0;
  std::thread thread;
  explicit Running(ServeParams p, std::shared_ptr<const Engine> e) : server([&] {
    p.host = "127.0.0.1";
    p.port = 0;
    return p;
  }()) {
    port = server.bind();
    if (e) server.set_engine(std::move(e));
    thread = std::thread([this] { server.serve(); });
  }
  ~Running() {
    server.stop();
    thread.join();
  }
  httplib::Client client(const std::string& key = "") const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(120, 0);
    if (!key.empty()) c.set_bearer_token_auth(key);
    return c;
  }
};

class ServeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    engine_ = default_engine();
    if (!engine_) GTEST_SKIP() << "default model not found";
  }
  std::shared_ptr<const Engine> engine_;
};

// What generate() writes for a chat request, greedy, on its own context.
std::string direct_answer(const std::shared_ptr<const Engine>& e, const std::string& body) {
  const CompletionRequest r = parse_completion_request(body, true, ApiLimits{}, ApiDefaults{});
  int64_t n_compress = 0;
  const std::vector<int32_t> tokens = completion_prompt(*e, r, &n_compress);
  Context ctx(e);
  return generate(ctx, tokens, completion_params(r, n_compress), [](std::string_view) {}).text;
}

const char* kGreedy =
    R"({"messages": [{"role": "user", "content": "Name three colours."}], "temperature": 0, "max_tokens": 24})";

TEST_F(ServeTest, HealthModelsAndGreedyChatMatchGenerate) {
  Running s({}, engine_);
  httplib::Client c = s.client();
  auto h = c.Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 200);
  auto m = c.Get("/v1/models");
  ASSERT_TRUE(m);
  EXPECT_EQ(json::parse(m->body)["data"][0]["id"],
            std::filesystem::path(default_model_path()).filename().string());
  auto r = c.Post("/v1/chat/completions", kGreedy, "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json j = json::parse(r->body);
  const std::string text = j["choices"][0]["message"]["content"];
  EXPECT_EQ(text, direct_answer(engine_, kGreedy));
  EXPECT_FALSE(text.empty());
  EXPECT_EQ(j["usage"]["completion_tokens"].get<int64_t>() + j["usage"]["prompt_tokens"].get<int64_t>(),
            j["usage"]["total_tokens"].get<int64_t>());
  EXPECT_GT(j["timings"]["predicted_per_second"].get<double>(), 0.0);
}

TEST_F(ServeTest, StreamedDeltasAddUpToTheWholeAnswer) {
  Running s({}, engine_);
  httplib::Client c = s.client();
  json body = json::parse(kGreedy);
  body["stream"] = true;
  body["stream_options"] = {{"include_usage", true}};
  auto r = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/event-stream"), std::string::npos);
  std::string text, finish;
  int n_events = 0;
  bool done = false, usage = false;
  size_t at = 0;
  while ((at = r->body.find("data: ", at)) != std::string::npos) {
    const size_t end = r->body.find("\n\n", at);
    ASSERT_NE(end, std::string::npos);
    const std::string data = r->body.substr(at + 6, end - at - 6);
    at = end;
    ++n_events;
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    const json ev = json::parse(data);
    if (ev["choices"].empty()) {
      usage = ev.contains("usage");
      continue;
    }
    const json& ch = ev["choices"][0];
    if (n_events == 1) {
      EXPECT_EQ(ch["delta"]["role"], "assistant");
    }
    if (ch["delta"].contains("content")) text += ch["delta"]["content"].get<std::string>();
    if (!ch["finish_reason"].is_null()) finish = ch["finish_reason"];
  }
  EXPECT_TRUE(done);
  EXPECT_TRUE(usage);
  EXPECT_FALSE(finish.empty());
  EXPECT_EQ(text, direct_answer(engine_, kGreedy));
}

TEST_F(ServeTest, ConcurrentRequestsAreBatchedAndEachGetsItsOwnAnswer) {
  ServeParams p;
  p.n_parallel = 4;
  Running s(p, engine_);
  const std::vector<std::string> questions = {"Name three colours.", "What is 2 + 2?",
                                              "Say hello in French.", "Name a large animal."};
  std::vector<std::string> bodies, got(questions.size());
  for (size_t i = 0; i < questions.size(); ++i) {
    json b = {{"messages", {{{"role", "user"}, {"content", questions[i]}}}},
              {"temperature", 0}, {"max_tokens", 20}};
    if (i == 1) b["kv_policy"] = "streaming", b["kv_budget"] = 16;
    if (i == 2) b["stream"] = true;
    bodies.push_back(b.dump());
  }
  std::vector<std::thread> clients;
  for (size_t i = 0; i < bodies.size(); ++i)
    clients.emplace_back([&, i] {
      auto r = s.client().Post("/v1/chat/completions", bodies[i], "application/json");
      if (!r || r->status != 200) return;
      if (i != 2) {
        got[i] = json::parse(r->body)["choices"][0]["message"]["content"];
        return;
      }
      for (size_t at = 0; (at = r->body.find("data: {", at)) != std::string::npos; ++at) {
        const json ev = json::parse(r->body.substr(at + 6, r->body.find("\n\n", at) - at - 6));
        if (!ev["choices"].empty() && ev["choices"][0]["delta"].contains("content"))
          got[i] += ev["choices"][0]["delta"]["content"].get<std::string>();
      }
    });
  for (auto& t : clients) t.join();
  for (size_t i = 0; i < bodies.size(); ++i) {
    json b = json::parse(bodies[i]);
    b.erase("stream");
    EXPECT_EQ(got[i], direct_answer(engine_, b.dump())) << questions[i];
  }
  const json slots = json::parse(s.client().Get("/slots")->body);
  // Rows decoded per batched forward: more than one when the requests overlapped.
  EXPECT_GT(slots["batched_rows"].get<double>() / slots["batched_steps"].get<double>(), 1.5)
      << slots.dump();
}

// A long prompt goes in 32 tokens per step while another request streams (96 tokens,
// ignore_eos): both answers are those of each request alone (the long one compressed by
// SnapKV after its last chunk).
TEST_F(ServeTest, LongPromptsGoInChunksBesideOtherStreams) {
  ServeParams p;
  p.n_parallel = 2;
  p.prefill_chunk = 32;
  Running s(p, engine_);
  std::string doc;
  for (int i = 0; i < 40; ++i) doc += "Entry " + std::to_string(i) + ": the ferry left pier " + std::to_string(i % 7) + ". ";
  const json streamed = {{"messages", {{{"role", "user"}, {"content", "Count from one to twenty."}}}},
                         {"temperature", 0}, {"max_tokens", 96}, {"ignore_eos", true}, {"stream", true}};
  const json long_one = {{"messages", {{{"role", "user"}, {"content", doc + "\nWhich pier did entry 12 use?"}}}},
                         {"temperature", 0}, {"max_tokens", 12}, {"kv_policy", "snapkv"}, {"kv_budget", 64}};
  std::string got_stream, got_long;
  std::thread a([&] {
    auto r = s.client().Post("/v1/chat/completions", streamed.dump(), "application/json");
    if (!r || r->status != 200) return;
    for (size_t at = 0; (at = r->body.find("data: {", at)) != std::string::npos; ++at) {
      const json ev = json::parse(r->body.substr(at + 6, r->body.find("\n\n", at) - at - 6));
      if (!ev["choices"].empty() && ev["choices"][0]["delta"].contains("content"))
        got_stream += ev["choices"][0]["delta"]["content"].get<std::string>();
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  auto r = s.client().Post("/v1/chat/completions", long_one.dump(), "application/json");
  a.join();
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200) << r->body;
  const json body = json::parse(r->body);
  got_long = body["choices"][0]["message"]["content"];
  json plain = streamed;
  plain.erase("stream");
  EXPECT_EQ(got_stream, direct_answer(engine_, plain.dump()));
  EXPECT_EQ(got_long, direct_answer(engine_, long_one.dump()));
  const int64_t n_prompt = body["usage"]["prompt_tokens"];
  EXPECT_GT(n_prompt, 400);
  const json slots = json::parse(s.client().Get("/slots")->body);
  EXPECT_GE(slots["batched_prompt_tokens"].get<int64_t>(), n_prompt) << slots.dump();
  // At most 32 prompt tokens per step: the long prompt alone took this many steps.
  EXPECT_GE(slots["batched_steps"].get<int64_t>(), n_prompt / 32) << slots.dump();
}

// The document cache: a second question on a document compressed query-agnostically
// prefills only the question; a conversation's next turn prefills only the new messages.
// Both answers equal those of a cold request; /metrics counts the hits.
TEST_F(ServeTest, DocumentCacheServesLaterQuestionsAndTurns) {
  ServeParams p;
  p.metrics = true;
  Running s(p, engine_);
  httplib::Client c = s.client();
  std::string doc;
  for (int i = 0; i < 25; ++i) doc += "Crate " + std::to_string(i) + " holds " + std::to_string(3 * i + 1) + " lamps. ";
  auto ask = [&](const std::string& q, bool agnostic) {
    json b = {{"messages", {{{"role", "system"}, {"content", doc}}, {{"role", "user"}, {"content", q}}}},
              {"temperature", 0}, {"max_tokens", 10}};
    if (agnostic) b["kv_policy"] = "snapkv", b["kv_budget"] = 48, b["query_aware"] = false;
    return b;
  };
  for (bool agnostic : {true, false}) {
    SCOPED_TRACE(agnostic ? "compressed document" : "full cache");
    const json q1 = ask("How many lamps are in crate 4?", agnostic);
    auto r1 = c.Post("/v1/chat/completions", q1.dump(), "application/json");
    ASSERT_TRUE(r1 && r1->status == 200);
    const json a1 = json::parse(r1->body);
    json q2 = ask("Which crate holds 31 lamps?", agnostic);
    if (!agnostic) {  // the next turn of the same conversation
      q2 = q1;
      q2["messages"].push_back({{"role", "assistant"}, {"content", a1["choices"][0]["message"]["content"]}});
      q2["messages"].push_back({{"role", "user"}, {"content", "And crate 5?"}});
    }
    auto r2 = c.Post("/v1/chat/completions", q2.dump(), "application/json");
    ASSERT_TRUE(r2 && r2->status == 200) << (r2 ? r2->body : "");
    const json a2 = json::parse(r2->body);
    const int64_t cached = a2["usage"]["prompt_tokens_details"]["cached_tokens"];
    EXPECT_EQ(a2["timings"]["cache_n"], cached);
    EXPECT_EQ(a2["timings"]["prompt_n"].get<int64_t>() + cached, a2["usage"]["prompt_tokens"].get<int64_t>());
    if (agnostic) {
      EXPECT_GT(cached, 200);  // the system message: the document
      EXPECT_EQ(a2["kv"]["policy"], "snapkv");
      EXPECT_LT(a2["kv"]["entries"].get<int64_t>() * 3, a2["kv"]["full_entries"].get<int64_t>());
    } else {
      EXPECT_GT(cached, a1["usage"]["prompt_tokens"].get<int64_t>());  // prompt and answer
    }
    EXPECT_EQ(a2["choices"][0]["message"]["content"], direct_answer(engine_, q2.dump()));
  }
  const std::string m = c.Get("/metrics")->body;
  EXPECT_NE(m.find("glimpse:document_cache_hits_total 2"), std::string::npos) << m;
  const json slots = json::parse(c.Get("/slots")->body);
  EXPECT_GE(slots["document_cache"]["entries"].get<int64_t>(), 2) << slots.dump();
}

// Greedy decoding with logprobs: one entry per generated token, each the most likely token
// of its step, the same whole or streamed.
TEST_F(ServeTest, LogprobsOfGreedyTokensAreTheTopOnes) {
  Running s({}, engine_);
  httplib::Client c = s.client();
  json body = json::parse(kGreedy);
  body["logprobs"] = true;
  body["top_logprobs"] = 3;
  auto r = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(r && r->status == 200) << (r ? r->body : "");
  const json j = json::parse(r->body);
  const json& content = j["choices"][0]["logprobs"]["content"];
  ASSERT_EQ((int64_t)content.size(), j["usage"]["completion_tokens"].get<int64_t>());
  std::string joined;
  for (const json& t : content) {
    ASSERT_EQ(t["top_logprobs"].size(), 3u);
    EXPECT_EQ(t["token"], t["top_logprobs"][0]["token"]);
    EXPECT_FLOAT_EQ(t["logprob"].get<float>(), t["top_logprobs"][0]["logprob"].get<float>());
    EXPECT_LE(t["logprob"].get<double>(), 0.0);
    EXPECT_GE(t["top_logprobs"][0]["logprob"].get<double>(), t["top_logprobs"][1]["logprob"].get<double>());
    for (const json& b : t["bytes"]) joined += (char)b.get<int>();
  }
  EXPECT_EQ(joined, j["choices"][0]["message"]["content"]);  // the tokens spell the answer
  body["stream"] = true;
  auto st = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(st && st->status == 200);
  json streamed = json::array();
  for (size_t at = 0; (at = st->body.find("data: {", at)) != std::string::npos; ++at) {
    const json ev = json::parse(st->body.substr(at + 6, st->body.find("\n\n", at) - at - 6));
    if (!ev["choices"].empty() && ev["choices"][0].contains("logprobs") && ev["choices"][0]["logprobs"].is_object())
      for (const json& t : ev["choices"][0]["logprobs"]["content"]) streamed.push_back(t);
  }
  EXPECT_EQ(streamed, content);
}

TEST_F(ServeTest, PerRequestKvPolicyHoldsFewerEntries) {
  ServeParams p;
  p.metrics = true;
  Running s(p, engine_);
  httplib::Client c = s.client();
  std::string doc;
  for (int i = 0; i < 30; ++i) doc += "Line " + std::to_string(i) + " of a long note about the harbour. ";
  json body = {{"messages", {{{"role", "user"}, {"content", doc + "\nWhat is this about?"}}}},
               {"temperature", 0}, {"max_tokens", 8}};
  auto full = c.Post("/v1/chat/completions", body.dump(), "application/json");
  body["kv_policy"] = "snapkv";
  body["kv_budget"] = 64;
  auto kept = c.Post("/v1/chat/completions", body.dump(), "application/json");
  ASSERT_TRUE(full && kept);
  ASSERT_EQ(kept->status, 200) << kept->body;
  const json jf = json::parse(full->body)["kv"], jk = json::parse(kept->body)["kv"];
  EXPECT_EQ(jf["entries"], jf["full_entries"]);
  EXPECT_EQ(jk["policy"], "snapkv");
  EXPECT_EQ(jk["budget"], 64);
  EXPECT_LT(jk["entries"].get<int64_t>() * 3, jk["full_entries"].get<int64_t>());
  EXPECT_LT(jk["bytes"].get<int64_t>() * 3, jk["full_bytes"].get<int64_t>());
  // Per-policy counters: one request each, one compression (SnapKV's).
  // The scheduler records the resident KV after a step's jobs finish: wait for the idle 0.
  std::string m;
  for (int i = 0; i < 100; ++i) {
    m = c.Get("/metrics")->body;
    if (m.find("glimpse:kv_resident_bytes 0\n") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  for (const char* line : {"glimpse:kv_policy_requests_total{policy=\"none\"} 1",
                           "glimpse:kv_policy_requests_total{policy=\"snapkv\"} 1",
                           "glimpse:kv_policy_compressions_total{policy=\"snapkv\"} 1",
                           "glimpse:kv_policy_compressions_total{policy=\"none\"} 0",
                           "glimpse:kv_resident_bytes 0\n"})
    EXPECT_NE(m.find(line), std::string::npos) << line << "\n" << m;
  const size_t at = m.find("glimpse:kv_policy_score_seconds_total{policy=\"snapkv\"} ");
  ASSERT_NE(at, std::string::npos);
  EXPECT_GT(std::stod(m.substr(m.find('}', at) + 2)), 0.0);
}

TEST_F(ServeTest, BadRequestsGet4xxAndTheServerKeepsServing) {
  ServeParams p;
  p.max_body_bytes = 4096;
  Running s(p, engine_);
  httplib::Client c = s.client();
  const std::pair<const char*, int> cases[] = {
      {"not json", 400},
      {R"({"messages": "x"})", 400},
      {R"({"messages": [{"role": "user", "content": "x"}], "kv_policy": "magic"})", 400},
      {R"({"messages": [{"role": "user", "content": "x"}], "max_tokens": 1e99})", 400},
  };
  for (const auto& [body, status] : cases) {
    auto r = c.Post("/v1/chat/completions", body, "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, status) << body;
    EXPECT_TRUE(json::parse(r->body)["error"].contains("message")) << r->body;
  }
  auto big = c.Post("/v1/completions", std::string(8192, 'x'), "application/json");
  ASSERT_TRUE(big);
  EXPECT_EQ(big->status, 413);
  // A prompt over the context: 400 naming context_length_exceeded.
  std::string huge;
  for (int i = 0; i < 700; ++i) huge += "word ";
  ServeParams p2;
  Running s2(p2, engine_);
  httplib::Client c2 = s2.client();
  auto over = c2.Post("/v1/completions", json{{"prompt", huge + huge + huge}}.dump(), "application/json");
  ASSERT_TRUE(over);
  EXPECT_EQ(over->status, 400);
  EXPECT_EQ(json::parse(over->body)["error"]["param"], "context_length_exceeded");
  auto nf = c.Get("/nope");
  ASSERT_TRUE(nf);
  EXPECT_EQ(nf->status, 404);
  EXPECT_TRUE(json::parse(nf->body).contains("error"));
  auto ok = c.Post("/v1/chat/completions", kGreedy, "application/json");
  ASSERT_TRUE(ok);
  EXPECT_EQ(ok->status, 200);
}

TEST_F(ServeTest, ApiKeyTokenizeAndLoading) {
  ServeParams p;
  p.api_key = "sekret";
  Running s(p, engine_);
  auto no = s.client().Get("/v1/models");
  ASSERT_TRUE(no);
  EXPECT_EQ(no->status, 401);
  EXPECT_EQ(json::parse(no->body)["error"]["type"], "authentication_error");
  EXPECT_EQ(s.client().Get("/health")->status, 200);
  httplib::Client c = s.client("sekret");
  auto t = c.Post("/tokenize", R"({"content": "Hello world"})", "application/json");
  ASSERT_TRUE(t);
  ASSERT_EQ(t->status, 200);
  const json ids = json::parse(t->body)["tokens"];
  EXPECT_FALSE(ids.empty());
  auto d = c.Post("/detokenize", json{{"tokens", ids}}.dump(), "application/json");
  ASSERT_TRUE(d);
  EXPECT_EQ(json::parse(d->body)["content"], "Hello world");
  auto bad = c.Post("/detokenize", R"({"tokens": [-1]})", "application/json");
  EXPECT_EQ(bad->status, 400);

  Running loading({}, nullptr);  // no model yet
  auto h = loading.client().Get("/health");
  ASSERT_TRUE(h);
  EXPECT_EQ(h->status, 503);
  EXPECT_EQ(loading.client().Post("/v1/completions", R"({"prompt": "x"})", "application/json")->status, 503);
}

TEST(ServeWebPage, FillsThePolicyMenuAndEscapesScriptText) {
  const std::string page = web_page({"none", "snapkv"}, "snapkv", "m</script><b>");
  EXPECT_NE(page.find("const POLICIES = [\"none\",\"snapkv\"], PRESELECT = \"snapkv\";"),
            std::string::npos);
  EXPECT_EQ(page.find("m</script><b>"), std::string::npos);
  EXPECT_NE(page.find("m<\\/script><b>"), std::string::npos);
  for (const char* placeholder : {"@POLICIES@", "@PRESELECT@", "@MODEL@"})
    EXPECT_EQ(page.find(placeholder), std::string::npos) << placeholder;
}

TEST_F(ServeTest, ServesThePageAtRoot) {
  Running s({}, engine_);
  auto r = s.client().Get("/");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);
  EXPECT_NE(r->get_header_value("Content-Type").find("text/html"), std::string::npos);
  EXPECT_NE(r->body.find("/v1/chat/completions"), std::string::npos);
}

}  // namespace
}  // namespace glimpse
