// Continuous batching for glimpse serve: one thread owns every generating request. Each step
// it admits waiting requests into free slots (each on its own context), then runs one
// forward_contexts call over every decoding request's next token and chunks of the prompts
// still going in (through the eviction path; at most prefill_budget tokens per step while
// others decode, n_batch when none does), so the weights are read once per step for all of
// them and a long prompt does not stall the other streams for longer than one chunk. Requests are runtime/generate.h's Generation
// driven step by step, and the forward is bit-identical to running each context alone
// whatever the batch split, so an answer does not depend on what else is running.
//
// With a document cache, a request without eviction starts from the cached context that
// shares the longest prefix with its prompt, and a query-agnostic request from its document
// compressed by an earlier one under the same settings; finished plain requests and freshly
// compressed documents go into the cache.
//
// HTTP threads submit a Job and wait on it: text pieces arrive as they complete; a job whose
// client went away is cancelled at the next step and its context freed at once. Beyond the
// slots, jobs wait in a bounded queue (submit() refuses past it: 503).
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "runtime/engine.h"
#include "runtime/generate.h"
#include "runtime/prefix_cache.h"
#include "server/api.h"

namespace glimpse {

// One request between an HTTP thread and the scheduler.
class Job {
 public:
  // The request and its prompt tokens (server/completion.h's completion_prompt, checked
  // against the context by the submitter).
  Job(CompletionRequest r, std::vector<int32_t> prompt, int64_t n_compress_tokens)
      : request(std::move(r)), tokens(std::move(prompt)), n_compress(n_compress_tokens) {}
  const CompletionRequest request;
  const std::vector<int32_t> tokens;
  const int64_t n_compress;

  // Text as it completes, with the log-probabilities of the tokens generated since the last
  // piece (when the request asked for them; a piece may carry tokens but no text yet).
  struct Piece {
    std::string text;
    std::vector<TokenLogprob> logprobs;
  };
  // HTTP side: the next piece, or nothing once finished (then outcome() holds the result).
  // Blocks until either.
  std::optional<Piece> next_piece();
  // HTTP side: the client went away; the scheduler drops the job at its next step.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }

  struct Outcome {
    std::string stop_reason;  // "eos", "stop", "length", "context", or "cancelled"
    CompletionStats stats;
    std::optional<ApiError> error;  // set when the request failed (no text then)
  };
  const Outcome& outcome() const { return outcome_; }

  // Scheduler side.
  void push(std::string text);  // carries the log-probabilities pushed before it
  void push_logprob(TokenLogprob lp);
  void finish(Outcome o);

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<Piece> pieces_;
  std::vector<TokenLogprob> pending_logprobs_;
  bool finished_ = false;
  Outcome outcome_;
  std::atomic<bool> cancelled_{false};
};

class Scheduler {
 public:
  // prefill_budget: prompt tokens per step over all prefilling requests while other requests
  // are decoding (it bounds their inter-token latency); with nothing decoding a step takes up
  // to the context's n_batch (0: n_batch always).
  // cache_bytes: the document cache's bound (runtime/prefix_cache.h; 0: no cache).
  Scheduler(std::shared_ptr<const Engine> engine, int n_slots, int max_queue,
            int64_t prefill_budget = 0, size_t cache_bytes = 0);
  ~Scheduler();  // stops the thread; unfinished jobs end as cancelled
  Scheduler(const Scheduler&) = delete;
  Scheduler& operator=(const Scheduler&) = delete;

  // Queues a job; false when the queue is full.
  bool submit(std::shared_ptr<Job> job);
  int n_active() const { return n_active_; }
  int n_waiting();
  int64_t n_steps() const { return n_steps_; }  // batched decode forwards so far
  int64_t n_rows() const { return n_rows_; }    // tokens decoded in them
  int64_t n_prefill_tokens() const { return n_prefill_tokens_; }  // prompt tokens in them
  const PrefixCache* prefix_cache() const { return cache_.get(); }  // null: no cache
  // KV held by the requests in progress after the last step, and what the full cache would
  // hold for the same positions.
  int64_t kv_entries() const { return kv_entries_; }
  int64_t kv_bytes() const { return kv_bytes_; }
  int64_t kv_full_bytes() const { return kv_full_bytes_; }

 private:
  struct Active;
  void loop();
  void admit(std::vector<std::unique_ptr<Active>>& active);
  void step(std::vector<std::unique_ptr<Active>>& active);
  bool advance(Active& a);
  std::unique_ptr<Active> start(std::shared_ptr<Job> job);

  std::shared_ptr<const Engine> engine_;
  const int n_slots_, max_queue_;
  const int64_t prefill_budget_;  // with decoding requests in the step
  const int64_t n_batch_;         // without
  const std::unique_ptr<PrefixCache> cache_;
  std::mutex m_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> waiting_;
  bool stop_ = false;
  std::atomic<int> n_active_{0};
  std::atomic<int64_t> n_steps_{0}, n_rows_{0}, n_prefill_tokens_{0};
  std::atomic<int64_t> kv_entries_{0}, kv_bytes_{0}, kv_full_bytes_{0};
  void record_kv(const std::vector<std::unique_ptr<Active>>& active);
  std::thread thread_;
};

}  // namespace glimpse
