#include "server/scheduler.h"

#include "runtime/context.h"
#include "runtime/generate.h"
#include "server/completion.h"
#include "util/error.h"
#include "util/timer.h"

namespace glimpse {

std::optional<Job::Piece> Job::next_piece() {
  std::unique_lock<std::mutex> lock(m_);
  cv_.wait(lock, [&] { return !pieces_.empty() || finished_; });
  if (pieces_.empty()) return std::nullopt;
  Piece p = std::move(pieces_.front());
  pieces_.pop_front();
  return p;
}

void Job::push(std::string text) {
  {
    const std::lock_guard<std::mutex> lock(m_);
    pieces_.push_back({std::move(text), std::move(pending_logprobs_)});
    pending_logprobs_.clear();
  }
  cv_.notify_all();
}

void Job::push_logprob(TokenLogprob lp) {
  const std::lock_guard<std::mutex> lock(m_);
  pending_logprobs_.push_back(std::move(lp));
}

void Job::finish(Outcome o) {
  {
    const std::lock_guard<std::mutex> lock(m_);
    if (!pending_logprobs_.empty()) {  // tokens whose text was held back (a stop string)
      pieces_.push_back({"", std::move(pending_logprobs_)});
      pending_logprobs_.clear();
    }
    outcome_ = std::move(o);
    finished_ = true;
  }
  cv_.notify_all();
}

// An admitted request: its context, its generation, and either the chunk of its prompt in
// the current step (while prefilling) or the token to decode next.
struct Scheduler::Active {
  std::shared_ptr<Job> job;
  std::unique_ptr<Context> ctx;
  std::unique_ptr<Generation> gen;
  int32_t next = -1;
  std::optional<ContextStep> chunk;
  std::string doc_key;  // set: keep the compressed document in the cache once evicted
  bool plain = false;   // no eviction: the finished context goes into the cache
};

namespace {

Job::Outcome cancelled_outcome() {
  Job::Outcome o;
  o.stop_reason = "cancelled";
  return o;
}

}  // namespace

Scheduler::Scheduler(std::shared_ptr<const Engine> engine, int n_slots, int max_queue,
                     int64_t prefill_budget, size_t cache_bytes)
    : engine_(std::move(engine)),
      n_slots_(n_slots),
      max_queue_(max_queue),
      prefill_budget_(prefill_budget > 0 ? prefill_budget : engine_->context_defaults().n_batch),
      n_batch_(std::max<int64_t>(prefill_budget_, engine_->context_defaults().n_batch)),
      cache_(cache_bytes > 0 ? std::make_unique<PrefixCache>(cache_bytes) : nullptr) {
  thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() {
  {
    const std::lock_guard<std::mutex> lock(m_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool Scheduler::submit(std::shared_ptr<Job> job) {
  {
    const std::lock_guard<std::mutex> lock(m_);
    if (stop_ || (int)waiting_.size() >= max_queue_ + std::max(0, n_slots_ - n_active_))
      return false;
    waiting_.push_back(std::move(job));
  }
  cv_.notify_all();
  return true;
}

int Scheduler::n_waiting() {
  const std::lock_guard<std::mutex> lock(m_);
  return (int)waiting_.size();
}

void Scheduler::loop() {
  std::vector<std::unique_ptr<Active>> active;
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(m_);
      cv_.wait(lock, [&] { return stop_ || !waiting_.empty() || !active.empty(); });
      if (stop_) break;
    }
    admit(active);
    if (!active.empty()) step(active);
    record_kv(active);
  }
  for (auto& a : active) a->job->finish(cancelled_outcome());
  const std::lock_guard<std::mutex> lock(m_);
  for (auto& j : waiting_) j->finish(cancelled_outcome());
  waiting_.clear();
  n_active_ = 0;
}

namespace {

Job::Outcome error_outcome(const Error& e) {
  Job::Outcome o;
  o.error = ApiError(400, "invalid_request_error", e.what());
  return o;
}

}  // namespace

void Scheduler::record_kv(const std::vector<std::unique_ptr<Active>>& active) {
  int64_t entries = 0, bytes = 0, full = 0;
  for (const auto& a : active) {
    const KvCache& c = a->ctx->cache();
    entries += c.total_entries();
    bytes += (int64_t)c.resident_bytes();
    full += (int64_t)c.n_past() * c.n_layer() * c.n_kv_head() *
            (int64_t)(c.k_row_bytes() + c.v_row_bytes());
  }
  kv_entries_ = entries;
  kv_bytes_ = bytes;
  kv_full_bytes_ = full;
}

// Moves waiting jobs into free slots: each gets a context and a generation whose prompt
// (tokenized and checked by the submitter) goes in over the next steps.
void Scheduler::admit(std::vector<std::unique_ptr<Active>>& active) {
  while ((int)active.size() < n_slots_) {
    std::shared_ptr<Job> job;
    {
      const std::lock_guard<std::mutex> lock(m_);
      if (waiting_.empty()) return;
      job = std::move(waiting_.front());
      waiting_.pop_front();
    }
    if (job->cancelled()) {
      job->finish(cancelled_outcome());
      continue;
    }
    try {
      active.push_back(start(job));
    } catch (const Error& e) {  // e.g. a policy this model cannot use
      job->finish(error_outcome(e));
      continue;
    }
    n_active_ = (int)active.size();
  }
}

// A job's context (a fork of a cached one on a document-cache hit) and its generation; no
// forward runs here.
std::unique_ptr<Scheduler::Active> Scheduler::start(std::shared_ptr<Job> job) {
  auto a = std::make_unique<Active>();
  a->job = job;
  const GenerateParams gp = completion_params(job->request, job->n_compress);
  const std::vector<int32_t>& tokens = job->tokens;
  CachedPrefix cached;
  if (cache_ && !kv_policy_info(gp.kv.name).make) {
    a->plain = true;
    if (auto hit = cache_->find_prefix(tokens)) {
      a->ctx = std::move(hit->ctx);
      cached.n_tokens = hit->n_tokens;
    }
  } else if (cache_ && gp.kv.query_agnostic && gp.n_compress > 0 &&
             gp.n_compress < (int64_t)tokens.size()) {
    const std::vector<int32_t> doc(tokens.begin(), tokens.begin() + gp.n_compress);
    const std::string key = policy_key(gp.kv);
    if (auto hit = cache_->find_compressed(doc, key)) {
      a->ctx = std::move(hit->ctx);
      cached.n_tokens = hit->n_tokens;
      cached.compressed = std::move(hit->compressed);
    } else {
      a->doc_key = key;
    }
  }
  if (!a->ctx) a->ctx = std::make_unique<Context>(engine_, engine_->context_defaults());
  a->gen = std::make_unique<Generation>(
      *a->ctx, tokens, gp, [j = job.get()](std::string_view t) { j->push(std::string(t)); },
      cached);
  if (gp.n_probs >= 0)
    a->gen->set_on_logprob([j = job.get()](const TokenLogprob& lp) { j->push_logprob(lp); });
  return a;
}

// Samples a's next token (its prompt is in); false once its generation is over (the job is
// finished then).
bool Scheduler::advance(Active& a) {
  a.next = a.gen->step();
  if (a.next >= 0) return true;
  const GenerateResult g = a.gen->finish();
  Job::Outcome out{g.stop_reason, completion_stats(a.job->request, g, *a.ctx), std::nullopt};
  if (a.plain && !g.timings.kv.evicted) {
    // The tokens whose KV the context holds: the prompt and the decoded part of the answer.
    // Kept before the job finishes, so a client's next request finds it.
    std::vector<int32_t> held = a.job->tokens;
    held.insert(held.end(), g.tokens.begin(), g.tokens.end());
    held.resize(std::min<size_t>(held.size(), (size_t)a.ctx->n_past()));
    cache_->put_full(std::move(held), std::move(a.ctx));
  }
  a.job->finish(std::move(out));
  return false;
}

// One batched forward: every decoding request's next token, and prompt chunks of the
// prefilling ones, oldest first, up to prefill_budget_ tokens in all. Then each decoding
// request samples its next token, and a request whose prompt is complete samples its first.
void Scheduler::step(std::vector<std::unique_ptr<Active>>& active) {
  std::erase_if(active, [](const std::unique_ptr<Active>& a) {
    if (!a->job->cancelled()) return false;
    a->job->finish(cancelled_outcome());
    return true;  // the context is freed here
  });
  n_active_ = (int)active.size();
  if (active.empty()) return;
  std::vector<ContextStep> steps;
  steps.reserve(active.size());
  int64_t n_decode = 0;
  for (const auto& a : active) n_decode += !a->gen->prefilling();
  const int64_t step_budget = n_decode > 0 ? prefill_budget_ : n_batch_;
  int64_t budget = step_budget;
  for (auto& a : active) {
    if (!a->gen->prefilling()) {
      steps.push_back(ContextStep{a->ctx.get(), {a->next}, nullptr});
    } else if (budget > 0) {
      a->chunk = a->gen->prefill_chunk(budget);
      budget -= (int64_t)a->chunk->tokens.size();
      steps.push_back(*a->chunk);
    }
  }
  Stopwatch sw;
  forward_contexts(steps);
  const double ms = sw.ms();
  ++n_steps_;
  n_rows_ += n_decode;
  n_prefill_tokens_ += step_budget - budget;
  // Each request is charged the step's wall time: a per-request share is not measured.
  std::erase_if(active, [&](const std::unique_ptr<Active>& a) {
    try {
      if (a->chunk) {
        a->gen->prefill_ran(*a->chunk, ms);  // scores and evicts when the prompt is in
        a->chunk.reset();
        if (!a->doc_key.empty() && a->gen->at_compressed_boundary()) {
          const std::vector<int32_t>& t = a->job->tokens;
          cache_->put_compressed(std::vector<int32_t>(t.begin(), t.begin() + a->gen->prefill_report().n_compressed),
                                 std::move(a->doc_key), a->ctx->fork(), a->gen->prefill_report());
          a->doc_key.clear();
        }
        return a->gen->prefilling() ? false : !advance(*a);
      }
      if (a->gen->prefilling()) return false;  // no budget left for it this step
      a->gen->add_decode_ms(ms);
      return !advance(*a);
    } catch (const Error& e) {
      a->job->finish(error_outcome(e));
      return true;
    }
  });
  n_active_ = (int)active.size();
}

}  // namespace glimpse
