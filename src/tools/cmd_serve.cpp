// glimpse serve: llama-server-like flags around server/http_server.h. The socket is bound
// first (GET /health answers 503 while the model loads), then the model is loaded and
// served until SIGINT / SIGTERM.
#include <csignal>
#include <cstdio>
#include <thread>

#include "ops/isa.h"
#include "server/http_server.h"
#include "tools/commands.h"
#include "util/error.h"

namespace glimpse {

namespace {
HttpServer* g_server = nullptr;
extern "C" void on_signal(int) {
  if (g_server) g_server->stop();
}
}  // namespace

int cmd_serve(int argc, char** argv, int first) {
  EngineParams ep;
  ServeParams sp;
  ArgParser ap("serve", "Serve the model over an OpenAI-compatible HTTP API.");
  add_model_args(ap, ep);
  ap.add({"--host"}, "HOST", "IP address to listen on (default: 127.0.0.1)",
         [&](const std::string& v) { sp.host = v; });
  ap.add({"--port"}, "PORT", "port to listen on (default: 8080)",
         [&](const std::string& v) { sp.port = parse_int("--port", v, 1, 65535); });
  ap.add({"-np", "--parallel"}, "N", "requests decoding together, one batched forward per step (default: 1)",
         [&](const std::string& v) { sp.n_parallel = parse_int("-np", v, 1, 256); });
  ap.add({"--max-queue"}, "N", "requests waiting for a slot before 503 (default: 64)",
         [&](const std::string& v) { sp.max_queue = parse_int("--max-queue", v, 0, 1 << 20); });
  ap.add({"--prefill-chunk"}, "N",
         "prompt tokens per step while other requests decode, bounding their inter-token "
         "latency (default: 128; 0 = -b); -b tokens when none decodes",
         [&](const std::string& v) { sp.prefill_chunk = parse_int("--prefill-chunk", v, 0, 1 << 20); });
  ap.add({"-cram", "--cache-ram"}, "MiB",
         "document cache: prompt KV kept for later requests sharing a prefix, LRU within MiB "
         "(default: 8192, 0 = off)",
         [&](const std::string& v) { sp.cache_ram_mib = (size_t)parse_int("--cache-ram", v, 0, 1 << 24); });
  ap.add({"--api-key"}, "KEY", "require 'Authorization: Bearer KEY' (all endpoints but /health)",
         [&](const std::string& v) { sp.api_key = v; });
  ap.flag({"--metrics"}, "enable the Prometheus /metrics endpoint", [&] { sp.metrics = true; });
  ap.add({"-to", "--timeout"}, "N", "socket read/write timeout in seconds (default: 600)",
         [&](const std::string& v) { sp.timeout_s = parse_int("--timeout", v, 1, 1 << 20); });
  ap.add({"-a", "--alias"}, "NAME", "model id reported by /v1/models (default: the file name)",
         [&](const std::string& v) { sp.model_alias = v; });
  ap.add({"-n", "--n-predict"}, "N", "default max_tokens (default: -1, -1 = until the end)",
         [&](const std::string& v) { sp.defaults.n_predict = parse_int("-n", v, -1, 1 << 30); });
  ap.add({"--max-body"}, "BYTES", "largest request body (default: 16777216)",
         [&](const std::string& v) { sp.max_body_bytes = (size_t)parse_int("--max-body", v, 1024, 1ll << 31); });
  add_sampling_args(ap, sp.defaults.sampling);
  add_kv_args(ap, sp.defaults.kv);
  if (!ap.parse(argc, argv, first)) return 0;
  validate_policy_settings(sp.defaults.kv);
  if (sp.defaults.kv.name == "speckv" || sp.defaults.kv.prompt_compress != "none")
    fail("serve does not run draft models for compression (speckv, --prompt-compress): use "
         "glimpse run, bench or eval");
  if (sp.defaults.kv.query_agnostic)
    fail("--query-agnostic is a per-request choice in serve (\"query_aware\": false)");

  HttpServer server(sp);
  const int port = server.bind();
  g_server = &server;
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::thread http([&] { server.serve(); });
  std::fprintf(stderr, "glimpse serve: listening on http://%s:%d (loading the model)\n",
               sp.host.c_str(), port);
  try {
    const std::shared_ptr<Engine> engine = Engine::load(ep);
    std::fprintf(stderr, "glimpse serve: %s, isa = %s, n_ctx = %d, n_threads = %d, slots = %d\n",
                 engine->model().config().summary().c_str(), isa_level_name(isa_level()),
                 engine->context_defaults().n_ctx, engine->n_threads(), sp.n_parallel);
    server.set_engine(engine);
  } catch (...) {
    server.stop();
    http.join();
    g_server = nullptr;
    throw;
  }
  http.join();
  g_server = nullptr;
  std::fprintf(stderr, "glimpse serve: stopped\n");
  return 0;
}

}  // namespace glimpse
