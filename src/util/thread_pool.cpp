#include "util/thread_pool.h"

#include <algorithm>

namespace glimpse {

namespace {
inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

using namespace std::chrono_literals;
// Idle spin before sleeping: longer than the gaps between a decode step's jobs (a few us),
// far shorter than a scheduler slice. Oversubscribed, spinning only steals the core from
// the thread that has work, so workers sleep almost at once.
constexpr std::chrono::nanoseconds kSpin = 50us;
constexpr std::chrono::nanoseconds kSpinOversubscribed = 2us;
// Contention: the caller's stall share of job time that marks the pool oversubscribed, the
// least job time a verdict needs, the window length, and how often the full width is tried
// again. A healthy 2-thread decode step stalls ~2-8% of its job time on imbalance.
constexpr double kStallShare = 0.3;
constexpr std::chrono::nanoseconds kMinWindowBusy = 200us;
constexpr int kWindowJobs = 64;
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
  for (int i = 1; i < n_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
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
    window_busy_ = window_stalled_ = {};
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
  const auto own_done = Clock::now();
  const std::chrono::nanoseconds spin(spin_ns_.load(std::memory_order_relaxed));
  int64_t done;
  const auto pending = [&] { return (done = done_chunks_.load(std::memory_order_acquire)) < n_chunks; };
  while (!spin_while(pending, spin)) done_chunks_.wait(done, std::memory_order_acquire);
  const auto end = Clock::now();
  open_.store(false, std::memory_order_seq_cst);
  // Workers still inside have found no chunk left and are leaving.
  while (inside_.load(std::memory_order_seq_cst) != 0) std::this_thread::yield();

  ++stats_.jobs;
  stats_.chunks_by_caller += mine;
  stats_.chunks_total += n_chunks;
  observe_job(end - start, end - own_done);
}

void ThreadPool::observe_job(Clock::duration busy, Clock::duration stalled) {
  window_busy_ += busy;
  window_stalled_ += stalled;
  ++window_jobs_;
  const bool oversubscribed = window_busy_ >= kMinWindowBusy &&
                              (double)window_stalled_.count() > kStallShare * window_busy_.count();
  if (oversubscribed) {
    const int p = participants_.load(std::memory_order_relaxed);
    participants_.store(std::max(0, p - 1), std::memory_order_relaxed);
    spin_ns_.store(kSpinOversubscribed.count(), std::memory_order_relaxed);
    last_probe_ = Clock::now();
    ++stats_.narrowed;
  }
  if (oversubscribed || window_jobs_ >= kWindowJobs) {
    window_busy_ = window_stalled_ = {};
    window_jobs_ = 0;
  }
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
