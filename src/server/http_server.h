// glimpse serve: an OpenAI-compatible HTTP server over one Engine (cpp-httplib).
//
// Endpoints: GET /health (503 until the model is loaded), GET /v1/models,
// POST /v1/chat/completions and /v1/completions (whole or SSE-streamed), POST /tokenize,
// POST /detokenize, GET /metrics (Prometheus text, with --metrics), GET /slots, and a page at
// "/". Generation runs in the Scheduler (server/scheduler.h): up to -np requests decode
// together, one batched forward per step, each through runtime/generate.h's Generation with
// its own sampling and KV policy. Requests beyond the slots wait in a bounded queue; past it
// they get 503 with Retry-After. A streaming client that disconnects is cancelled at the
// next step and its context freed. Errors are OpenAI error objects with a 4xx status (5xx
// only for a fault of the server itself).
#pragma once

#include <memory>
#include <string>

#include "runtime/engine.h"
#include "server/api.h"

namespace glimpse {

struct ServeParams {
  std::string host = "127.0.0.1";
  int port = 8080;                // 0: any free port (tests)
  int n_parallel = 1;             // -np: requests decoding together (batched)
  int max_queue = 64;             // requests waiting for a slot before 503
  size_t cache_ram_mib = 8192;    // document cache bound (--cache-ram; 0: no cache)
  int64_t prefill_chunk = 128;    // prompt tokens per step while others decode (0: -b); -b when none does
  std::string api_key;            // non-empty: Authorization: Bearer KEY on every endpoint but /health
  bool metrics = false;           // expose /metrics
  int timeout_s = 600;            // socket read / write timeout
  size_t max_body_bytes = 16u << 20;
  std::string model_alias;        // the id /v1/models reports (default: the file name)
  ApiLimits limits;
  ApiDefaults defaults;
};

class HttpServer {
 public:
  explicit HttpServer(ServeParams p);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket; returns the port (the chosen one for port 0). Throws Error.
  int bind();
  // Serves until stop() (call after bind(); blocks).
  void serve();
  // The model to serve: /health turns 200 and generation endpoints open.
  void set_engine(std::shared_ptr<const Engine> engine);
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace glimpse
