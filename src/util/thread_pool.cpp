#include "util/thread_pool.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>

namespace glimpse {

namespace {
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

using namespace std::chrono_literals;
// Idle spin before sleeping: longer than the gaps between a decode step's jobs and between
// its tokens (sampling, the next step's setup), shorter than a scheduler slice. A 50 us spin
// let workers fall asleep between tokens and cost a 2-thread decode 15-30% on a loaded
// machine (waking a sleeping worker costs more than the gap). Oversubscribed, spinning only
// steals the core from the thread that has work, so workers sleep almost at once.
constexpr std::chrono::nanoseconds kSpin = 1ms;
constexpr std::chrono::nanoseconds kSpinOversubscribed = 2us;
// Contention: over a window of kWindowJobs jobs, the workers' share of the chunks against
// their fair share (p / (p + 1) of all chunks with p workers). Running, they take 80-100% of
// it (2 threads: the caller runs 50-60% of the chunks); a worker that keeps losing its core
// to another program takes 25-40%, the caller doing the rest. Below kMinWorkerShare the pool
// drops a worker. Judging by the caller's stall time instead narrowed a 2-thread decode on a
// loaded machine whose workers still ran their share, and cost it 15-30% of its speed.
constexpr double kMinWorkerShare = 0.5;
constexpr int kWindowJobs = 512;  // ~2 decode steps of the default model: one preempted slice does not decide
constexpr std::chrono::nanoseconds kProbeInterval = 200ms;
// parallel_for chunks per active thread: enough that the caller can take a late worker's
// share in pieces, few enough that each chunk still streams a long run of rows.
constexpr int64_t kChunksPerThread = 2;

// Spins while pred() holds for up to `budget`, then returns false (the caller sleeps).
template <class Pred>
bool spin_while(Pred pred, std::chrono::nanoseconds budget) {
  const auto start = std::chrono::steady_clock::now();
  for (int i = 1;; ++i) {
    if (!pred()) return true;
    cpu_relax();
    if ((i & 63) == 0 && std::chrono::steady_clock::now() - start > budget) return false;
  }
}
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
  participants_.store(n_threads_ - 1);
  spin_ns_.store(kSpin.count());
  last_probe_ = Clock::now();
  fixed_width_ = std::getenv("GLIMPSE_POOL_FIXED") != nullptr;
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  if (std::getenv("GLIMPSE_POOL_STATS") && stats_.jobs > 0)  // contention diagnostics
    std::fprintf(stderr, "glimpse: thread pool %d: %lld jobs, caller ran %.0f%% of chunks, narrowed %lld times\n",
                 n_threads_, (long long)stats_.jobs,
                 100.0 * (double)stats_.chunks_by_caller / (double)std::max<int64_t>(1, stats_.chunks_total),
                 (long long)stats_.narrowed);
  stop_.store(true);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  generation_.notify_all();
  for (auto& t : workers_) t.join();
}

// A worker enters a job only through inside_ and open_: the caller rewrites the job fields
// only after closing the job and seeing inside_ == 0, and a worker reads them only after
// counting itself inside and then seeing the job open (both seq_cst, so either the caller
// sees the worker inside or the worker sees the job closed).
void ThreadPool::worker_loop(int index) {
  // Generation 0 is the state at construction; reading it here instead could miss a job
  // published before this thread started.
  uint32_t seen = 0;
  for (;;) {
    uint32_t g = seen;
    const auto idle = [&] { return (g = generation_.load(std::memory_order_acquire)) == seen; };
    while (!spin_while(idle, std::chrono::nanoseconds(spin_ns_.load(std::memory_order_relaxed))))
      generation_.wait(seen, std::memory_order_acquire);
    seen = g;
    if (stop_.load()) return;
    if (index > participants_.load(std::memory_order_acquire)) continue;
    inside_.fetch_add(1, std::memory_order_seq_cst);
    if (open_.load(std::memory_order_seq_cst) && generation_.load() == seen) run_chunks(index);
    inside_.fetch_sub(1, std::memory_order_release);
  }
}

int64_t ThreadPool::run_chunks(int thread) {
  int64_t ran = 0;
  for (int64_t c; (c = next_chunk_.fetch_add(1, std::memory_order_relaxed)) < job_chunks_;) {
    (*job_)(c, thread);
    ++ran;
    if (done_chunks_.fetch_add(1, std::memory_order_acq_rel) + 1 == job_chunks_)
      done_chunks_.notify_one();
  }
  return ran;
}

void ThreadPool::run_job(int64_t n_chunks, const std::function<void(int64_t, int)>& chunk) {
  const auto start = Clock::now();
  if (participants_.load(std::memory_order_relaxed) < n_threads_ - 1 &&
      start - last_probe_ > kProbeInterval) {  // narrowed a while ago: try the full width
    participants_.store(n_threads_ - 1, std::memory_order_relaxed);
    spin_ns_.store(kSpin.count(), std::memory_order_relaxed);
    last_probe_ = start;
    window_by_caller_ = window_total_ = 0;
    window_jobs_ = 0;
  }
  if (participants_.load(std::memory_order_relaxed) == 0 || n_chunks == 1) {
    for (int64_t c = 0; c < n_chunks; ++c) chunk(c, 0);
    return;
  }
  job_ = &chunk;
  job_chunks_ = n_chunks;
  next_chunk_.store(0, std::memory_order_relaxed);
  done_chunks_.store(0, std::memory_order_relaxed);
  open_.store(true, std::memory_order_seq_cst);
  generation_.fetch_add(1, std::memory_order_seq_cst);
  generation_.notify_all();  // no system call unless a worker sleeps

  const int64_t mine = run_chunks(0);
  const std::chrono::nanoseconds spin(spin_ns_.load(std::memory_order_relaxed));
  int64_t done;
  const auto pending = [&] { return (done = done_chunks_.load(std::memory_order_acquire)) < n_chunks; };
  while (!spin_while(pending, spin)) done_chunks_.wait(done, std::memory_order_acquire);
  open_.store(false, std::memory_order_seq_cst);
  // Workers still inside have found no chunk left and are leaving.
  while (inside_.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();

  ++stats_.jobs;
  stats_.chunks_by_caller += mine;
  stats_.chunks_total += n_chunks;
  observe_job(mine, n_chunks);
}

void ThreadPool::observe_job(int64_t by_caller, int64_t total) {
  window_by_caller_ += by_caller;
  window_total_ += total;
  if (++window_jobs_ < kWindowJobs) return;
  const int p = participants_.load(std::memory_order_relaxed);
  const double fair = (double)window_total_ * p / (p + 1);
  const double share = (double)(window_total_ - window_by_caller_) / fair;
  window_by_caller_ = window_total_ = 0;
  window_jobs_ = 0;
  if (share >= kMinWorkerShare || fixed_width_) return;
  participants_.store(p - 1, std::memory_order_relaxed);
  spin_ns_.store(kSpinOversubscribed.count(), std::memory_order_relaxed);
  last_probe_ = Clock::now();
  ++stats_.narrowed;
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn) {
  if (n <= 0) return;
  const int64_t nc = std::min<int64_t>(n, (int64_t)active_threads() * kChunksPerThread);
  if (nc == 1) {
    fn(0, n, 0);
    return;
  }
  run_job(nc, [&](int64_t c, int t) { fn(n * c / nc, n * (c + 1) / nc, t); });
}

void ThreadPool::parallel_for_dynamic(int64_t n, const std::function<void(int64_t, int)>& fn) {
  if (n <= 0) return;
  run_job(n, fn);
}

ThreadPool::Stats ThreadPool::stats() const { return stats_; }

}  // namespace glimpse
