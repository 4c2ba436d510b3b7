#include "runtime/context.h"

#include "kv/policy_util.h"
#include "util/error.h"
#include "util/timer.h"

namespace glimpse {

Context::Context(std::shared_ptr<const Engine> engine, const ContextParams& params, ThreadPool* pool)
    : engine_(std::move(engine)),
      params_(engine_->resolve(params)),
      pool_(pool ? pool : &engine_->pool()),
      cache_(KvCache::for_model(engine_->model().config(), params_.n_ctx, params_.type_k,
                                params_.type_v)) {}

void Context::prefill(const std::vector<int32_t>& tokens, ForwardObserver* observer) {
  prefill(tokens, RowsCallback(), observer);
}

void Context::prefill(const std::vector<int32_t>& tokens, const RowsCallback& on_rows,
                      ForwardObserver* observer) {
  if (tokens.empty()) fail("empty prompt");
  if (n_past() + (int64_t)tokens.size() > n_ctx())
    fail("prompt of {} tokens does not fit the context size {} ({} already used); raise -c",
         tokens.size(), n_ctx(), n_past());
  const int64_t n = (int64_t)tokens.size();
  for (int64_t b = 0; b < n; b += n_batch()) {
    const int64_t T = std::min<int64_t>(n_batch(), n - b);
    model().forward(tokens.data() + b, T, cache_, on_rows ? LogitsRows::All : LogitsRows::Last,
                    logits_, *pool_, observer);
    if (on_rows) on_rows(b, logits_.data(), T);
  }
  const size_t V = (size_t)model().config().n_vocab;
  if (logits_.size() > V) logits_.erase(logits_.begin(), logits_.end() - V);  // keep the last row
}

void Context::decode(int32_t token, ForwardObserver* observer) {
  if (n_past() + 1 > n_ctx()) fail("context size {} exhausted", n_ctx());
  model().forward(&token, 1, cache_, LogitsRows::Last, logits_, *pool_, observer);
}

GreedyRun Context::greedy(const GreedyOptions& o, ForwardObserver* observer) {
  GreedyRun g;
  Stopwatch sw;
  const Tokenizer& tok = tokenizer();
  for (int i = 0; i < o.max_new; ++i) {
    if (o.keep_rows) g.rows.push_back(logits_);
    const int32_t id = argmax_token(logits_);
    if (o.stop_at_eog && tok.is_eog(id)) break;
    const bool full = n_past() >= n_ctx();
    if (o.feed_last) {
      if (full) break;
      g.tokens.push_back(id);
    } else {
      g.tokens.push_back(id);
      if (i + 1 == o.max_new || full) break;
    }
    decode(id, observer);
    ++g.steps;
  }
  g.decode_ms = sw.ms();
  return g;
}

std::unique_ptr<Context> Context::fork() const { return std::unique_ptr<Context>(new Context(*this)); }

void Context::truncate(int32_t pos) { cache_.truncate_from(pos); }

void Context::reset() {
  cache_.clear();
  logits_.clear();
  sampling_.reset();
}

void Context::set_cache_types(KvType type_k, KvType type_v) {
  params_.type_k = type_k;
  params_.type_v = type_v;
  cache_ = KvCache(1, 1, 1, 1);  // the old buffers go before the new cache exists
  cache_ = KvCache::for_model(model().config(), params_.n_ctx, type_k, type_v);
  logits_.clear();
}

void Context::begin_sampling(const SamplerParams& p, std::vector<std::string> stop,
                             const std::vector<int32_t>& prompt) {
  sampling_.emplace(p, std::move(stop), tokenizer());
  for (int32_t t : prompt) sampling_->sampler.accept(t);
}

SamplingState& Context::sampling() {
  if (!sampling_) fail("sampling was not started on this context");
  return *sampling_;
}

int32_t Context::sample_next() {
  SamplingState& st = sampling();
  const int32_t id = st.sampler.sample(logits_.data());
  st.sampler.accept(id);
  return id;
}

std::string Context::text_of(int32_t id) {
  SamplingState& st = sampling();
  return st.stops.feed(st.stream.push(id));
}

std::string Context::finish_text() {
  SamplingState& st = sampling();
  if (st.stops.stopped()) return "";
  std::string rest = st.stops.feed(st.stream.flush());
  if (!st.stops.stopped()) rest += st.stops.flush();
  return rest;
}

size_t Context::resident_bytes() const {
  return cache_.resident_bytes() + logits_.capacity() * sizeof(float);
}

void forward_contexts(std::vector<ContextStep>& steps) {
  if (steps.empty()) return;
  const Engine& engine = steps.front().ctx->engine();
  std::vector<SequenceBatch> batch;
  batch.reserve(steps.size());
  for (ContextStep& s : steps) {
    if (&s.ctx->engine() != &engine) fail("forward_contexts: contexts of different models");
    if (s.tokens.empty()) fail("forward_contexts: a context with no tokens");
    if (s.ctx->n_past() + (int64_t)s.tokens.size() > s.ctx->n_ctx())
      fail("context size {} exhausted", s.ctx->n_ctx());
    batch.push_back({s.tokens.data(), (int64_t)s.tokens.size(), &s.ctx->cache(), LogitsRows::Last,
                     &s.ctx->logits_, s.observer});
  }
  engine.model().forward(batch, steps.front().ctx->pool());
}

}  // namespace glimpse
