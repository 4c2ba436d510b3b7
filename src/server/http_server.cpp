#include "server/http_server.h"

#include <httplib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <mutex>

#include <fmt/format.h>

#include "server/completion.h"
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

void send_error(httplib::Response& res, const ApiError& e) {
  send_json(res, e.status(), e.body());
  if (e.status() == 503) res.set_header("Retry-After", "1");
}

int64_t unix_time() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Slots for generating requests and the bounded queue in front of them.
class SlotGate {
 public:
  SlotGate(int n_slots, int max_queue) : free_(n_slots), max_queue_(max_queue) {
    for (int i = n_slots - 1; i >= 0; --i) ids_.push_back(i);
  }
  // A slot id, or -1 when the queue is full (the caller answers 503).
  int acquire() {
    std::unique_lock<std::mutex> lock(m_);
    if (free_ == 0 && waiting_ >= max_queue_) return -1;
    ++waiting_;
    cv_.wait(lock, [&] { return free_ > 0; });
    --waiting_;
    --free_;
    const int id = ids_.back();
    ids_.pop_back();
    return id;
  }
  void release(int id) {
    {
      const std::lock_guard<std::mutex> lock(m_);
      ++free_;
      ids_.push_back(id);
    }
    cv_.notify_one();
  }
  int waiting() {
    const std::lock_guard<std::mutex> lock(m_);
    return waiting_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int free_, waiting_ = 0, max_queue_;
  std::vector<int> ids_;
};

// Counters for /metrics and /slots.
struct Metrics {
  std::atomic<int64_t> prompt_tokens{0}, predicted_tokens{0}, requests{0}, cancelled{0};
  std::atomic<int64_t> errors_4xx{0}, processing{0};
  std::atomic<int64_t> prompt_us{0}, predicted_us{0};
  std::atomic<int64_t> kv_entries{0}, kv_full_entries{0}, kv_bytes{0}, kv_full_bytes{0};
  void add(const CompletionStats& s) {
    prompt_tokens += s.n_prompt;
    predicted_tokens += s.n_gen;
    prompt_us += (int64_t)(s.prompt_ms * 1e3);
    predicted_us += (int64_t)(s.predicted_ms * 1e3);
    kv_entries = s.kv_entries;
    kv_full_entries = s.kv_full_entries;
    kv_bytes = (int64_t)s.kv_bytes;
    kv_full_bytes = (int64_t)s.kv_full_bytes;
  }
};

}  // namespace

struct HttpServer::Impl {
  ServeParams p;
  httplib::Server http;
  std::shared_ptr<const Engine> engine;  // set once loaded (guarded by engine_mutex)
  std::mutex engine_mutex;
  std::unique_ptr<SlotGate> gate;
  std::vector<std::unique_ptr<ThreadPool>> pools;  // slot 0 uses the engine's pool
  Metrics metrics;
  std::atomic<int64_t> next_id{1};

  explicit Impl(ServeParams params) : p(std::move(params)) {
    gate = std::make_unique<SlotGate>(p.n_parallel, p.max_queue);
  }

  std::shared_ptr<const Engine> loaded() {
    const std::lock_guard<std::mutex> lock(engine_mutex);
    if (!engine) throw ApiError(503, "unavailable_error", "Loading model");
    return engine;
  }

  std::string model_id() const {
    if (!p.model_alias.empty()) return p.model_alias;
    return engine ? std::filesystem::path(engine->model_path()).filename().string() : "";
  }

  ThreadPool* pool_for(int slot) {
    if (slot == 0) return nullptr;  // the engine's
    return pools[slot - 1].get();
  }

  void routes();
  void completions(const httplib::Request& req, httplib::Response& res, bool chat);
  void stream(httplib::Response& res, std::shared_ptr<const Engine> e, CompletionRequest r,
              int slot);
  std::string metrics_text();
};

HttpServer::HttpServer(ServeParams p) : impl_(std::make_unique<Impl>(std::move(p))) {
  impl_->routes();
}
HttpServer::~HttpServer() { stop(); }

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
  for (int i = 1; i < s.p.n_parallel; ++i)
    s.pools.push_back(std::make_unique<ThreadPool>(engine->n_threads()));
  const std::lock_guard<std::mutex> lock(s.engine_mutex);
  s.engine = std::move(engine);
}

void HttpServer::stop() {
  if (impl_) impl_->http.stop();
}

void HttpServer::Impl::routes() {
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
    const int64_t busy = metrics.processing;
    for (int i = 0; i < p.n_parallel; ++i)
      slots.push_back({{"id", i}, {"n_ctx", e->context_defaults().n_ctx}});
    send_json(res, 200, {{"slots", slots}, {"processing", busy}, {"deferred", gate->waiting()}});
  });
  if (p.metrics)
    http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
      (void)loaded();
      res.set_content(metrics_text(), "text/plain; version=0.0.4");
    });
}

void HttpServer::Impl::completions(const httplib::Request& req, httplib::Response& res,
                                   bool chat) {
  const std::shared_ptr<const Engine> e = loaded();
  CompletionRequest r = parse_completion_request(req.body, chat, p.limits, p.defaults);
  if (r.model.empty()) r.model = model_id();
  const int slot = gate->acquire();
  if (slot < 0) throw ApiError(503, "unavailable_error", "the server is busy: too many queued requests");
  ++metrics.requests;
  if (r.stream) {
    stream(res, e, std::move(r), slot);  // releases the slot when the stream ends
    return;
  }
  struct Release {
    Impl* s;
    int slot;
    ~Release() {
      --s->metrics.processing;
      s->gate->release(slot);
    }
  } release{this, slot};
  ++metrics.processing;
  const CompletionOutput out =
      run_completion(e, r, pool_for(slot), [](std::string_view) { return true; });
  metrics.add(out.stats);
  const std::string id = fmt::format("{}-{}", chat ? "chatcmpl" : "cmpl", next_id++);
  send_json(res, 200, completion_response(r, id, unix_time(), out.text, out.stop_reason, out.stats));
}

// SSE: the generation runs inside the content provider, on the connection's thread, writing
// each piece of text as it completes; a failed write cancels it.
void HttpServer::Impl::stream(httplib::Response& res, std::shared_ptr<const Engine> e,
                              CompletionRequest r, int slot) {
  const std::string id = fmt::format("{}-{}", r.chat ? "chatcmpl" : "cmpl", next_id++);
  const int64_t created = unix_time();
  auto done = std::make_shared<bool>(false);
  ++metrics.processing;
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, e, r, slot, id, created, done](size_t, httplib::DataSink& sink) {
        if (*done) return false;
        *done = true;
        bool first = true;
        auto write = [&](const std::string& event) {
          return sink.is_writable() && sink.write(event.data(), event.size());
        };
        try {
          const CompletionOutput out = run_completion(e, r, pool_for(slot), [&](std::string_view t) {
            const bool ok = write(sse_event(stream_chunk(r, id, created, std::string(t), first)));
            first = false;
            return ok;
          });
          if (out.stop_reason == "cancelled") {
            ++metrics.cancelled;
            return false;
          }
          metrics.add(out.stats);
          write(sse_event(stream_final_chunk(r, id, created, out.stop_reason, out.stats)));
          if (r.include_usage) write(sse_event(stream_usage_chunk(r, id, created, out.stats)));
        } catch (const ApiError& err) {
          ++metrics.errors_4xx;
          write(sse_event(err.body()));
        } catch (const std::exception& err) {
          write(sse_event(ApiError(500, "server_error", err.what()).body()));
        }
        write("data: [DONE]\n\n");
        sink.done();
        return true;
      },
      [this, slot](bool) {
        --metrics.processing;
        gate->release(slot);
      });
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
  metric("requests_processing", "gauge", "Requests generating now.", (double)metrics.processing);
  metric("requests_deferred", "gauge", "Requests waiting for a slot.", (double)gate->waiting());
  metric("kv_entries_last", "gauge", "KV entries the last request held after eviction.", (double)metrics.kv_entries);
  metric("kv_full_entries_last", "gauge", "KV entries the last request would hold with the full cache.", (double)metrics.kv_full_entries);
  metric("kv_bytes_last", "gauge", "KV bytes the last request held after eviction.", (double)metrics.kv_bytes);
  metric("kv_full_bytes_last", "gauge", "KV bytes the last request would hold with the full cache.", (double)metrics.kv_full_bytes);
  return out;
}

}  // namespace glimpse
