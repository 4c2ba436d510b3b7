#include "runtime/context.h"

#include <algorithm>

#include "kv/policy_util.h"
#include "runtime/draft_model.h"
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

namespace {

// The highest logit among the tokens that do not end generation (lowest id on ties).
int32_t argmax_non_eog(const Context& ctx) {
  const std::vector<float>& l = ctx.logits();
  int32_t best = -1;
  for (int32_t t = 0; t < (int32_t)l.size(); ++t)
    if (!ctx.tokenizer().is_eog(t) && (best < 0 || l[t] > l[best])) best = t;
  return best < 0 ? argmax_token(l) : best;
}

// Step i of the greedy rule on ctx (its logits chose the token): records the row and the
// token in g; returns the token to run through the model next, or -1 when the run ends here.
int32_t greedy_choice(const Context& ctx, const GreedyOptions& o, int i, GreedyRun& g) {
  if (o.keep_rows) g.rows.push_back(ctx.logits());
  int32_t id = argmax_token(ctx.logits());
  if (i < o.min_new && ctx.tokenizer().is_eog(id)) id = argmax_non_eog(ctx);
  if (o.stop_at_eog && ctx.tokenizer().is_eog(id)) return -1;
  const bool full = ctx.n_past() >= ctx.n_ctx();
  if (o.feed_last) {
    if (full) return -1;
    g.tokens.push_back(id);
  } else {
    g.tokens.push_back(id);
    if (i + 1 == o.max_new || full) return -1;
  }
  return id;
}

}  // namespace

GreedyRun Context::greedy(const GreedyOptions& o, ForwardObserver* observer) {
  GreedyRun g;
  Stopwatch sw;
  for (int i = 0; i < o.max_new; ++i) {
    const int32_t id = greedy_choice(*this, o, i, g);
    if (id < 0) break;
    decode(id, observer);
    ++g.steps;
  }
  g.decode_ms = sw.ms();
  return g;
}

KvRequest::DraftAnswer Context::draft_answer(const std::string& draft_path,
                                             const std::vector<int32_t>& prompt, int max_new) {
  if (prepared_draft_ && prepared_draft_->path == draft_path) {
    DraftAnswer a{std::move(prepared_draft_->answer), 0.0};
    prepared_draft_.reset();
    return a;
  }
  const DraftRun r = run_draft(shared_draft_engine(draft_path), *pool_, n_batch(), tokenizer(),
                               prompt, max_new);
  return DraftAnswer{r.answer, r.ms};
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

std::vector<GreedyRun> greedy_contexts(const std::vector<Context*>& ctxs, const GreedyOptions& o,
                                       size_t per_forward) {
  if (per_forward == 0) fail("greedy_contexts: per_forward must be at least 1");
  std::vector<Context*> sorted = ctxs;
  std::sort(sorted.begin(), sorted.end());
  if (std::adjacent_find(sorted.begin(), sorted.end()) != sorted.end())
    fail("greedy_contexts: a context appears twice");
  std::vector<GreedyRun> runs(ctxs.size());
  Stopwatch sw;
  std::vector<size_t> live(ctxs.size());  // indices of the contexts still decoding
  for (size_t k = 0; k < live.size(); ++k) live[k] = k;
  for (int i = 0; i < o.max_new && !live.empty(); ++i) {
    std::vector<ContextStep> steps;
    std::vector<size_t> next;
    for (size_t k : live) {
      const int32_t id = greedy_choice(*ctxs[k], o, i, runs[k]);
      if (id < 0) continue;
      steps.push_back({ctxs[k], {id}, nullptr});
      next.push_back(k);
    }
    // Near-equal groups (65 contexts: 33 + 32, not 64 + 1).
    const size_t n = steps.size(), n_groups = (n + per_forward - 1) / per_forward;
    for (size_t gi = 0, first = 0; gi < n_groups; ++gi) {
      const size_t last = n * (gi + 1) / n_groups;
      std::vector<ContextStep> group(std::make_move_iterator(steps.begin() + first),
                                     std::make_move_iterator(steps.begin() + last));
      forward_contexts(group);
      first = last;
    }
    for (size_t k : next) ++runs[k].steps;
    live = std::move(next);
  }
  const double ms = sw.ms();
  for (GreedyRun& g : runs) g.decode_ms = ms;
  return runs;
}

}  // namespace glimpse
