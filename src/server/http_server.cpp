#include "server/http_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>

#include <fmt/format.h>

#include "server/completion.h"
#include "server/scheduler.h"
#include "server/web_page.h"
#include "util/error.h"

namespace glimpse {

using json = nlohmann::json;

namespace {

constexpr const char* kJson = "application/json; charset=utf-8";

void send_json(httplib::Response& res, int status, const json& j) {
  res.status = status;
  res.set_content(j.dump(-1, ' ', false, json::error_handler_t::replace), kJson);
}

// The document cache's counters for /slots (null when the cache is off).
json cache_json(const PrefixCache* pc) {
  if (!pc) return nullptr;
  const PrefixCache::Stats cs = pc->stats();
  return {{"lookups", cs.lookups}, {"hits", cs.hits},         {"tokens_reused", cs.tokens_reused},
          {"entries", cs.entries}, {"bytes", cs.bytes},       {"max_bytes", cs.max_bytes},
          {"evictions", cs.evictions}};
}

void send_error(httplib::Response& res, const ApiError& e) {
  send_json(res, e.status(), e.body());
  if (e.status() == 503) res.set_header("Retry-After", "1");
}

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Counters for /metrics and /slots.
struct Metrics {
  std::atomic<int64_t> prompt_tokens{0}, predicted_tokens{0}, requests{0}, cancelled{0};
  std::atomic<int64_t> errors_4xx{0};
  std::atomic<int64_t> prompt_us{0}, predicted_us{0};
  std::atomic<int64_t> kv_entries{0}, kv_full_entries{0}, kv_bytes{0}, kv_full_bytes{0};
  // Per KV policy: finished requests, compressions run, their scoring and eviction time,
  // and the entries the requests held against the full cache's.
  struct PerPolicy {
    int64_t requests = 0, compressions = 0, entries = 0, full_entries = 0;
    double score_ms = 0, evict_ms = 0;
  };
  std::mutex policy_mutex;
  std::map<std::string, PerPolicy> per_policy;
  void add(const CompletionStats& s) {
    prompt_tokens += s.n_prompt - s.n_cached;  // processed, as prompt_seconds_total
    predicted_tokens += s.n_gen;
    prompt_us += (int64_t)(s.prompt_ms * 1e3);
    predicted_us += (int64_t)(s.predicted_ms * 1e3);
    kv_entries = s.kv_entries;
    kv_full_entries = s.kv_full_entries;
    kv_bytes = (int64_t)s.kv_bytes;
    kv_full_bytes = (int64_t)s.kv_full_bytes;
    const std::lock_guard<std::mutex> lock(policy_mutex);
    PerPolicy& p = per_policy[s.kv_policy];
    ++p.requests;
    p.compressions += s.kv_compressed;
    p.score_ms += s.kv_compressed ? s.kv_score_ms : 0;
    p.evict_ms += s.kv_compressed ? s.kv_evict_ms : 0;
    p.entries += s.kv_entries;
    p.full_entries += s.kv_full_entries;
  }
};

}  // namespace

struct HttpServer::Impl {
  ServeParams p;
  httplib::Server http;
  std::shared_ptr<const Engine> engine;  // set once loaded (guarded by engine_mutex)
  std::unique_ptr<Scheduler> scheduler;  // made with the engine
  std::mutex engine_mutex;
  Metrics metrics;
  std::atomic<int64_t> next_id{1};

  explicit Impl(ServeParams params) : p(std::move(params)) {}

  std::shared_ptr<const Engine> loaded() {
    const std::lock_guard<std::mutex> lock(engine_mutex);
    if (!engine) throw ApiError(503, "unavailable_error", "Loading model");
    return engine;
  }
  Scheduler& sched() {
    (void)loaded();
    return *scheduler;
  }

  std::string model_id() const {
    if (!p.model_alias.empty()) return p.model_alias;
    return engine ? std::filesystem::path(engine->model_path()).filename().string() : "";
  }

  void routes();
  void completions(const httplib::Request& req, httplib::Response& res, bool chat);
  std::shared_ptr<Job> submit(const CompletionRequest& r);
  void stream(httplib::Response& res, std::shared_ptr<Job> job);
  std::string metrics_text();
};

HttpServer::HttpServer(ServeParams p) : impl_(std::make_unique<Impl>(std::move(p))) {
  impl_->routes();
}
HttpServer::~HttpServer() {
  stop();
  impl_->scheduler.reset();  // finishes what is left as cancelled
}

int HttpServer::bind() {
  Impl& s = *impl_;
  if (s.p.port == 0) {
    const int port = s.http.bind_to_any_port(s.p.host);
    if (port < 0) fail("cannot listen on {} (any port)", s.p.host);
    return port;
  }
  if (!s.http.bind_to_port(s.p.host, s.p.port))
    fail("cannot listen on {}:{} (in use, or not an address of this machine)", s.p.host, s.p.port);
  return s.p.port;
}

void HttpServer::serve() { impl_->http.listen_after_bind(); }

void HttpServer::set_engine(std::shared_ptr<const Engine> engine) {
  Impl& s = *impl_;
  auto sched = std::make_unique<Scheduler>(engine, s.p.n_parallel, s.p.max_queue, s.p.prefill_chunk,
                                           s.p.cache_ram_mib << 20);
  const std::lock_guard<std::mutex> lock(s.engine_mutex);
  s.scheduler = std::move(sched);
  s.engine = std::move(engine);
}

void HttpServer::stop() {
  if (impl_) impl_->http.stop();
}

void HttpServer::Impl::routes() {
  // A connection thread per request being served or queued (each waits on its job), plus
  // a few for the cheap endpoints.
  const size_t n_threads = (size_t)(p.n_parallel + p.max_queue + 8);
  http.new_task_queue = [n_threads] { return new httplib::ThreadPool(n_threads); };
  http.set_payload_max_length(p.max_body_bytes);
  http.set_read_timeout(p.timeout_s, 0);
  http.set_write_timeout(p.timeout_s, 0);
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (p.api_key.empty() || req.path == "/health" || req.path == "/")
      return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + p.api_key)
      return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, ApiError(401, "authentication_error", "Invalid API Key"));
    return httplib::Server::HandlerResponse::Handled;
  });
  http.set_exception_handler([this](const httplib::Request&, httplib::Response& res,
                                    std::exception_ptr ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const ApiError& e) {
      ++metrics.errors_4xx;
      send_error(res, e);
    } catch (const std::exception& e) {
      send_error(res, ApiError(500, "server_error", e.what()));
    } catch (...) {
      send_error(res, ApiError(500, "server_error", "unknown error"));
    }
  });
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a handler already wrote its error
    const int status = res.status == 200 ? 404 : res.status;
    std::string msg = status == 404 ? fmt::format("no endpoint {} {}", req.method, req.path)
                                    : fmt::format("request refused (HTTP {})", status);
    if (status == 413) msg = "the request body is too large";
    send_json(res, status, ApiError(status, "invalid_request_error", msg).body());
  });

  http.Get("/", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(web_page(kv_policy_names(), p.defaults.kv.name, model_id()),
                    "text/html; charset=utf-8");
  });
  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    (void)loaded();
    send_json(res, 200, {{"status", "ok"}});
  });
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    (void)loaded();
    json m = {{"id", model_id()}, {"object", "model"}, {"created", unix_time()},
              {"owned_by", "glimpse"}};
    send_json(res, 200, {{"object", "list"}, {"data", json::array({m})}});
  });
  http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    completions(req, res, true);
  });
  http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    completions(req, res, false);
  });
  http.Post("/tokenize", [this](const httplib::Request& req, httplib::Response& res) {
    const std::shared_ptr<const Engine> e = loaded();
    const json j = parse_json_object(req.body);
    if (!j.contains("content") || !j["content"].is_string())
      bad_request("content", "'content' must be a string");
    bool add_special = false;
    if (j.contains("add_special")) {
      if (!j["add_special"].is_boolean()) bad_request("add_special", "'add_special' must be a boolean");
      add_special = j["add_special"].get<bool>();
    }
    const std::string text = j["content"].get<std::string>();
    if ((int64_t)text.size() > p.limits.max_prompt_chars)
      bad_request("content", "the content is too long");
    const auto ids = e->tokenizer().encode(text, add_special && e->tokenizer().add_bos(), add_special);
    send_json(res, 200, {{"tokens", ids}});
  });
  http.Post("/detokenize", [this](const httplib::Request& req, httplib::Response& res) {
    const std::shared_ptr<const Engine> e = loaded();
    const json j = parse_json_object(req.body);
    if (!j.contains("tokens") || !j["tokens"].is_array())
      bad_request("tokens", "'tokens' must be an array of token ids");
    std::vector<int32_t> ids;
    for (const json& t : j["tokens"]) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0 ||
          t.get<int64_t>() >= e->tokenizer().n_vocab())
        bad_request("tokens", fmt::format("token ids must be integers in [0, {})",
                                          e->tokenizer().n_vocab()));
      ids.push_back((int32_t)t.get<int64_t>());
    }
    send_json(res, 200, {{"content", e->tokenizer().decode(ids)}});
  });
  http.Get("/slots", [this](const httplib::Request&, httplib::Response& res) {
    const std::shared_ptr<const Engine> e = loaded();
    json slots = json::array();
    const int busy = sched().n_active();
    for (int i = 0; i < p.n_parallel; ++i)
      slots.push_back({{"id", i}, {"n_ctx", e->context_defaults().n_ctx}, {"is_processing", i < busy}});
    send_json(res, 200, {{"slots", slots}, {"processing", busy}, {"deferred", sched().n_waiting()},
                         {"batched_steps", sched().n_steps()}, {"batched_rows", sched().n_rows()},
                         {"batched_prompt_tokens", sched().n_prefill_tokens()},
                         {"document_cache", cache_json(sched().prefix_cache())}});
  });
  if (p.metrics)
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      (void)loaded();
      res.set_content(metrics_text(), "text/plain; version=0.0.4");
    });
}

// Parses, checks the prompt against the context (so that a prompt over it is a 400 before
// any stream starts) and queues the request (503 when the queue is full).
std::shared_ptr<Job> HttpServer::Impl::submit(const CompletionRequest& r) {
  const std::shared_ptr<const Engine> e = loaded();
  int64_t n_compress = 0;
  std::vector<int32_t> tokens = completion_prompt(*e, r, &n_compress);
  check_completion_fits(*e, tokens.size());
  auto job = std::make_shared<Job>(r, std::move(tokens), n_compress);
  if (!sched().submit(job))
    throw ApiError(503, "unavailable_error", "the server is busy: too many queued requests");
  ++metrics.requests;
  return job;
}

void HttpServer::Impl::completions(const httplib::Request& req, httplib::Response& res,
                                   bool chat) {
  (void)loaded();
  CompletionRequest r = parse_completion_request(req.body, chat, p.limits, p.defaults);
  if (r.model.empty()) r.model = model_id();
  const std::shared_ptr<Job> job = submit(r);
  if (r.stream) {
    stream(res, job);
    return;
  }
  std::string text;
  std::vector<TokenLogprob> lps;
  while (std::optional<Job::Piece> piece = job->next_piece()) {
    text += piece->text;
    std::move(piece->logprobs.begin(), piece->logprobs.end(), std::back_inserter(lps));
  }
  const Job::Outcome& out = job->outcome();
  if (out.error) throw *out.error;
  metrics.add(out.stats);
  const std::string id = fmt::format("{}-{}", chat ? "chatcmpl" : "cmpl", next_id++);
  send_json(res, 200, completion_response(r, id, unix_time(), text, out.stop_reason, out.stats, lps));
}

// SSE: the connection's thread forwards the job's pieces as they come; a failed write
// cancels the job (the scheduler drops it and frees its context at its next step).
void HttpServer::Impl::stream(httplib::Response& res, std::shared_ptr<Job> job) {
  const CompletionRequest& r = job->request;
  const std::string id = fmt::format("{}-{}", r.chat ? "chatcmpl" : "cmpl", next_id++);
  const int64_t created = unix_time();
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, job, id, created](size_t, httplib::DataSink& sink) {
        const CompletionRequest& r = job->request;
        auto write = [&](const std::string& event) {
          return sink.is_writable() && sink.write(event.data(), event.size());
        };
        bool first = true;
        int64_t offset = 0;  // bytes of the completion's tokens so far (logprobs text_offset)
        while (std::optional<Job::Piece> piece = job->next_piece()) {
          if (!write(sse_event(stream_chunk(r, id, created, piece->text, first, piece->logprobs, offset)))) {
            job->cancel();
            ++metrics.cancelled;
            return false;
          }
          for (const TokenLogprob& lp : piece->logprobs) offset += (int64_t)lp.token.piece.size();
          first = false;
        }
        const Job::Outcome& out = job->outcome();
        if (out.error) {
          ++metrics.errors_4xx;
          write(sse_event(out.error->body()));
        } else if (out.stop_reason != "cancelled") {
          metrics.add(out.stats);
          write(sse_event(stream_final_chunk(r, id, created, out.stop_reason, out.stats)));
          if (r.include_usage) write(sse_event(stream_usage_chunk(r, id, created, out.stats)));
        }
        write("data: [DONE]\n\n");
        sink.done();
        return true;
      },
      [job](bool) { job->cancel(); });  // a no-op once the job has finished
}

std::string HttpServer::Impl::metrics_text() {
  std::string out;
  auto metric = [&](const char* name, const char* type, const char* help, double v) {
    out += fmt::format("# HELP glimpse:{} {}\n# TYPE glimpse:{} {}\nglimpse:{} {}\n", name, help,
                       name, type, name, v);
  };
  const double pms = metrics.prompt_us / 1e3, gms = metrics.predicted_us / 1e3;
  metric("prompt_tokens_total", "counter", "Prompt tokens processed.", (double)metrics.prompt_tokens);
  metric("prompt_seconds_total", "counter", "Prompt processing time.", pms / 1e3);
  metric("tokens_predicted_total", "counter", "Tokens generated.", (double)metrics.predicted_tokens);
  metric("tokens_predicted_seconds_total", "counter", "Generation time.", gms / 1e3);
  metric("prompt_tokens_seconds", "gauge", "Average prompt throughput in tokens/s.",
         pms > 0 ? metrics.prompt_tokens * 1e3 / pms : 0.0);
  metric("predicted_tokens_seconds", "gauge", "Average generation throughput in tokens/s.",
         gms > 0 ? metrics.predicted_tokens * 1e3 / gms : 0.0);
  metric("requests_total", "counter", "Completion requests admitted.", (double)metrics.requests);
  metric("requests_cancelled_total", "counter", "Streams cancelled by their client.", (double)metrics.cancelled);
  metric("requests_rejected_total", "counter", "Requests answered with a 4xx error.", (double)metrics.errors_4xx);
  metric("requests_processing", "gauge", "Requests generating now.", (double)scheduler->n_active());
  metric("requests_deferred", "gauge", "Requests waiting for a slot.", (double)scheduler->n_waiting());
  metric("batched_steps_total", "counter", "Batched forwards (decode rows and prompt chunks).", (double)scheduler->n_steps());
  metric("batched_decode_rows_total", "counter", "Tokens decoded in batched forwards.", (double)scheduler->n_rows());
  metric("batched_prompt_tokens_total", "counter", "Prompt tokens prefilled in batched forwards.", (double)scheduler->n_prefill_tokens());
  if (const PrefixCache* pc = scheduler->prefix_cache()) {
    const PrefixCache::Stats cs = pc->stats();
    metric("document_cache_lookups_total", "counter", "Document cache lookups.", (double)cs.lookups);
    metric("document_cache_hits_total", "counter", "Document cache hits.", (double)cs.hits);
    metric("document_cache_hit_ratio", "gauge", "Hits per lookup so far.",
           cs.lookups ? (double)cs.hits / (double)cs.lookups : 0.0);
    metric("document_cache_tokens_reused_total", "counter", "Prompt tokens not prefilled thanks to the cache.", (double)cs.tokens_reused);
    metric("document_cache_entries", "gauge", "Contexts held by the document cache.", (double)cs.entries);
    metric("document_cache_bytes", "gauge", "Bytes held by the document cache.", (double)cs.bytes);
    metric("document_cache_evictions_total", "counter", "Entries dropped to stay within --cache-ram.", (double)cs.evictions);
  }
  metric("kv_resident_entries", "gauge", "KV entries held now by the requests in progress.", (double)scheduler->kv_entries());
  metric("kv_resident_bytes", "gauge", "KV bytes held now by the requests in progress.", (double)scheduler->kv_bytes());
  metric("kv_full_cache_bytes", "gauge", "KV bytes the same requests would hold with the full cache.", (double)scheduler->kv_full_bytes());
  {
    const std::lock_guard<std::mutex> lock(metrics.policy_mutex);
    auto per_policy = [&](const char* name, const char* type, const char* help, auto value) {
      out += fmt::format("# HELP glimpse:{} {}\n# TYPE glimpse:{} {}\n", name, help, name, type);
      for (const auto& [policy, c] : metrics.per_policy)
        out += fmt::format("glimpse:{}{{policy=\"{}\"}} {}\n", name, policy, value(c));
    };
    using P = Metrics::PerPolicy;
    per_policy("kv_policy_requests_total", "counter", "Finished requests per KV policy.", [](const P& c) { return (double)c.requests; });
    per_policy("kv_policy_compressions_total", "counter", "Prompts scored and evicted per policy (document cache hits excluded).", [](const P& c) { return (double)c.compressions; });
    per_policy("kv_policy_score_seconds_total", "counter", "Scoring time per policy.", [](const P& c) { return c.score_ms / 1e3; });
    per_policy("kv_policy_evict_seconds_total", "counter", "Selection and compaction time per policy.", [](const P& c) { return c.evict_ms / 1e3; });
    per_policy("kv_policy_entries_total", "counter", "KV entries the finished requests held, per policy.", [](const P& c) { return (double)c.entries; });
    per_policy("kv_policy_full_entries_total", "counter", "KV entries the same requests would have held with the full cache.", [](const P& c) { return (double)c.full_entries; });
  }
  metric("kv_entries_last", "gauge", "KV entries the last request held after eviction.", (double)metrics.kv_entries);
  metric("kv_full_entries_last", "gauge", "KV entries the last request would hold with the full cache.", (double)metrics.kv_full_entries);
  metric("kv_bytes_last", "gauge", "KV bytes the last request held after eviction.", (double)metrics.kv_bytes);
  metric("kv_full_bytes_last", "gauge", "KV bytes the last request would hold with the full cache.", (double)metrics.kv_full_bytes);
  return out;
}

}  // namespace glimpse
