// Test helpers: run the request path (Context, prefill_with_eviction) on caches a test
// holds by hand. Header-only, for *_test.cpp files.
#pragma once

#include <memory>
#include <utility>
#include <vector>

#include <filesystem>
#include <string>

#include "model/tiny_model_test_util.h"
#include "runtime/compress.h"
#include "runtime/context.h"

namespace glimpse::testing {

// A tiny random model written to a temporary file `name` (its path into *path) and loaded
// as an Engine: what the model-level test fixtures hold.
inline std::shared_ptr<Engine> load_tiny_engine(const std::string& name, const TinyModelSpec& spec,
                                                std::string* path) {
  *path = temp_path(name);
  write_tiny_llama(*path, spec);
  EngineParams p;
  p.model_path = *path;
  return Engine::load(p);
}

inline ContextParams params_of(const KvCache& cache, int n_batch) {
  return ContextParams{(int)cache.n_ctx(), n_batch, cache.type_k(), cache.type_v()};
}

// prefill_with_eviction on a context shaped like `cache`; the result (capacity included) is
// moved into `cache` and the last logits into `logits`.
inline KvCompressReport prefill_evict(const std::shared_ptr<const Engine>& e, ThreadPool& pool,
                                      int n_batch, KvCache& cache, const std::vector<int32_t>& tokens,
                                      int64_t n_compress, const KvPolicySettings& s,
                                      std::vector<float>& logits) {
  Context ctx(e, params_of(cache, n_batch), &pool);
  const KvCompressReport rep = prefill_with_eviction(ctx, tokens, n_compress, s);
  cache = std::move(ctx.cache());
  logits = ctx.logits();
  return rep;
}

// A context holding a copy of `cache` and `logits` (a policy's request in scoring tests).
inline std::unique_ptr<Context> context_with(const std::shared_ptr<const Engine>& e, ThreadPool& pool,
                                             const KvCache& cache, const std::vector<float>& logits) {
  auto ctx = std::make_unique<Context>(e, params_of(cache, 16), &pool);
  ctx->cache() = cache;
  ctx->set_logits(logits);
  return ctx;
}

}  // namespace glimpse::testing
